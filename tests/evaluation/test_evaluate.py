"""A small end-to-end evaluation on generated audio: the report's files, structure and arithmetic, and resuming.

It trains real (tiny, one-epoch) models on three classes of synthetic audio, exports them to ONNX, indexes
the training segments with hnswlib and writes a real report; the tests then check the report's structure and
recompute its arithmetic from the per-unit decisions it stores.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
sf = pytest.importorskip("soundfile")

from edge_asc.evaluation.config import GROUPED, LEAKY, EvalConfig  # noqa: E402
from edge_asc.evaluation.evaluate import run_evaluation  # noqa: E402
from edge_asc.training.feature_cache import FeatureCache  # noqa: E402
from edge_asc.evaluation.scoring import SceneDecisions  # noqa: E402

SR = 16000
CLASSES = ("hum", "hiss", "chirp")
RECORDINGS_PER_CLASS = 3
FILE_SECONDS = 4.0
CHUNK_SECONDS = 2.0  # two scenes per file, so one recording has several scenes


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


NOTES = "The reading of these numbers for this dataset: hand-written, copied into the report as it is."


def _evaluate(data: Path, out: Path, config: EvalConfig, command: str) -> dict:
    """Run the evaluation; returns report.json as written (the file format), checked against the returned Report."""
    report = run_evaluation(data, out, config, _tiny_train_config(), command=command, cache=FeatureCache.open(out.parent / "features"))
    written = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert written["created"] == report.created and written["timing"]["units"] == report.timing.units
    return written


@pytest.fixture(scope="module")
def evaluation(synthetic_data, tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("report")
    (out / "notes.md").write_text(NOTES + "\n", encoding="utf-8")
    return out, _evaluate(synthetic_data, out, EVAL, "edge-asc evaluate (test)")


def test_the_report_writes_its_files_in_the_structure_of_format_1(evaluation):
    out, report = evaluation
    for name in ("report.md", "report.json", "accuracy_vs_k.png", "accuracy_vs_classes.png", "confusion_first_segment.png"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "accuracy_vs_k.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report["format"] == 1
    assert list(report) == ["format", "created", "dataset", "segment_seconds", "n_features", "primary", "method_titles", "neighbours",
                            "k_max", "epochs", "protocols", "class_study", "ordering", "baselines_all", "reproducibility",
                            "timing", "measures"]  # no accuracy target of any project
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
    assert "## Investigation notes\n\n" + NOTES in md and "Target" not in md
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


def test_the_report_measures_unknown_distance_and_adaptive_against_fixed_k_on_the_grouped_units(evaluation):
    out, report = evaluation
    m = report["measures"]
    assert m["method"] == "audio" and m["units"] == 3  # the default variant's grouped units (folds x seeds)
    assert 0.0 <= m["novelty_auroc"]["mean"] <= 1.0 and m["novelty_auroc"]["n"] == 3
    modes = [(r["mode"], r["k"]) for r in m["latency"]]
    assert modes == [("window", k) for k in range(1, EVAL.k_max + 1)] + [("adaptive", k) for k in range(2, EVAL.k_max + 1)]
    fixed = {r["k"]: r for r in m["latency"] if r["mode"] == "window"}
    assert all(fixed[k]["seconds"] == pytest.approx(k * report["segment_seconds"]) for k in fixed)  # a fixed-k decision uses k segments
    for r in m["latency"]:
        if r["mode"] == "adaptive":
            assert report["segment_seconds"] <= r["seconds"] <= r["k"] * report["segment_seconds"] + 1e-9  # never past k_max
    assert [v["k_max"] for v in m["verdicts"]] == list(range(2, EVAL.k_max + 1))
    md = (out / "report.md").read_text()
    assert "## Unknown in the default mode, and adaptive decisions" in md and "at a lower mean latency for" in md
    assert (out / "accuracy_vs_latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_ordering_and_the_baselines_in_report_json_are_those_of_the_grouped_results(evaluation):
    out, report = evaluation
    results = report["protocols"][0]["results"]
    assert report["ordering"]["first"] == {"values": {"audio": results["audio"]["nn1"]["first"]["mean"]}, "ranked": ["audio"],
                                           "paper_order_holds": True}
    assert report["ordering"]["all"]["values"] == {"audio": results["audio"]["nn1"]["all"]["mean"]}
    assert report["baselines_all"] == {
        "softmax-nn (nn1)": results["softmax-nn"]["nn1"]["all"]["mean"], "softmax-nn (nn3)": results["softmax-nn"]["nn3"]["all"]["mean"],
        "softmax-head (head)": results["softmax-head"]["head"]["all"]["mean"],
        "nolearn (nn1)": results["nolearn"]["nn1"]["all"]["mean"], "nolearn (nn3)": results["nolearn"]["nn3"]["all"]["mean"],
    }
    assert report["n_features"] == _tiny_train_config().features.n_features
    md = (out / "report.md").read_text()
    assert f"mean and standard deviation of the {report['n_features']} features" in md
    assert "models trained on those classes only, 1 epoch (as the main run)," in md  # the class study's epochs, as run


def _units(out: Path, protocol: str) -> list[dict]:
    units = [json.loads(p.read_text()) for p in sorted((out / "units").glob("*.json"))]
    return [u for u in units if u["protocol"] == protocol]


def test_report_arithmetic_matches_the_stored_decisions(evaluation):
    out, report = evaluation
    grouped = report["protocols"][0]
    units = _units(out, GROUPED)
    for row, rules in grouped["results"].items():
        for rule, summary in rules.items():
            decisions = [SceneDecisions.from_json(u["results"][row][rule]["decisions"]) for u in units if row in u["results"]]
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


def test_the_class_study_trains_on_class_subsets(evaluation):
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
    again = _evaluate(synthetic_data, out, dataclasses.replace(EVAL, jobs=2), "rerun")
    assert again["timing"]["units_computed_now"] == 1
    assert missing.is_file()
    # the wall time reported is that of the run that computed every unit, not of this partial rerun
    assert report["timing"]["complete_run"]["units_computed"] == report["timing"]["units"]
    assert again["timing"]["complete_run"] == report["timing"]["complete_run"]
    assert len(json.loads((out / "runs.json").read_text())) == 2
    before, after = report["protocols"][0]["results"], again["protocols"][0]["results"]
    for row in ("nolearn", "softmax-head", "softmax-nn"):
        assert after[row] == before[row]
    # same seed, same augmentation draws (read back from the feature cache): the recomputed unit gives the same decisions
    assert any((out.parent / "features").glob("??/*.npy"))
    assert after["audio"]["nn1"]["first"]["values"] == pytest.approx(before["audio"]["nn1"]["first"]["values"])


