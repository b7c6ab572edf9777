"""Audio file reading: formats, channel mixing, resampling on read, named errors for corrupt, empty, missing or NaN files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import SHARED
from edge_asc.dsp.audio_io import AudioFileError, audio_info, iter_audio, read_audio, to_mono
from edge_asc.dsp.resample import resample

FIXTURE = SHARED / "fixtures" / "dcase_acoustic_scene_44k_stereo.wav"
needs_fixture = pytest.mark.skipif(not FIXTURE.is_file(), reason=f"DCASE fixture not found at {FIXTURE}")


# --- audio files ----------------------------------------------------------------------------------


@needs_fixture
def test_a_44k_stereo_file_reads_as_16k_mono():
    info = audio_info(FIXTURE)
    assert (info.sample_rate, info.channels) == (44100, 2)
    assert info.duration == pytest.approx(10.0, abs=0.01)
    y = read_audio(FIXTURE, 16000)
    assert y.dtype == np.float32 and y.ndim == 1
    assert len(y) == round(info.frames * 16000 / 44100)  # soxr: the nearest whole number of samples
    raw, _ = sf.read(str(FIXTURE), dtype="float32", always_2d=True)
    np.testing.assert_array_equal(y, resample(raw.mean(axis=1, dtype=np.float32), 44100, 16000))
    assert 1e-3 < np.sqrt(np.mean(y**2)) < 1.0  # real audio, not silence
    # streaming the file in blocks gives the same samples
    np.testing.assert_array_equal(np.concatenate(list(iter_audio(FIXTURE, 16000, block_frames=10007))), y)


def test_wav_flac_and_ogg_read_alike_as_the_mean_of_the_channels(tmp_path: Path):
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


def test_empty_frameless_and_missing_files_are_errors_naming_the_file(tmp_path: Path):
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


def _hostile_rate_wav(path, rate: int):
    """A valid 16-bit mono WAV whose header claims ``rate`` (libsndfile refuses to write such rates itself)."""
    import struct

    data = b"\0\0" * 1600
    header = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2 & 0xFFFFFFFF, 2, 16)
    path.write_bytes(header + b"data" + struct.pack("<I", len(data)) + data)
    return path


@pytest.mark.parametrize("rate", [10_000_000, 2**31 - 1, 383_999, 4000])
def test_a_file_whose_header_claims_a_rate_outside_the_range_is_refused_before_resampling(tmp_path, rate):
    from edge_asc.dsp.audio_io import MAX_RATE, MIN_RATE, AudioFileError, iter_audio

    path = _hostile_rate_wav(tmp_path / "hostile.wav", rate)
    with pytest.raises(AudioFileError, match=rf"hostile.wav: sample rate {rate} Hz is outside the accepted {MIN_RATE}..{MAX_RATE} Hz"):
        next(iter_audio(path, 16000))


def test_a_file_at_the_top_of_the_range_is_read(tmp_path):
    from edge_asc.dsp.audio_io import MAX_RATE, read_audio

    assert abs(read_audio(_hostile_rate_wav(tmp_path / "top.wav", MAX_RATE), 16000).shape[0] - 1600 * 16000 / MAX_RATE) <= 1
