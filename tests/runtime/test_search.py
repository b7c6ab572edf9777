"""The base index and the enrolled places searched together; enrolled-only decisions and unknown; origins."""

from __future__ import annotations

import numpy as np
import pytest

from edge_asc.runtime.enrolled import UNKNOWN_LABEL, Enrolment
from edge_asc.runtime.enrolled import EnrolledSet
from edge_asc.runtime.index import SegmentIndex
from edge_asc.runtime.search import ORIGIN_ENROLLED, ORIGIN_MODEL, Searcher


@pytest.fixture(scope="module")
def base(tiny_artifacts):
    return SegmentIndex.load(tiny_artifacts.index)


def _overlay(base, places):
    """places: {label: (centre vector, threshold)}; 4 items per place spread 0.01 around the centre."""
    s = EnrolledSet.empty(base.manifest.encoder_meta())
    for label, (centre, threshold) in places.items():
        items = np.asarray(centre, dtype=np.float32)[None, :] + 0.01 * np.eye(4, len(centre), dtype=np.float32)
        s = s.with_items(Enrolment(f"{label}@t", label, f"{label}.flac", "2026-01-01T00:00:00Z", 1.2, 4), items, np.arange(4) * 0.3)
        s = s.with_threshold(label, threshold, {})
    return s


def test_enrolled_labels_follow_the_model_labels_and_an_enrolled_model_label_adds_to_that_class(base):
    far = np.full(base.manifest.embedding_size, 50.0, dtype=np.float32)
    s = Searcher(base, _overlay(base, {"kitchen": (far, 1.0), "rain": (-far, 1.0)}))
    assert s.labels == base.labels + ("kitchen",) and len(s) == len(base) + 8
    labels, dist, ids = s.query(np.stack([far, -far, base.vectors([7])[0]]), 2)
    assert list(labels[0]) == [s.labels.index("kitchen")] * 2 and list(labels[1]) == [s.labels.index("rain")] * 2
    assert ids[2, 0] == 7 and dist[2, 0] == pytest.approx(0.0, abs=1e-5)  # a base item is still found
    assert (ids[:2] >= len(base)).all() and (np.diff(dist, axis=1) >= 0).all()


def test_enrolled_only_searches_only_places_and_a_segment_beyond_its_places_threshold_is_unknown(base):
    d = base.manifest.embedding_size
    a, b = np.zeros(d, np.float32), np.full(d, 3.0, np.float32)
    s = Searcher(base, _overlay(base, {"kitchen": (a, 0.5), "hall": (b, 0.5)}), enrolled_only=True)
    assert s.labels[-1] == UNKNOWN_LABEL and s.unknown_id == len(s.labels) - 1 and len(s) == 8
    near_a, off_a = a + 0.05, a + 1.0  # squared distances to kitchen's items about 0.0025 d and d (> 0.5)
    labels, dist, ids = s.query(np.stack([a, near_a, off_a]), 1)
    assert [s.labels[i] for i in labels[:, 0]] == ["kitchen", "kitchen", UNKNOWN_LABEL]
    assert s.origin(ids[2, 0]).label == "kitchen" and s.origin(ids[2, 0]).threshold == 0.5
    loose = Searcher(base, s.enrolled, enrolled_only=True, unknown_threshold=1e6)  # the config override
    assert loose.labels[loose.query(off_a[None, :], 1)[0][0, 0]] == "kitchen"


def test_enrolled_only_without_enrolled_places_answers_unknown_for_every_segment(base):
    s = Searcher(base, None, enrolled_only=True)  # refused before: a restart after forgetting the last place exited 2
    assert len(s) == 0 and s.max_neighbours == len(base) and s.labels == base.labels + (UNKNOWN_LABEL,)
    labels, dist, ids = s.query(base.vectors([3, 7]), 2)
    assert (labels == s.unknown_id).all() and (ids == -1).all() and np.isfinite(dist).all() and (np.diff(dist, axis=1) >= 0).all()


def test_origins_name_the_training_recording_and_offset_or_the_enrolment(base):
    s = Searcher(base, _overlay(base, {"kitchen": (np.zeros(base.manifest.embedding_size), 1.0)}))
    o = s.origin(5)
    assert (o.kind, o.recording, o.label, o.offset_s) == (ORIGIN_MODEL, "rain-0", "rain", 1.5)  # the fixture's 6th segment
    chunked = SegmentIndex.build(
        base.vectors([0, 1]), [0, 0], ["r.flac#0", "r.flac#2"], ["r", "r"], base.manifest.encoder_meta(),
        positions=[3, 4], dataset={"chunk_seconds": 10.0},
    )
    assert [Searcher(chunked).origin(i).offset_s for i in (0, 1)] == [0.9, 21.2]  # chunk 2 starts 20 s in
    e = s.origin(len(base) + 2)
    assert (e.kind, e.label, e.source, e.enrolment, e.offset_s) == (ORIGIN_ENROLLED, "kitchen", "kitchen.flac", "kitchen@t", 0.6)


def test_the_ratio_test_calls_a_segment_nearer_to_the_models_data_than_to_its_place_unknown(base):
    model_item = base.vectors([7])[0]
    place = model_item + 0.5  # a place close to one of the model's items
    s = Searcher(base, _overlay(base, {"kitchen": (place, 1e-6)}), enrolled_only=True, unknown_ratio=1.0)
    near_place, near_model = place + 0.01, model_item + 0.01
    labels, dist, _ = s.query(np.stack([near_place, near_model]), 1)
    assert [s.labels[i] for i in labels[:, 0]] == ["kitchen", UNKNOWN_LABEL]  # the place's own tiny threshold plays no part
    _, base_dist, _ = base.query(np.stack([near_place, near_model]), 1)
    assert s.bounds == pytest.approx(base_dist[:, 0], rel=1e-5)  # the bound each segment had to beat
    assert dist[1, 0] > s.bounds[1] and dist[0, 0] <= s.bounds[0]
    stricter = Searcher(base, s.enrolled, enrolled_only=True, unknown_ratio=1e-4)
    assert stricter.labels[stricter.query(near_place[None, :], 1)[0][0, 0]] == UNKNOWN_LABEL
    fixed = Searcher(base, s.enrolled, enrolled_only=True, unknown_threshold=1e6, unknown_ratio=1.0)  # a fixed threshold wins
    assert fixed.labels[fixed.query(near_model[None, :], 1)[0][0, 0]] == "kitchen"


def test_with_enrolled_keeps_the_base_index_and_the_options(base):
    s = Searcher(base, _overlay(base, {"kitchen": (np.zeros(base.manifest.embedding_size), 1.0)}), enrolled_only=True, unknown_ratio=0.7)
    t = s.with_enrolled(_overlay(base, {"hall": (np.ones(base.manifest.embedding_size), 1.0)}))
    assert t.base is s.base and t.enrolled_only and t.unknown_ratio == 0.7 and t.labels == base.labels + ("hall", UNKNOWN_LABEL)
