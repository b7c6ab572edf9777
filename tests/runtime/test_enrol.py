"""Enrolling and forgetting: thresholds calibrated from the enrolment, every refusal leaves the overlay as it was."""

from __future__ import annotations

import errno

import numpy as np
import pytest

import audio_gen
from edge_asc.runtime.encoder import Encoder
from edge_asc.runtime.enrol import EnrolError, calibrate, embed_samples, enrol, forget
from edge_asc.runtime.enrolled import EnrolledSet


@pytest.fixture(scope="module")
def encoder(tiny_artifacts):
    return Encoder(tiny_artifacts.model)


def _files(directory):
    return {p.name: p.read_bytes() for p in directory.iterdir()} if directory.exists() else {}


def test_the_threshold_is_a_quantile_of_leave_one_chunk_out_nearest_distances_times_the_margin():
    x = np.array([[0.0], [1.0], [3.0], [7.0]])
    # chunks {0, 1} and {2, 3}: nearest squared distances to the other chunk 9, 4, 4, 36
    assert calibrate(x, np.array([0, 0, 1, 1]), quantile=1.0, margin=1.0) == 36.0
    assert calibrate(x, np.array([0, 0, 1, 1]), quantile=0.5, margin=2.0) == pytest.approx(2 * 6.5)
    assert calibrate(x, np.zeros(4), quantile=1.0, margin=1.0) == 16.0  # one chunk: leave one item out: 1, 1, 4, 16
    with pytest.raises(EnrolError, match="at least two segments"):
        calibrate(x[:1], np.zeros(1))


def test_enrolment_embeds_the_audio_as_the_pipeline_cuts_it_and_stores_its_origin(tmp_path, encoder):
    audio = audio_gen.scene("rain", 3.0, seed=77)
    result = enrol(tmp_path / "en", encoder, "kitchen", [("kitchen.flac", audio)], encoder.meta.labels)
    emb, offsets = embed_samples(encoder, audio)
    s = EnrolledSet.load(tmp_path / "en", encoder.meta)
    assert (result.items, result.total_items, result.model_label) == (10, 10, False) and len(emb) == 10
    np.testing.assert_allclose(s.embeddings, emb, atol=1e-6)
    assert s.manifest.thresholds["kitchen"] == pytest.approx(result.threshold) and result.threshold > 0
    assert s.enrolment_of(3).source == "kitchen.flac" and s.offsets[3] == pytest.approx(offsets[3]) == pytest.approx(0.9)
    more = enrol(tmp_path / "en", encoder, "rain", [("a.flac", audio), ("b.flac", audio[:16000])], encoder.meta.labels)
    assert more.model_label and more.items == 10 + 3
    assert EnrolledSet.load(tmp_path / "en").counts() == {"kitchen": 10, "rain": 13}


@pytest.mark.parametrize("label,audio,message", [
    ("kitchen", np.zeros(0, np.float32), "holds no audio"),
    ("kitchen", np.zeros(32000, np.float32), "is silent"),
    ("kitchen", audio_gen.scene("rain", 0.2, seed=5), "shorter than one 0.3 s segment"),
    ("kit chen", audio_gen.scene("rain", 2.0, seed=5), "label 'kit chen' is not accepted"),
    ("../x", audio_gen.scene("rain", 2.0, seed=5), "is not accepted"),
    ("unknown", audio_gen.scene("rain", 2.0, seed=5), "reserved"),
])
def test_bad_input_is_refused_in_one_line_and_leaves_the_overlay_unchanged(tmp_path, encoder, label, audio, message):
    enrol(tmp_path / "en", encoder, "hall", [("hall.flac", audio_gen.scene("forest_birds", 2.0, seed=3))])
    before = _files(tmp_path / "en")
    with pytest.raises(EnrolError, match=message) as info:
        enrol(tmp_path / "en", encoder, label, [("x.flac", audio)])
    assert "\n" not in str(info.value)
    assert _files(tmp_path / "en") == before


def test_a_failed_write_such_as_a_full_disk_is_refused_and_leaves_the_overlay_unchanged(tmp_path, encoder, monkeypatch):
    enrol(tmp_path / "en", encoder, "hall", [("hall.flac", audio_gen.scene("forest_birds", 2.0, seed=3))])
    before = _files(tmp_path / "en")

    def full(self, tmp):
        (tmp / "partial").write_bytes(b"x")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(EnrolledSet, "_fill", full)
    with pytest.raises(EnrolError, match=r"cannot write the enrolled places to .* \(No space left on device\); they are unchanged"):
        enrol(tmp_path / "en", encoder, "kitchen", [("k.flac", audio_gen.scene("rain", 2.0, seed=4))])
    with pytest.raises(EnrolError, match="No space left on device"):
        forget(tmp_path / "en", "hall")
    assert _files(tmp_path / "en") == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".en.tmp")] == []  # no temporary left behind


def test_forget_removes_a_place_and_names_the_enrolled_ones_when_it_is_not_there(tmp_path, encoder):
    with pytest.raises(EnrolError, match="no enrolled places in .*; nothing to forget"):
        forget(tmp_path / "en", "hall")
    enrol(tmp_path / "en", encoder, "hall", [("hall.flac", audio_gen.scene("forest_birds", 2.0, seed=3))])
    with pytest.raises(EnrolError, match="no enrolled place 'kitchen' in .*; enrolled: hall"):
        forget(tmp_path / "en", "kitchen")
    assert forget(tmp_path / "en", "hall") == 6
    assert len(EnrolledSet.load(tmp_path / "en")) == 0


def test_enrolling_with_another_encoder_into_its_overlay_is_refused_saying_to_re_enrol(tmp_path, encoder, tiny_artifacts):
    enrol(tmp_path / "en", encoder, "hall", [("hall.flac", audio_gen.scene("forest_birds", 2.0, seed=3))])
    before = _files(tmp_path / "en")
    with pytest.raises(EnrolError, match="re-enrol them"):
        enrol(tmp_path / "en", Encoder(tiny_artifacts.other_model), "kitchen", [("k.flac", audio_gen.scene("rain", 2.0, seed=4))])
    assert _files(tmp_path / "en") == before
    assert forget(tmp_path / "en", "hall") == 6  # a stale overlay can still be cleared


def test_two_enrolments_of_one_label_in_the_same_instant_get_different_ids(encoder, tmp_path, monkeypatch):
    from edge_asc.runtime import enrol as enrol_module
    from edge_asc.runtime.enrol import Piece, enrol_embeddings

    monkeypatch.setattr(enrol_module, "utc_now", lambda: "2026-01-01T00:00:00Z")
    monkeypatch.setattr(enrol_module, "utc_now_precise", lambda: "2026-01-01T00:00:00.000000Z", raising=False)
    emb = np.random.default_rng(0).normal(size=(4, encoder.meta.embedding_size)).astype(np.float32)
    piece = Piece("k.flac", 1.2, emb, np.arange(4) * 0.3)
    for _ in range(3):
        enrol_embeddings(tmp_path / "en", encoder.meta, "kitchen", [piece])
    ids = [e.id for e in EnrolledSet.load(tmp_path / "en").manifest.enrolments]
    assert len(set(ids)) == 3 and all(i.startswith("kitchen@2026-01-01T00:00:00") for i in ids), ids
