"""The pipeline: block sizes do not matter; adaptive decisions."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import audio_gen
from conftest import AMBIENT13, REPO
from edge_asc.dsp.audio_io import iter_audio, read_audio
from edge_asc.runtime.decision import DecisionPolicy
from edge_asc.runtime.pipeline import Pipeline, load_artifacts


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


# --- the bulk path (classify) gives the streaming path's results ------------------------------------



def _results(pipeline, audio, bulk_blocks=None, stream_block=512):
    """Every segment (all fields but times) and decision of ``audio``: streamed in ``stream_block`` blocks,
    or in bulk (push_bulk) over blocks of the sizes ``bulk_blocks`` cycles through."""
    out, pos, i = [], 0, 0
    while pos < len(audio):
        size = stream_block if bulk_blocks is None else bulk_blocks[i % len(bulk_blocks)]
        block = audio[pos : pos + size]
        pairs = pipeline.push(block, ready=0.0) if bulk_blocks is None else pipeline.push_bulk(block, most=23)
        for seg, d in pairs:
            out.append((dataclasses.replace(seg, timings=(), ready=0.0), None if d is None else dataclasses.replace(d, ready=0.0)))
            assert seg.embedding is not None
        pos, i = pos + size, i + 1
    return out


def _same_in_bulk(encoder, index, audio, settings):
    labels = len(index.labels)
    for k, mode, neighbours in settings:
        def fresh():
            return Pipeline(encoder, index, DecisionPolicy(labels, k, mode, k_max=12), neighbours)

        streamed = _results(fresh(), audio)
        assert sum(d is not None for _, d in streamed) > 0
        for blocks in ([len(audio)], [4800 * 23 + 17, 999, 70000]):
            bulk = _results(fresh(), audio, blocks)
            assert [s for s, _ in bulk] == [s for s, _ in streamed], (k, mode, neighbours, blocks)
            assert [d for _, d in bulk] == [d for _, d in streamed], (k, mode, neighbours, blocks)
            for (a, _), (b, _) in zip(bulk, streamed):
                np.testing.assert_array_equal(a.embedding, b.embedding)


SETTINGS = [(3, "window", 1), (5, "sliding", 3), (4, "adaptive", 1)]


def test_bulk_classification_gives_the_streaming_decisions_on_generated_audio_with_enrolled_places(tiny_artifacts):
    from edge_asc.runtime.enrolled import EnrolledSet, Enrolment
    from edge_asc.runtime.search import Searcher

    encoder, index = load_artifacts(tiny_artifacts.model, tiny_artifacts.index)
    audio = np.concatenate([audio_gen.scene(name, 6.0, 11) for name in ("rain", "street_traffic", "forest_birds")]).astype(np.float32)
    audio[4800 * 7 : 4800 * 9] = 0.0  # digital silence: the silence gate on the bulk path too
    _same_in_bulk(encoder, index, audio, SETTINGS)
    # a place enrolled from the same audio's embeddings, searched beside the index and alone (unknown)
    emb = Pipeline(encoder, index, DecisionPolicy(len(index.labels)))
    place = np.stack([seg.embedding for seg, _ in emb.push(audio[: 4800 * 6])])
    enrolled = EnrolledSet.empty(index.base.manifest.encoder_meta()).with_items(
        Enrolment("kitchen@t", "kitchen", "kitchen.flac", "2026-01-01T00:00:00Z", 1.8, len(place)), place, np.arange(len(place)) * 0.3)
    enrolled = enrolled.with_threshold("kitchen", 0.05, {})
    for only in (False, True):
        _same_in_bulk(encoder, Searcher(index.base, enrolled, enrolled_only=only, silence=True), audio, SETTINGS[:2])


@pytest.mark.skipif(not AMBIENT13.is_dir() or not list((REPO / "models").glob("*.onnx")), reason="ambient13 or the shipped model not here")
def test_bulk_classification_gives_the_streaming_decisions_on_real_recordings():
    from edge_asc.dsp.audio_io import iter_audio

    model = sorted((REPO / "models").glob("*.onnx"))[0]
    encoder, index = load_artifacts(model, REPO / "index" / model.stem)
    rate = encoder.meta.feature_config.sample_rate
    files = sorted(AMBIENT13.rglob("*.flac"))[::9][:5]  # five recordings of different places
    audio = np.concatenate([np.concatenate(list(iter_audio(f, rate)))[: 20 * rate] for f in files])
    _same_in_bulk(encoder, index, audio, SETTINGS)
