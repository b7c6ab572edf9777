"""The one conditioning path (dsp.condition): non-finite samples, mixing, resampling; a file read = its blocks streamed."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

import audio_gen
from edge_asc.dsp.audio_io import iter_audio, read_audio
from edge_asc.dsp.condition import Conditioner, to_mono
from edge_asc.dsp.resample import resample


# --- the conditioner --------------------------------------------------------------------------------


def test_conditioner_replaces_nan_and_inf_samples_counts_and_warns_once(caplog):
    cond = Conditioner(16000, 16000, "mic:test")
    block = np.ones((100, 2), dtype=np.float32)
    block[3, 0], block[7, 1], block[9] = np.nan, np.inf, -np.inf
    with caplog.at_level("WARNING", logger="edge_asc.dsp.condition"):
        out = cond.process(block)
        again = cond.process(block)
    assert np.isfinite(out).all() and np.isfinite(again).all()
    assert out[3] == 0.5 and out[9] == 0.0 and out[0] == 1.0
    assert cond.nonfinite == 8
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == ["mic:test: 4 NaN or infinite samples replaced with 0 (4 so far)"]  # rate-limited


@pytest.mark.parametrize("block", [441, 1000, 4410])
def test_conditioner_in_blocks_equals_mixing_and_resampling_offline(block):
    """A 44.1 kHz stereo device stream, mixed and resampled in blocks = the whole signal mixed and resampled at once."""
    rate = 44100
    data = np.stack([audio_gen.scene("forest_birds", 3.0, 7, rate), audio_gen.scene("rain", 3.0, 7, rate)], axis=1)  # (frames, 2)
    cond = Conditioner(rate, 16000)
    live = np.concatenate([cond.process(data[i : i + block]) for i in range(0, data.shape[0], block)] + [cond.flush()])
    np.testing.assert_array_equal(live, resample(to_mono(data), rate, 16000))


def test_a_file_read_gives_the_samples_its_blocks_give_streamed_as_a_device_delivers_them(tmp_path):
    """The daemon's file source puts a file's own blocks in the ring and the worker conditions them: the
    samples classify, enrolment and training read (read_audio, iter_audio) are those."""
    rate = 48000
    data = np.stack([audio_gen.scene("street_traffic", 2.0, 3, rate), audio_gen.scene("rain", 2.0, 3, rate)], axis=1)
    path = tmp_path / "stereo48k.wav"
    sf.write(str(path), data, rate, subtype="FLOAT")
    cond = Conditioner(rate, 16000, "file")
    live = np.concatenate([cond.process(data[i : i + 512]) for i in range(0, len(data), 512)] + [cond.flush()])
    np.testing.assert_array_equal(read_audio(path, 16000), live)
    np.testing.assert_array_equal(np.concatenate(list(iter_audio(path, 16000, block_frames=777))), live)
    assert len(live) == round(len(data) / 3)
