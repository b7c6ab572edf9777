"""The silence gate: a segment below decision.silence_dbfs votes ``silence`` (runtime.pipeline, runtime.search)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edge_asc.daemon.config import DecisionConfig
from edge_asc.dsp.audio_io import read_audio
from edge_asc.runtime.decision import DecisionPolicy
from edge_asc.runtime.pipeline import SILENCE_DBFS, Pipeline, load_artifacts, segment_dbfs
from edge_asc.runtime.enrolled import SILENCE_LABEL
from edge_asc.runtime.search import Searcher

from conftest import AMBIENT13

SEG = 4800  # 300 ms at 16 kHz


def _run(art, audio, silence_dbfs=SILENCE_DBFS, silence=True, k=1):
    encoder, index = load_artifacts(art.model, art.index, silence=silence)
    pipeline = Pipeline(encoder, index, DecisionPolicy(len(index.labels), k), silence_dbfs=silence_dbfs)
    out = list(pipeline.push(audio))
    return index, [s for s, _ in out], [d for _, d in out if d is not None]


def test_digital_silence_is_minus_infinity_and_a_full_scale_sine_about_minus_3_dbfs():
    assert segment_dbfs(np.zeros(SEG, dtype=np.float32)) == -math.inf
    sine = np.sin(2 * np.pi * 440 * np.arange(SEG) / 16000).astype(np.float32)
    assert segment_dbfs(sine) == pytest.approx(-3.01, abs=0.02)
    assert segment_dbfs(0.001 * sine) == pytest.approx(-63.01, abs=0.02)


def test_every_segment_of_digital_silence_votes_silence_with_no_item(tiny_artifacts):
    index, segs, decisions = _run(tiny_artifacts, np.zeros(SEG * 4, dtype=np.float32))
    assert index.labels[-1] == SILENCE_LABEL and len(segs) == 4
    assert all(s.label == index.silence_id and s.item == -1 and s.distance == 0.0 for s in segs)
    assert [(d.label, d.confidence, d.evidence) for d in decisions] == [(index.silence_id, 1.0, ())] * 4


def test_noise_below_the_gate_is_silence_and_above_it_is_a_scene(tiny_artifacts):
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(SEG * 2).astype(np.float32)
    for level, silent in ((SILENCE_DBFS - 5, True), (SILENCE_DBFS + 5, False)):
        index, segs, _ = _run(tiny_artifacts, (10 ** (level / 20) * noise).astype(np.float32))
        assert [s.label == index.silence_id for s in segs] == [silent, silent], level


def test_the_gate_measures_the_segments_own_samples_not_its_left_context(tiny_artifacts):
    loud = read_audio(tiny_artifacts.clips["forest_birds"], 16000)[: SEG * 3]
    index, segs, _ = _run(tiny_artifacts, np.concatenate([loud, np.zeros(SEG * 2, dtype=np.float32)]))
    assert [s.label == index.silence_id for s in segs] == [False, False, False, True, True]


def test_the_quietest_real_recording_is_a_scene_in_every_segment_and_its_quiet_parts_silence_30_db_lower(tiny_artifacts):
    path = AMBIENT13 / "campfire" / "noice__bonfire.flac"  # bench/bench_silence.py: the quietest of ambient13, -80.4 dBFS at worst
    if not path.exists():
        pytest.skip(f"{path} not found (../shared's recordings)")
    audio = read_audio(path, 16000)
    index, segs, _ = _run(tiny_artifacts, audio)
    assert len(segs) > 100 and not any(s.label == index.silence_id for s in segs)
    levels = [segment_dbfs(audio[i * SEG : (i + 1) * SEG]) for i in range(len(segs))]  # -80 .. -36 dBFS (crackles)
    index, segs, _ = _run(tiny_artifacts, (audio * 10 ** (-30 / 20)).astype(np.float32))
    assert [s.label == index.silence_id for s in segs] == [level - 30 < SILENCE_DBFS for level in levels]
    assert 0.5 * len(segs) < sum(level - 30 < SILENCE_DBFS for level in levels) < len(segs)  # both kinds occur


def test_a_null_gate_lets_silence_vote_a_scene_and_does_not_list_the_label(tiny_artifacts):
    index, segs, _ = _run(tiny_artifacts, np.zeros(SEG * 2, dtype=np.float32), silence_dbfs=None, silence=False)
    assert SILENCE_LABEL not in index.labels and index.silence_id is None
    assert all(0 <= s.label < len(index.labels) and s.item >= 0 for s in segs)


def test_silence_is_listed_after_unknown_and_kept_when_the_enrolled_places_are_swapped(tiny_artifacts):
    _, searcher = load_artifacts(tiny_artifacts.model, tiny_artifacts.index, enrolled_only=True)
    assert searcher.labels[-2:] == ("unknown", SILENCE_LABEL) and searcher.unknown_id == len(searcher.labels) - 2
    again = searcher.with_enrolled(searcher.enrolled)
    assert again.labels == searcher.labels and again.silence_id == searcher.silence_id
    assert SILENCE_LABEL not in Searcher(searcher.base, silence=False).labels


@pytest.mark.parametrize("bad", [0.0, 3.0, float("nan"), float("-inf")])
def test_a_silence_gate_that_is_not_a_negative_finite_dbfs_is_refused(bad):
    with pytest.raises(ValueError, match="silence_dbfs"):
        DecisionConfig(silence_dbfs=bad)
    assert DecisionConfig(silence_dbfs=None).silence_dbfs is None
