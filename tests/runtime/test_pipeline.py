"""The pipeline: block sizes do not matter; adaptive decisions."""

from __future__ import annotations

import numpy as np
import pytest

import audio_gen
from edge_asc.dsp.audio_io import iter_audio, read_audio
from edge_asc.runtime.decision import DecisionPolicy


# --- the pipeline itself: block sizes do not matter -------------------------------------------------


def _pipeline_run(art, blocks, k, mode):
    from edge_asc.runtime.pipeline import Pipeline, load_artifacts

    encoder, index = load_artifacts(art.model, art.index)
    pipeline = Pipeline(encoder, index, DecisionPolicy(len(encoder.meta.labels), k, mode))
    segs, decisions = [], []
    for block in blocks:
        for seg, decision in pipeline.push(block):
            segs.append((seg.index, seg.label, seg.distance, seg.neighbour_labels, seg.start, seg.end))
            if decision is not None:
                decisions.append((decision.label, decision.votes, decision.confidence, decision.first_segment, decision.last_segment, decision.start, decision.end))
    return segs, decisions


@pytest.mark.parametrize("k,mode", [(3, "window"), (4, "sliding")])
def test_segments_and_decisions_do_not_depend_on_block_size(tiny_artifacts, k, mode):
    audio = read_audio(tiny_artifacts.clips["forest_birds"], 16000)
    whole = _pipeline_run(tiny_artifacts, [audio], k, mode)
    assert len(whole[0]) == len(audio) // 4800 and len(whole[1]) > 0
    for size in (7, 160, 1023, 4800, 4801):
        blocks = [audio[i : i + size] for i in range(0, len(audio), size)]
        assert _pipeline_run(tiny_artifacts, blocks, k, mode) == whole, f"block size {size}"
    streamed = _pipeline_run(tiny_artifacts, iter_audio(tiny_artifacts.clips["forest_birds"], 16000, 999), k, mode)
    assert streamed == whole


def test_adaptive_decisions_on_generated_audio_come_early_and_name_the_scene(tiny_artifacts):
    from edge_asc.runtime.pipeline import Pipeline, load_artifacts

    encoder, index = load_artifacts(tiny_artifacts.model, tiny_artifacts.index)
    for label in ("rain", "street_traffic"):
        audio = read_audio(tiny_artifacts.clips[label], encoder.meta.feature_config.sample_rate)
        pipeline = Pipeline(encoder, index, DecisionPolicy(len(index.labels), mode="adaptive", k_max=8))
        decisions = [d for _, d in pipeline.push(audio) if d is not None]
        assert decisions and all(1 <= d.k <= 8 and d.mode == "adaptive" for d in decisions)
        assert [d.first_segment for d in decisions[1:]] == [d.last_segment + 1 for d in decisions[:-1]]  # no segment twice or skipped
        assert np.mean([d.k for d in decisions]) < 8  # earlier than a fixed vote of k_max
        assert sum(index.labels[d.label] == label for d in decisions) / len(decisions) > 0.8
