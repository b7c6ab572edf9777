"""The streaming resampler (accuracy on sines, aliasing, block invariance) and audio file reading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from edge_asc.dsp.audio_io import AudioFileError, audio_info, iter_audio, read_audio, to_mono
from edge_asc.dsp.resample import StreamResampler, resample

SHARED = next((p for p in (Path(__file__).resolve().parents[2] / "shared", Path("/work/shared")) if p.is_dir()), Path("shared"))
FIXTURE = SHARED / "fixtures" / "dcase_acoustic_scene_44k_stereo.wav"
needs_fixture = pytest.mark.skipif(not FIXTURE.is_file(), reason=f"DCASE fixture not found at {FIXTURE}")


def sine(freq: float, rate: int, n: int, phase: float = 0.3) -> np.ndarray:
    return np.sin(2 * np.pi * freq * np.arange(n) / rate + phase)


def error_db(y: np.ndarray, ref: np.ndarray) -> float:
    """RMS error relative to a unit sine, in dB, away from the stream's edges."""
    mid = slice(len(y) // 4, 3 * len(y) // 4)
    return 20 * np.log10(np.sqrt(np.mean((y[mid] - ref[mid]) ** 2)) / np.sqrt(0.5))


# --- resampler -------------------------------------------------------------------------------------

RATE_PAIRS = [(44100, 16000), (48000, 16000), (22050, 16000), (8000, 16000), (16000, 44100), (16000, 8000)]


@pytest.mark.parametrize("rates", RATE_PAIRS, ids=[f"{a}-{b}" for a, b in RATE_PAIRS])
def test_sines_in_the_passband_come_out_exact(rates):
    """Output sample m sits at input time m * in/out with no delay: compare with the analytic sine there."""
    fin, fout = rates
    for freq in (100.0, 0.1 * min(fin, fout), 0.3 * min(fin, fout)):
        x = sine(freq, fin, fin).astype(np.float32)  # one second
        y = resample(x, fin, fout)
        assert y.dtype == np.float32
        assert len(y) == -(-len(x) * fout // fin)  # ceil(n * out / in)
        assert error_db(y, sine(freq, fout, len(y))) < -80.0, (fin, fout, freq)


def test_tones_above_the_new_nyquist_are_removed():
    """44.1 kHz -> 16 kHz: tones above 8 kHz would alias. The filter (-6 dB at 0.94 x 8 kHz, 10 zero
    crossings) has a transition band of about 2 kHz either side of its cutoff."""
    for freq, floor_db in ((9000.0, -30.0), (10000.0, -60.0), (12000.0, -60.0), (20000.0, -60.0)):
        y = resample(sine(freq, 44100, 44100).astype(np.float32), 44100, 16000)
        level = 20 * np.log10(np.sqrt(np.mean(y[4000:12000] ** 2)) / np.sqrt(0.5))
        assert level < floor_db, (freq, level)


@pytest.mark.parametrize("rates", [(44100, 16000), (16000, 44100), (48000, 16000), (16000, 16000)])
def test_block_size_invariance(rates):
    fin, fout = rates
    rng = np.random.default_rng(7)
    x = rng.standard_normal(fin // 2).astype(np.float32)
    offline = resample(x, fin, fout)
    for sizes in ([1] * 3000 + [len(x)], list(rng.integers(1, 2000, 400)), [len(x)], [4800] * 100):
        r = StreamResampler(fin, fout)
        out, pos = [], 0
        for size in sizes:
            if pos >= len(x):
                break
            out.append(r.process(x[pos : pos + size]))
            pos += size
        assert pos >= len(x)
        out.append(r.flush())
        np.testing.assert_array_equal(np.concatenate(out), offline)


def test_identity_is_a_copy():
    x = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    y = resample(x, 16000, 16000)
    np.testing.assert_array_equal(x, y)
    assert y is not x and not np.shares_memory(x, y)
    r = StreamResampler(16000, 16000)
    np.testing.assert_array_equal(r.process(x[:10]), x[:10])
    assert r.flush().size == 0


def test_bad_rates_are_refused():
    with pytest.raises(ValueError, match="positive"):
        StreamResampler(0, 16000)


# --- audio files ----------------------------------------------------------------------------------


@needs_fixture
def test_read_stereo_44k_fixture():
    info = audio_info(FIXTURE)
    assert (info.sample_rate, info.channels) == (44100, 2)
    assert info.duration == pytest.approx(10.0, abs=0.01)
    y = read_audio(FIXTURE, 16000)
    assert y.dtype == np.float32 and y.ndim == 1
    assert len(y) == -(-info.frames * 16000 // 44100)
    raw, _ = sf.read(str(FIXTURE), dtype="float32", always_2d=True)
    np.testing.assert_array_equal(y, resample(raw.mean(axis=1, dtype=np.float32), 44100, 16000))
    assert 1e-3 < np.sqrt(np.mean(y**2)) < 1.0  # real audio, not silence
    # streaming the file in blocks gives the same samples
    np.testing.assert_array_equal(np.concatenate(list(iter_audio(FIXTURE, 16000, block_frames=10007))), y)


def test_formats_and_channel_mean(tmp_path: Path):
    rng = np.random.default_rng(1)
    stereo = (0.2 * rng.standard_normal((8000, 2))).astype(np.float32)
    for name, kw in (("a.wav", {"subtype": "FLOAT"}), ("a.flac", {}), ("a.ogg", {})):
        sf.write(str(tmp_path / name), stereo, 16000, **kw)
        y = read_audio(tmp_path / name, 16000)
        assert y.shape == (8000,)
        if name == "a.wav":  # lossless float: exactly the channel mean
            np.testing.assert_array_equal(y, stereo.mean(axis=1, dtype=np.float32))
        elif name == "a.flac":  # 16-bit quantised
            np.testing.assert_allclose(y, stereo.mean(axis=1), atol=1e-4)
    assert to_mono(stereo[:, :1]).shape == (8000,)


def test_corrupt_file_names_the_file(tmp_path: Path):
    bad = tmp_path / "corrupt.wav"
    bad.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk" + bytes(range(256)))
    for fn in (lambda p: read_audio(p, 16000), audio_info, lambda p: list(iter_audio(p, 16000))):
        with pytest.raises(AudioFileError, match="corrupt.wav"):
            fn(bad)


def test_empty_and_missing_files(tmp_path: Path):
    empty = tmp_path / "empty.flac"
    empty.write_bytes(b"")
    with pytest.raises(AudioFileError, match="empty.flac"):
        read_audio(empty, 16000)
    silent_header = tmp_path / "noframes.wav"
    sf.write(str(silent_header), np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(AudioFileError, match="noframes.wav: holds no audio"):
        read_audio(silent_header, 16000)
    with pytest.raises(AudioFileError, match="noframes.wav: holds no audio"):
        list(iter_audio(silent_header, 16000))
    with pytest.raises(AudioFileError, match="missing.wav"):
        read_audio(tmp_path / "missing.wav", 16000)


def test_nan_samples_are_refused(tmp_path: Path):
    data = np.zeros(4000, dtype=np.float32)
    data[1234] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(str(path), data, 16000, subtype="FLOAT")
    with pytest.raises(AudioFileError, match="nan.wav: contains NaN"):
        read_audio(path, 16000)
    with pytest.raises(AudioFileError, match="nan.wav: contains NaN"):
        list(iter_audio(path, 16000))
    data[1234] = np.inf
    sf.write(str(path), data, 16000, subtype="FLOAT")
    with pytest.raises(AudioFileError, match="infinite"):
        read_audio(path, 16000)
