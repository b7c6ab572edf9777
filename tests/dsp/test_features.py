"""The 52 features: shapes, causality, live/offline identity, librosa agreement on real audio, HPSS ranges."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

from conftest import AMBIENT13, REPO, SHARED
from edge_asc.dsp.audio_io import read_audio
from edge_asc.dsp.features import AMIN, HPSS_NAMES, FeatureConfig, FeatureExtractor, Segmenter

FIXTURE = SHARED / "fixtures" / "dcase_acoustic_scene_44k_stereo.wav"
# float32 output of float64 maths: MFCCs reach ~630 in magnitude (c0 of silence), a float32 step there is 6e-5
MFCC_ATOL = 1e-4  # MFCC units (dB-scaled cepstrum)
HPSS_ATOL = 1e-4  # normalised descriptors; log energies get 1e-3 dB

CFG = FeatureConfig()
FX = FeatureExtractor(CFG)
SEG = CFG.segment_samples
HPSS = {name: 2 * CFG.n_mfcc + i for i, name in enumerate(HPSS_NAMES)}


def real_audio() -> list[tuple[str, np.ndarray]]:
    """A few seconds of real recordings: three ambient13 classes and the 44.1 kHz stereo DCASE clip."""
    clips = []
    if AMBIENT13.is_dir():
        for cls in ("cafe_restaurant", "rain", "street_traffic"):
            path = sorted((AMBIENT13 / cls).glob("*.flac"))[0]
            clips.append((path.name, read_audio(path, CFG.sample_rate)[: 4 * CFG.sample_rate]))
    if FIXTURE.is_file():
        clips.append((FIXTURE.name, read_audio(FIXTURE, CFG.sample_rate)))
    return clips


@pytest.fixture(scope="module")
def clips() -> list[tuple[str, np.ndarray]]:
    found = real_audio()
    if len(found) < 4:
        pytest.skip(f"real audio not found ({AMBIENT13}, {FIXTURE})")
    return found


def noise(seconds: float, seed: int = 0, scale: float = 0.1) -> np.ndarray:
    return (scale * np.random.default_rng(seed).standard_normal(int(seconds * CFG.sample_rate))).astype(np.float32)


# --- shapes and framing ------------------------------------------------------------------------------


def test_frame_segment_and_context_sizes_follow_from_the_settings():
    assert (CFG.win_length, CFG.hop_length, CFG.segment_samples) == (400, 240, 4800)
    assert CFG.segment_seconds == pytest.approx(0.3)
    assert (CFG.context_frames, CFG.context_samples, CFG.input_samples) == (8, 2080, 6880)
    assert CFG.n_features == 52 and len(HPSS_NAMES) == 12


def test_features_have_20_frames_of_52_values_per_segment():
    f = FX.segment_features(noise(1.0)[: CFG.input_samples])
    assert f.shape == (20, 52) and f.dtype == np.float32
    assert FX.signal_features(noise(1.0)).shape == (3, 20, 52)  # 16000 // 4800 = 3; the tail is dropped
    assert FX.signal_features(noise(0.29)).shape == (0, 20, 52)
    with pytest.raises(ValueError, match="6880"):
        FX.segment_features(np.zeros(CFG.segment_samples, dtype=np.float32))
    other = FeatureExtractor(FeatureConfig(sample_rate=8000, n_fft=256, n_mels=30))
    assert other.signal_features(noise(1.0)[:8000]).shape == (3, 20, 52)


# --- causality ---------------------------------------------------------------------------------------


def test_later_audio_does_not_change_a_segment():
    x = noise(3.0)
    base = FX.signal_features(x)
    for i in (0, 4, 8):
        y = x.copy()
        y[(i + 1) * SEG :] = noise(3.0, seed=1)[(i + 1) * SEG :]
        changed = FX.signal_features(y)
        np.testing.assert_array_equal(changed[: i + 1], base[: i + 1])
        assert not np.array_equal(changed[i + 1], base[i + 1])


def test_context_is_exactly_context_samples():
    """Segment i reads [i*S - context_samples, (i+1)*S). The first sample of that range falls on the zero of the
    periodic Hann window, so the earliest sample that changes segment i is the next one."""
    x = noise(3.0)
    base = FX.signal_features(x)
    i = 5
    first = i * SEG - CFG.context_samples
    cases = ((first + 1, True), (first, False), (first - 1, False), (i * SEG + 100, True), ((i + 1) * SEG - 1, True))
    for pos, should_change in cases:
        y = x.copy()
        y[pos] += 0.5
        changed = FX.signal_features(y)
        assert (not np.array_equal(changed[i], base[i])) == should_change, pos


def test_first_segment_sees_zeros_before_the_stream():
    x = noise(1.0)
    padded = np.concatenate([np.zeros(CFG.context_samples, dtype=np.float32), x[:SEG]])
    np.testing.assert_array_equal(FX.signal_features(x)[0], FX.segment_features(padded))


# --- live stream == offline ----------------------------------------------------------------------------


@pytest.mark.parametrize("blocks", ["random", "one-sample", "segment", "huge"])
def test_the_segmenter_gives_the_same_segments_for_any_block_size(blocks):
    x = noise(2.0, seed=3)
    offline = FX.signal_features(x)
    rng = np.random.default_rng(11)
    sizes = {
        "random": lambda: rng.integers(1, 3000, 200),
        "one-sample": lambda: np.ones(len(x), dtype=int),
        "segment": lambda: np.full(len(x) // SEG + 1, SEG),
        "huge": lambda: [10 * len(x)],
    }[blocks]()
    seg = Segmenter(CFG)
    live, pos = [], 0
    for size in sizes:
        if pos >= len(x):
            break
        for index, view in seg.push(x[pos : pos + size]):
            assert index == len(live)
            live.append(FX.segment_features(view))
        pos += size
    assert seg.samples_in == len(x)
    np.testing.assert_array_equal(np.stack(live), offline)


def test_features_of_a_run_of_segments_are_bit_identical_to_each_segments_own():
    """The bulk path (run_features over push_runs) and the live one (segment_features over push) agree bit for
    bit, on noise and on real audio, whatever the run lengths and block sizes, mixed on one stream."""
    x = np.concatenate([noise(3.0, seed=5), read_audio(next(iter(sorted(AMBIENT13.rglob("*.flac")))), 16000)[: 3 * 16000]]
                       if AMBIENT13.is_dir() else [noise(6.0, seed=5)])
    live = np.stack([FX.segment_features(view) for _, view in Segmenter(CFG).push(x)])
    rng = np.random.default_rng(2)
    for most in (1, 3, 64):
        seg, got, pos = Segmenter(CFG), [], 0
        while pos < len(x):
            size = int(rng.integers(1, 4 * SEG))
            if rng.random() < 0.2:  # the two kinds of push on one stream
                got += [FX.segment_features(view) for _, view in seg.push(x[pos : pos + size])]
            else:
                for first, samples, count in seg.push_runs(x[pos : pos + size], most):
                    assert first == len(got) and 1 <= count <= most
                    got += list(FX.run_features(samples, count))
            pos += size
        assert seg.samples_in == len(x) and seg.segments_done == len(live)
        np.testing.assert_array_equal(np.stack(got), live)


# --- librosa ------------------------------------------------------------------------------------------


def librosa_mfcc(y: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """librosa's MFCC of every window of a stream that starts at time 0: (n_windows, n_mfcc).

    Our window j covers the win_length samples ending at (j + 1) * hop, centred in an n_fft frame, so the
    stream is padded with win_length - hop + (n_fft - win_length) // 2 zeros on the left and
    (n_fft - win_length) // 2 on the right, and librosa frames it without centring.
    """
    librosa = pytest.importorskip("librosa")
    side = (cfg.n_fft - cfg.win_length) // 2
    yp = np.concatenate([np.zeros(cfg.win_length - cfg.hop_length + side), y.astype(np.float64), np.zeros(side)])
    mel = librosa.feature.melspectrogram(
        y=yp, sr=cfg.sample_rate, n_fft=cfg.n_fft, win_length=cfg.win_length, hop_length=cfg.hop_length,
        center=False, n_mels=cfg.n_mels, power=2.0,
    )  # fmt: skip
    return librosa.feature.mfcc(S=librosa.power_to_db(mel, top_db=None, amin=1e-10), n_mfcc=cfg.n_mfcc).T


def test_mfcc_agrees_with_librosa_on_real_audio(clips):
    for name, y in clips:
        ours = FX.signal_features(y)  # (n, 20, 52)
        mfcc = ours[..., : CFG.n_mfcc].reshape(-1, CFG.n_mfcc)  # windows 0 .. 20n-1
        ref = librosa_mfcc(y, CFG)
        assert ref.shape[0] >= mfcc.shape[0]
        np.testing.assert_allclose(mfcc, ref[: mfcc.shape[0]], rtol=0, atol=MFCC_ATOL, err_msg=name)
        # deltas: least-squares slope of the last delta_width MFCC windows (causal)
        w = CFG.delta_width
        deltas = ours[..., CFG.n_mfcc : 2 * CFG.n_mfcc].reshape(-1, CFG.n_mfcc)
        windows = np.lib.stride_tricks.sliding_window_view(ref[: mfcc.shape[0]], w, axis=0)  # (n - w + 1, 20, w)
        slopes = np.polyfit(np.arange(w), windows.reshape(-1, w).T, 1)[0].reshape(-1, CFG.n_mfcc)
        np.testing.assert_allclose(deltas[w - 1 :], slopes, rtol=0, atol=MFCC_ATOL, err_msg=name)


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_features", REPO / "bench" / "bench_features.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_features", module)
    spec.loader.exec_module(module)
    return module


def test_all_52_agree_with_the_librosa_scipy_reference(clips):
    """bench/bench_features.py times this reference; here it must match ours feature by feature."""
    pytest.importorskip("librosa")
    bench = load_bench()
    for name, y in clips:
        padded = np.concatenate([np.zeros(CFG.context_samples, dtype=np.float32), y])
        for i in range(0, len(y) // SEG, 4):
            x = padded[i * SEG : i * SEG + CFG.input_samples]
            ours, ref = FX.segment_features(x).astype(np.float64), bench.reference_features(x, CFG)
            err = f"{name} segment {i}"
            np.testing.assert_allclose(ours[:, :40], ref[:, :40], rtol=0, atol=MFCC_ATOL, err_msg=err)
            np.testing.assert_allclose(ours[:, 40:42], ref[:, 40:42], rtol=0, atol=1e-3, err_msg=err)
            np.testing.assert_allclose(ours[:, 42:], ref[:, 42:], rtol=0, atol=HPSS_ATOL, err_msg=err)


# --- HPSS descriptors ------------------------------------------------------------------------------------


def hpss(x: np.ndarray) -> dict[str, np.ndarray]:
    f = FX.signal_features(x.astype(np.float32))[2:].reshape(-1, 52)  # past the start-up windows
    return {name: f[:, col] for name, col in HPSS.items()}


def test_mel_power_bound_on_full_scale_audio():
    """Parseval: a window's rFFT power is at most n_fft * sum(w^2) for |x| <= 1, so a part's log energy is at
    most 10 log10(max column sum of the filterbank * n_fft * sum(w^2)) dB."""
    bound = 10 * np.log10(FX.mel_t.sum(axis=1).max() * CFG.n_fft * np.sum(FX.window**2))
    square = np.sign(np.sin(2 * np.pi * 1000 * np.arange(32000) / 16000))  # full scale, rich in harmonics
    for x in (square, np.clip(3 * noise(2.0, scale=1.0), -1, 1)):
        d = hpss(x)
        assert d["h_log_energy"].max() <= bound and d["p_log_energy"].max() <= bound


SIGNALS = {
    "silence": lambda: np.zeros(32000),
    "noise": lambda: noise(2.0),
    "faint noise": lambda: noise(2.0, scale=1e-6),
    "tone 300 Hz": lambda: 0.5 * np.sin(2 * np.pi * 300 * np.arange(32000) / 16000),
    "tone 3 kHz": lambda: 0.5 * np.sin(2 * np.pi * 3000 * np.arange(32000) / 16000),
    "clicks": lambda: (np.arange(32000) % 1200 == 0).astype(float),
}


@pytest.mark.parametrize("kind", list(SIGNALS))
def test_hpss_finite_and_in_documented_ranges(kind):
    d = hpss(SIGNALS[kind]())
    assert all(np.all(np.isfinite(v)) for v in d.values())
    for part in ("h", "p"):
        assert np.all(d[f"{part}_log_energy"] >= 10 * np.log10(AMIN) - 1e-4)  # -100 dB floor
        for name in ("centroid", "rolloff"):
            assert np.all((d[f"{part}_{name}"] >= 0) & (d[f"{part}_{name}"] <= 1))
        assert np.all((d[f"{part}_spread"] >= 0) & (d[f"{part}_spread"] <= 0.5 + 1e-6))
        assert np.all((d[f"{part}_flatness"] >= 0) & (d[f"{part}_flatness"] < 2))  # <= 1 above the floor
    assert np.all((d["harmonic_ratio"] >= 0) & (d["harmonic_ratio"] <= 1))
    assert np.all(d["p_flux"] >= 0)


def test_hpss_behaviour_on_simple_signals():
    silence = hpss(SIGNALS["silence"]())
    assert np.all(silence["h_log_energy"] == np.float32(-100)) and np.all(silence["harmonic_ratio"] == 0)
    assert np.all(silence["h_flatness"] == 1) and np.all(silence["p_flux"] == 0)
    low, high = hpss(SIGNALS["tone 300 Hz"]()), hpss(SIGNALS["tone 3 kHz"]())
    assert np.all(low["harmonic_ratio"] > 0.99) and np.all(high["harmonic_ratio"] > 0.99)  # steady: harmonic
    assert np.all(low["h_flatness"] < 0.01)  # one band: not flat
    assert np.all(high["h_centroid"] > low["h_centroid"] + 0.15)  # higher tone, higher centroid
    clicks = hpss(SIGNALS["clicks"]())
    assert np.all(clicks["harmonic_ratio"] < 0.05)  # transients: percussive
    assert clicks["p_flux"].max() > 1.0  # onsets make the percussive spectrum jump
    white = hpss(SIGNALS["noise"]())
    assert 0.3 < white["harmonic_ratio"].mean() < 0.7 and white["p_flatness"].mean() > 0.4  # flat, neither
