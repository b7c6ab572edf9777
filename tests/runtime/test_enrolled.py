"""The enrolled-places overlay: saved and read back, exact search, forget, the encoder check, the writer
lock, and a writer killed with SIGKILL half-way."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edge_asc.contract import MANIFEST_FILE, ArtifactMismatch, ModelMeta
from edge_asc.runtime.enrolled import ENROLLED_ITEMS_FILE, Enrolment
from edge_asc.dsp.features import FeatureConfig
from edge_asc.runtime.enrolled import EnrolledSet, lock_path, locked

REPO = Path(__file__).resolve().parents[2]
D = 8


def _meta(sha: str = "a" * 64) -> ModelMeta:
    return ModelMeta(labels=("rain", "wind"), feature_config=FeatureConfig(), embedding_size=D, variant="audio", version="t", sha256=sha)


def _set(n_per_label=(5, 3), seed=0) -> EnrolledSet:
    rng = np.random.default_rng(seed)
    s = EnrolledSet.empty(_meta())
    for i, n in enumerate(n_per_label):
        label = f"place{i}"
        e = Enrolment(f"{label}@t", label, f"{label}.flac", "2026-01-01T00:00:00Z", n * 0.3, n)
        s = s.with_items(e, rng.standard_normal((n, D)).astype(np.float32) + 5 * i, np.arange(n) * 0.3)
        s = s.with_threshold(label, 1.5 + i, {"quantile": 0.95})
    return s


def test_an_overlay_saved_and_read_back_keeps_items_labels_origins_and_thresholds(tmp_path):
    s = _set()
    s.save(tmp_path / "en")
    back = EnrolledSet.load(tmp_path / "en", _meta())
    assert back.labels == ("place0", "place1") and back.counts() == {"place0": 5, "place1": 3}
    np.testing.assert_array_equal(back.embeddings, s.embeddings)
    assert back.manifest.thresholds == {"place0": 1.5, "place1": 2.5}
    assert back.enrolment_of(6).source == "place1.flac" and back.offsets[6] == pytest.approx(0.3)
    assert sorted(p.name for p in (tmp_path / "en").iterdir()) == sorted([ENROLLED_ITEMS_FILE, MANIFEST_FILE])


def test_exact_search_returns_the_nearest_items_nearest_first():
    s = _set((40, 30))
    q = np.random.default_rng(3).standard_normal((4, D)).astype(np.float32) * 3
    labels, dist, ids = s.query(q, 5)
    full = ((q[:, None, :] - s.embeddings[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(ids, np.argsort(full, axis=1)[:, :5])
    np.testing.assert_allclose(dist, np.sort(full, axis=1)[:, :5], rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(labels, s.item_labels[ids])


def test_forgetting_a_place_keeps_the_others_with_their_origins():
    s = _set((2, 3, 4)).without("place1")
    assert s.labels == ("place0", "place2") and s.counts() == {"place0": 2, "place2": 4}
    assert [s.enrolment_of(i).label for i in range(len(s))] == ["place0"] * 2 + ["place2"] * 4
    assert set(s.manifest.thresholds) == {"place0", "place2"}


def test_an_overlay_made_with_another_encoder_is_refused_saying_to_re_enrol(tmp_path):
    _set().save(tmp_path / "en")
    with pytest.raises(ArtifactMismatch, match=r"made with encoder sha256 aaaaaaaaaaaa… .* re-enrol them \(edge-asc forget --label L for each of place0, place1"):
        EnrolledSet.load(tmp_path / "en", _meta("b" * 64))
    empty = _set().without("place0").without("place1")
    empty.save(tmp_path / "empty")
    assert len(EnrolledSet.load_or_empty(tmp_path / "empty", _meta("b" * 64))) == 0  # nothing stale to refuse


def test_a_second_writer_waits_for_the_first_to_release_the_lock(tmp_path):
    order = []
    with locked(tmp_path / "en"):
        t = threading.Thread(target=lambda: (locked(tmp_path / "en").__enter__(), order.append("second")))
        t.start()
        time.sleep(0.3)
        order.append("first done")
    t.join(5)
    assert order == ["first done", "second"] and lock_path(tmp_path / "en").name == ".en.lock"


KILLED_WRITER = """
import sys, time
from pathlib import Path
import numpy as np
sys.path.insert(0, {tests!r})
from runtime.test_enrolled import _set
from edge_asc.runtime import enrolled
fill = enrolled.EnrolledSet._fill
def slow_fill(self, tmp):
    fill(self, tmp)
    print("FILLED", flush=True)
    time.sleep(60)
enrolled.EnrolledSet._fill = slow_fill
with enrolled.locked(Path({target!r})):
    _set((9, 9, 9), seed=1).save(Path({target!r}))
"""


def test_a_writer_killed_with_sigkill_half_way_leaves_the_previous_overlay_usable(tmp_path):
    target = tmp_path / "en"
    before = _set()
    before.save(target)
    script = KILLED_WRITER.format(tests=str(REPO / "tests"), target=str(target))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert proc.stdout.readline().strip() == b"FILLED"  # the new files are written, not yet swapped in
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        proc.kill()
    after = EnrolledSet.load(target, _meta())
    assert after.counts() == before.counts()
    np.testing.assert_array_equal(after.embeddings, before.embeddings)
    with locked(target):  # the dead writer's lock went with it
        _set((1, 1)).save(target)
    assert EnrolledSet.load(target).counts() == {"place0": 1, "place1": 1}


def test_forgetting_a_place_keeps_each_item_with_its_own_enrolment_even_when_two_records_are_equal():
    s = _set((2,))
    twin = Enrolment("place1@t", "place1", "place1.flac", "2026-01-01T00:00:00Z", 0.6, 2)
    for _ in range(2):  # two identical records, as two enrolments in the same second once made
        s = s.with_items(twin, np.zeros((2, D), dtype=np.float32), np.arange(2) * 0.3)
    kept = s.without("place0")
    assert list(kept.item_enrolments) == [0, 0, 1, 1] and len(kept.manifest.enrolments) == 2  # [0, 0, 0, 0] before
