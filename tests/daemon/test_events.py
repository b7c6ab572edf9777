"""Runtime results as protocol events (daemon/events.py): scene evidence stays right across an overlay swap."""

from __future__ import annotations

import numpy as np

from edge_asc.daemon.events import scene_event
from edge_asc.dsp.audio_io import read_audio
from edge_asc.runtime.decision import DecisionPolicy
from edge_asc.runtime.enrol import enrol, forget
from edge_asc.runtime.enrolled import EnrolledSet
from edge_asc.runtime.pipeline import Pipeline, load_artifacts

RATE = 16000


def test_forgetting_another_place_while_votes_are_pending_does_not_stop_the_daemon(tiny_artifacts, tmp_path):
    """The worker's path (Pipeline.push -> scene_event) with a forget swapped in between two votes of one
    decision: the kept votes' items were renumbered by the forget, yet the evidence names their enrolment."""
    art, en = tiny_artifacts, tmp_path / "en"
    encoder, _ = load_artifacts(art.model, art.index)
    rain, street = read_audio(art.clips["rain"], RATE), read_audio(art.clips["street_traffic"], RATE)
    enrol(en, encoder, "aaa", [("rain.flac", rain)])  # enrolled first: the second place's items come after its
    enrol(en, encoder, "bbb", [("street.flac", street)])  # same length: after the forget its old ids are out of range
    _, searcher = load_artifacts(art.model, art.index, enrolled_path=en, enrolled_only=True, unknown_ratio=1e6)
    policy = DecisionPolicy(len(searcher.labels), k=3, mode="window")
    pipeline = Pipeline(encoder, searcher, policy)
    seg_len = encoder.meta.feature_config.segment_samples
    heard = [seg for seg, decision in pipeline.push(street[: 2 * seg_len]) if decision is None]
    assert len(heard) == 2 and all(searcher.labels[s.label] == "bbb" for s in heard)
    forget(en, "aaa")
    assert pipeline.swap_index(searcher.with_enrolled(EnrolledSet.load(en)))
    decisions = [d for _, d in pipeline.push(street[2 * seg_len : 3 * seg_len + 1]) if d is not None]
    assert len(decisions) == 1
    event = scene_event(decisions[0], pipeline.labels, RATE)  # raised IndexError (or named "aaa") before
    assert event.label == "bbb" and event.evidence
    assert all(e.label == "bbb" and e.enrolment.startswith("bbb@") and e.source == "street.flac" for e in event.evidence)
    assert [e.distance for e in event.evidence] == sorted(e.distance for e in event.evidence)
    assert np.isfinite([e.distance for e in event.evidence]).all()
