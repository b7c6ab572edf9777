"""The evaluation: vote / first-k / ratio arithmetic, the baselines, and a small end-to-end run on generated audio.

The end-to-end run trains real (tiny, one-epoch) models on three classes of synthetic audio, exports them to
ONNX, indexes the training segments with hnswlib and writes a real report; the tests then check the report's
structure and recompute its arithmetic from the per-unit decisions it stores.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from edge_asc.evaluation.baselines import NoLearningBaseline, Standardiser, exact_neighbours, segment_statistics
from edge_asc.runtime.decision import DecisionPolicy, Vote
from edge_asc.evaluation.evaluate import (
    GROUPED,
    LEAKY,
    EvalConfig,
    SceneDecisions,
    confusion_matrix,
    neighbour_vote,
    per_class_accuracy,
    plan_tasks,
    ratio,
    row_normalise,
    run_evaluation,
    scene_decisions,
    summarise,
    summarise_decisions,
    train_fingerprint,
    without_empty_scenes,
)

SR = 16000
CLASSES = ("hum", "hiss", "chirp")
RECORDINGS_PER_CLASS = 3
FILE_SECONDS = 4.0
CHUNK_SECONDS = 2.0  # two scenes per file, so one recording has several scenes


# --- arithmetic -------------------------------------------------------------------------------------------


def test_vote_majority_and_distance_tie_break():
    # scene 0: labels 1,1,2 -> 1; scene 1: 0 vs 2 tied 1:1 at k=2, 2 has the smaller distance
    pred = np.array([1, 1, 2, 0, 2, 2])
    dist = np.array([0.1, 0.1, 0.1, 0.9, 0.2, 0.5])
    label = np.array([1, 1, 1, 2, 2, 2])
    scene = np.array([0, 0, 0, 1, 1, 1])
    pos = np.array([0, 1, 2, 0, 1, 2])
    d = scene_decisions(pred, dist, label, scene, pos, n_classes=3, k_max=3)
    assert d.scene.tolist() == [0, 1]
    assert d.truth.tolist() == [1, 2]
    assert d.first_k.tolist() == [[1, 1, 1], [0, 2, 2]]
    assert d.all.tolist() == [1, 2]
    assert d.n_segments.tolist() == [3, 3]
    # an exact tie in votes and distance goes to the earlier label
    d = scene_decisions(np.array([2, 1]), np.array([0.5, 0.5]), np.array([1, 1]), np.array([7, 7]), np.array([0, 1]), 3, 2)
    assert d.first_k.tolist() == [[2, 1]]


def test_segments_are_voted_in_stream_order_and_short_scenes_vote_over_what_they_have():
    # positions given out of order; the first segment is position 0 whatever the row order
    pred = np.array([2, 0, 1])
    pos = np.array([2, 0, 1])
    d = scene_decisions(pred, np.ones(3), np.zeros(3, dtype=int), np.zeros(3, dtype=int), pos, 3, k_max=5)
    assert d.first_k[0, 0] == 0  # position 0 predicted 0
    assert d.first_k[0, 1] == 0  # {0, 1} tied, equal distances -> earlier label
    assert d.first_k[0, 2:].tolist() == [0, 0, 0]  # k >= 3: all three segments, a three-way tie -> label 0
    assert d.all[0] == 0


def test_scene_vote_is_the_daemons_window_decision():
    """first_k[:, k-1] equals the first decision of the daemon's DecisionPolicy(k, window) on the same votes."""
    rng = np.random.default_rng(3)
    n_classes, n_scenes, n_seg, k_max = 4, 40, 7, 7
    pred = rng.integers(0, n_classes, n_scenes * n_seg)
    dist = rng.choice([0.1, 0.2, 0.3], n_scenes * n_seg)  # repeated values make distance ties too
    scene = np.repeat(np.arange(n_scenes), n_seg)
    pos = np.tile(np.arange(n_seg), n_scenes)
    truth = np.repeat(rng.integers(0, n_classes, n_scenes), n_seg)
    d = scene_decisions(pred, dist, truth, scene, pos, n_classes, k_max)
    for s in range(n_scenes):
        rows = np.flatnonzero(scene == s)
        for k in range(1, k_max + 1):
            policy = DecisionPolicy(n_classes, k=k, mode="window")
            decision = None
            for i in range(k):
                r = rows[i]
                decision = policy.push(Vote(i, int(pred[r]), float(dist[r]), 0, 0, 0.0)) or decision
            assert decision is not None and decision.label == d.first_k[s, k - 1], (s, k)


def test_neighbour_vote():
    labels = np.array([[2, 0, 0], [1, 2, 0], [0, 1, 1]])
    dists = np.array([[0.1, 0.2, 0.3], [0.1, 0.2, 0.3], [0.9, 0.2, 0.4]])
    pred, dist = neighbour_vote(labels[:, :1], dists[:, :1], 3)
    assert pred.tolist() == [2, 1, 0] and np.allclose(dist, [0.1, 0.1, 0.9])
    pred, dist = neighbour_vote(labels, dists, 3)
    # row 0: 0 has two votes; row 1: three-way tie -> smallest distance (1); row 2: 1 wins, nearest of it 0.2
    assert pred.tolist() == [0, 1, 1]
    assert np.allclose(dist, [0.2, 0.1, 0.2])


def test_summaries_ratio_and_first_k():
    assert summarise([0.5, 0.7]) == {"mean": pytest.approx(0.6), "std": pytest.approx(np.std([0.5, 0.7], ddof=1)), "n": 2, "values": [0.5, 0.7]}
    assert summarise([0.4])["std"] == 0.0
    assert summarise([])["mean"] is None
    assert ratio(0.45, 0.5) == pytest.approx(0.9)
    assert ratio(0.3, 0.0) is None
    a = SceneDecisions(np.arange(4), np.array([0, 1, 1, 0]), np.array([[0, 0], [1, 1], [0, 1], [1, 1]]), np.array([0, 1, 1, 1]), np.full(4, 5))
    b = SceneDecisions(np.arange(2), np.array([1, 1]), np.array([[1, 1], [0, 0]]), np.array([1, 1]), np.full(2, 5))
    assert a.first_k_accuracy().tolist() == [0.5, 0.75]
    assert a.all_accuracy() == 0.75
    s = summarise_decisions([a, b])
    assert s["first"]["values"] == [0.5, 0.5]
    assert s["all"]["values"] == [0.75, 1.0]
    assert s["ratio"] == pytest.approx(0.5 / 0.875)
    assert [x["mean"] for x in s["first_k"]] == pytest.approx([0.5, 0.625])
    assert s["scenes"] == 6
    back = SceneDecisions.from_dict(json.loads(json.dumps(a.to_dict())))
    assert np.array_equal(back.first_k, a.first_k) and np.array_equal(back.all, a.all)


def test_confusion_and_per_class():
    truth = np.array([0, 0, 1, 1, 1, 2])
    pred = np.array([0, 1, 1, 1, 0, 2])
    m = confusion_matrix(truth, pred, 4)
    assert m.tolist() == [[1, 1, 0, 0], [1, 2, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    n = row_normalise(m)
    assert np.allclose(n.sum(axis=1), [1, 1, 1, 0])
    d = SceneDecisions(np.arange(6), truth, pred[:, None], truth.copy(), np.ones(6, dtype=int))
    pc = per_class_accuracy([d], 4)
    assert pc["scenes"] == [2, 3, 1, 0]
    assert pc["first"] == [0.5, pytest.approx(2 / 3), 1.0, None]
    assert pc["all"] == [1.0, 1.0, 1.0, None]


# --- baselines ----------------------------------------------------------------------------------------------


def test_exact_neighbours_match_brute_force():
    rng = np.random.default_rng(0)
    train, query = rng.normal(size=(300, 6)), rng.normal(size=(40, 6))
    idx, dist = exact_neighbours(train, query, 4)
    full = ((query[:, None] - train[None]) ** 2).sum(-1)
    assert np.array_equal(idx, np.argsort(full, axis=1)[:, :4])
    assert np.allclose(dist, np.sort(full, axis=1)[:, :4], atol=1e-4)
    with pytest.raises(ValueError):
        exact_neighbours(train, query, 301)


def test_no_learning_baseline_uses_training_statistics_only():
    rng = np.random.default_rng(1)
    feats = rng.normal(size=(10, 20, 52)).astype(np.float32)
    stats = segment_statistics(feats)
    assert stats.shape == (10, 104)
    assert np.allclose(stats[:, :52], feats.mean(axis=1), atol=1e-5)
    assert np.allclose(stats[:, 52:], feats.std(axis=1), atol=1e-5)
    std = Standardiser.fit(stats[:6])
    assert np.allclose(std.apply(stats[:6]).mean(axis=0), 0.0, atol=1e-5)
    assert np.allclose(std.mean, stats[:6].mean(axis=0), atol=1e-5)  # not the test rows
    labels = np.arange(6) % 3
    base = NoLearningBaseline.fit(feats[:6], labels)
    got, dist = base.neighbours(feats[:6], 1)
    assert got[:, 0].tolist() == labels.tolist() and np.allclose(dist, 0.0, atol=1e-4)  # each is its own neighbour


# --- a small evaluation on generated audio ------------------------------------------------------------


def _synthetic_audio(label: int, recording: int, seconds: float) -> np.ndarray:
    """Three distinguishable kinds of sound; each recording has its own level, pitch offset and noise."""
    rng = np.random.default_rng(100 * label + recording)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    noise = rng.standard_normal(n)
    if label == 0:  # low hum with harmonics
        f0 = 110.0 * (1 + 0.05 * recording)
        x = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in (1, 2, 3)) + 0.05 * noise
    elif label == 1:  # high-passed hiss
        x = np.diff(noise, prepend=0.0) * 0.5
    else:  # chirps every 250 ms
        f = 2000.0 + 1500.0 * ((t * 4) % 1.0) + 100 * recording
        x = np.sin(2 * np.pi * np.cumsum(f) / SR) * (((t * 4) % 1.0) < 0.5) + 0.05 * noise
    x = x / np.max(np.abs(x)) * (0.3 + 0.1 * recording)
    return x.astype(np.float32)


@pytest.fixture(scope="module")
def synthetic_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic-scenes")
    rows = ["path,label,recording_id"]
    for c, name in enumerate(CLASSES):
        for r in range(RECORDINGS_PER_CLASS):
            rel = f"{name}/{name}_{r}.flac"
            (root / name).mkdir(exist_ok=True)
            sf.write(str(root / rel), _synthetic_audio(c, r, FILE_SECONDS), SR, subtype="PCM_16")
            rows.append(f"{rel},{name},{name}-rec{r}")
    (root / "metadata.csv").write_text("\n".join(rows) + "\n")
    return root


def _tiny_train_config():
    from edge_asc.training.config import AugmentConfig, ModelConfig, TrainConfig

    return dataclasses.replace(
        TrainConfig(),
        epochs=1,
        batch_size=24,
        classes_per_batch=3,
        threads=1,
        model=ModelConfig(hidden_size=8),
        augment=AugmentConfig.off(),
    )


EVAL = EvalConfig(
    folds=3,
    seeds=1,
    variants=("audio",),
    k_max=3,
    neighbours=(1, 3),
    class_sizes=(2,),
    class_draws=1,
    chunk_seconds=CHUNK_SECONDS,
    leaky=True,
    index_ef_construction=50,
)


@pytest.fixture(scope="module")
def evaluation(synthetic_data, tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("report")
    report = run_evaluation(synthetic_data, out, EVAL, _tiny_train_config(), command="edge-asc evaluate (test)")
    return out, report


def test_plan_covers_folds_seeds_methods():
    tasks = plan_tasks(dataclasses.replace(EVAL, seeds=2, leaky_seeds=2), n_classes=3, n_grouped_folds=3, train_epochs=7)
    grouped = [t for t in tasks if t.protocol == GROUPED]
    assert len(grouped) == 6 and {(t.fold, t.seed) for t in grouped} == {(f, s) for f in range(3) for s in range(2)}
    assert all(t.epochs == 7 for t in tasks)
    assert [t.methods for t in grouped if t.seed == 0][0] == ("audio", "softmax", "nolearn")  # no-learning: once per fold
    assert [t.methods for t in grouped if t.seed == 1][0] == ("audio", "softmax")
    assert len([t for t in tasks if t.protocol == LEAKY]) == 2
    classes = [t for t in tasks if t.protocol == "classes"]
    assert len(classes) == 1 and len(classes[0].classes) == 2


def test_report_files_and_structure(evaluation):
    out, report = evaluation
    for name in ("report.md", "report.json", "accuracy_vs_k.png", "accuracy_vs_classes.png", "confusion_first_segment.png"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "accuracy_vs_k.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "report.json").read_text())["format"] == 1
    keys = [p["key"] for p in report["protocols"]]
    assert keys == [GROUPED, LEAKY]
    grouped = report["protocols"][0]
    assert set(grouped["results"]) == {"audio", "softmax-nn", "softmax-head", "nolearn"}
    assert set(grouped["results"]["audio"]) == {"nn1", "nn3"}
    assert set(grouped["results"]["softmax-head"]) == {"head"}
    for rules in grouped["results"].values():
        for s in rules.values():
            assert s["units"] == 3 and len(s["first_k"]) == EVAL.k_max
    md = (out / "report.md").read_text()
    for heading in ("## Summary", "## Table 1", "## Choosing k", "## Per class", "## Accuracy against the number of classes", "## Reproducibility", "LEAKY"):
        assert heading in md, heading
    repro = report["reproducibility"]
    assert repro["command"] == "edge-asc evaluate (test)" and len(repro["data_sha256"]) == 64
    assert repro["data_files"] == len(CLASSES) * RECORDINGS_PER_CLASS + 1  # audio + metadata.csv
    assert {"numpy", "torch", "onnxruntime", "hnswlib"} <= set(repro["versions"])
    with open(out / "confusion_first_segment.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0][1:-1] == sorted(CLASSES) and len(rows) == 1 + len(CLASSES)  # the dataset sorts labels
    for row in rows[1:]:
        assert sum(float(v) for v in row[1:-1]) == pytest.approx(1.0, abs=1e-3)
    # the tiny model still learns these very different sounds
    assert grouped["results"]["audio"]["nn1"]["all"]["mean"] > 1 / len(CLASSES)


def _units(out: Path, protocol: str) -> list[dict]:
    units = [json.loads(p.read_text()) for p in sorted((out / "units").glob("*.json"))]
    return [u for u in units if u["protocol"] == protocol]


def test_report_arithmetic_matches_the_stored_decisions(evaluation):
    out, report = evaluation
    grouped = report["protocols"][0]
    units = _units(out, GROUPED)
    for row, rules in grouped["results"].items():
        for rule, summary in rules.items():
            decisions = [SceneDecisions.from_dict(u["results"][row][rule]["decisions"]) for u in units if row in u["results"]]
            first = [float(np.mean(d.first_k[:, 0] == d.truth)) for d in decisions]
            all_ = [float(np.mean(d.all == d.truth)) for d in decisions]
            assert summary["first"]["values"] == pytest.approx(first)
            assert summary["all"]["values"] == pytest.approx(all_)
            assert summary["first"]["mean"] == pytest.approx(np.mean(first))
            assert summary["all"]["std"] == pytest.approx(np.std(all_, ddof=1))
            assert summary["first_k"][0]["mean"] == pytest.approx(summary["first"]["mean"])
            expected_ratio = np.mean(first) / np.mean(all_) if np.mean(all_) > 0 else None
            assert summary["ratio"] == (pytest.approx(expected_ratio) if expected_ratio is not None else None)
    conf = np.array(grouped["confusion"]["counts"])
    n_scenes = sum(len(u["results"]["audio"]["nn1"]["decisions"]["scene"]) for u in units if "audio" in u["results"])
    assert conf.sum() == n_scenes


def test_folds_are_grouped_by_recording_and_the_leaky_split_is_flagged(evaluation, synthetic_data):
    from edge_asc.training.datasets import load_dataset

    out, report = evaluation
    dataset = load_dataset(synthetic_data, chunk_seconds=CHUNK_SECONDS)
    recording = np.array([s.recording_id for s in dataset.scenes])
    grouped = report["protocols"][0]
    assert not grouped["leaky"] and all(f["recordings_on_both_sides"] == 0 for f in grouped["folds"])
    tested = []
    for unit in _units(out, GROUPED):
        if unit["method"] != "nolearn":
            continue
        test_scenes = np.array(unit["results"]["nolearn"]["nn1"]["decisions"]["scene"])
        train_scenes = np.setdiff1d(np.arange(len(dataset.scenes)), test_scenes)
        assert not set(recording[test_scenes]) & set(recording[train_scenes])  # no recording on both sides
        tested.extend(test_scenes.tolist())
    assert sorted(tested) == list(range(len(dataset.scenes)))  # every scene is tested exactly once
    leaky = report["protocols"][1]
    assert leaky["leaky"] and "LEAKY" in leaky["title"]
    assert leaky["folds"][0]["recordings_on_both_sides"] > 0
    assert all(u["leaky"] for u in _units(out, LEAKY))


def test_class_study(evaluation):
    _, report = evaluation
    study = report["class_study"]
    assert study["epochs"] == 1 and study["draws"] == 1
    (point,) = study["summary"]["audio"]
    assert point["size"] == 2 and point["chance"] == 0.5
    assert all(len(r["classes"]) == 2 for r in study["runs"])


def test_rerun_reuses_finished_units_and_recomputes_missing_ones(evaluation, synthetic_data):
    out, report = evaluation
    missing = out / "units" / "grouped-f2-s0-audio.json"
    missing.unlink()
    again = run_evaluation(synthetic_data, out, dataclasses.replace(EVAL, jobs=2), _tiny_train_config(), command="rerun")
    assert again["timing"]["units_computed_now"] == 1
    assert missing.is_file()
    # the wall time reported is that of the run that computed every unit, not of this partial rerun
    assert report["timing"]["complete_run"]["units_computed"] == report["timing"]["units"]
    assert again["timing"]["complete_run"] == report["timing"]["complete_run"]
    assert len(json.loads((out / "runs.json").read_text())) == 2
    before, after = report["protocols"][0]["results"], again["protocols"][0]["results"]
    for row in ("nolearn", "softmax-head", "softmax-nn"):
        assert after[row] == before[row]
    # same seed, same shared augmentation draws: the recomputed unit gives the same decisions
    assert after["audio"]["nn1"]["first"]["values"] == pytest.approx(before["audio"]["nn1"]["first"]["values"])


def test_scenes_without_segments_leave_every_fold():
    from edge_asc.training.datasets import Fold

    folds = {"grouped": [Fold("a", np.array([0, 1, 2]), np.array([3, 4])), Fold("b", np.array([3, 4]), np.array([0, 1, 2]))]}
    segment_scene = np.array([0, 0, 2, 3, 3, 3])  # scenes 1 and 4 gave no segment
    out, empty = without_empty_scenes(folds, segment_scene, 5)
    assert empty.tolist() == [1, 4]
    assert [(f.train.tolist(), f.test.tolist()) for f in out["grouped"]] == [([0, 2], [3]), ([3], [0, 2])]
    same, none = without_empty_scenes(folds, np.arange(5), 5)
    assert none.size == 0 and all(np.array_equal(a.test, b.test) for a, b in zip(same["grouped"], folds["grouped"]))


def test_options_at_their_neutral_value_leave_the_unit_fingerprint_unchanged():
    from edge_asc.config import to_dict
    from edge_asc.training.config import AugmentConfig, ModelConfig, TrainConfig

    base = train_fingerprint(to_dict(TrainConfig()))
    # finished units predate these options: at their neutral value they are not part of the fingerprint
    assert "robust_normalization" not in base and "pieces" not in base["augment"]
    assert "input_clip" not in base["model"] and "input_features" not in base["model"]
    # any other value is
    assert train_fingerprint(to_dict(TrainConfig(robust_normalization=True))) != base
    assert train_fingerprint(to_dict(TrainConfig(augment=AugmentConfig(pieces=3)))) != base
    assert train_fingerprint(to_dict(TrainConfig(model=ModelConfig(input_features="hpss")))) != base
    assert train_fingerprint(to_dict(TrainConfig(margin=0.3))) != base


def test_config_is_validated():
    with pytest.raises(ValueError, match="variants"):
        EvalConfig(variants=("audio", "bogus"))
    with pytest.raises(ValueError, match="neighbours"):
        EvalConfig(neighbours=(1, 1))
    with pytest.raises(ValueError, match="class_sizes"):
        EvalConfig(class_sizes=(1,))


def test_command_reads_sections_and_flags_override_them(tmp_path):
    from edge_asc.cli import build_parser
    from edge_asc.commands.evaluate import load_configs
    from edge_asc.config import ConfigError

    cfg = tmp_path / "eval.yaml"
    cfg.write_text("evaluate:\n  seeds: 2\n  neighbours: [1, 3]\ntrain:\n  epochs: 4\n  augment:\n    mix_prob: 0.0\nmodel:\n  hidden_size: 16\n")
    parser = build_parser()
    args = parser.parse_args(["evaluate", "--data", str(tmp_path), "--config", str(cfg), "--seeds", "1", "--leaky", "--variants", "audio,noattn"])
    evaluate, train = load_configs(args.config, args)
    assert (evaluate.seeds, evaluate.neighbours, evaluate.leaky, evaluate.variants) == (1, (1, 3), True, ("audio", "noattn"))
    assert evaluate.folds == EvalConfig().folds  # not given anywhere: the default
    assert (train.epochs, train.augment.mix_prob, train.model.hidden_size) == (4, 0.0, 16)
    for text, key in (("evalute:\n  seeds: 2\n", "evalute"), ("evaluate:\n  seedz: 2\n", "seedz"), ("evaluate:\n  variants: [audio, x]\n", "variants")):
        cfg.write_text(text)
        with pytest.raises(ConfigError, match=key):
            load_configs(cfg, parser.parse_args(["evaluate", "--data", str(tmp_path)]))
