"""Quick generalisation check of a training recipe: K folds grouped by recording, 1-NN on embeddings.

    OMP_NUM_THREADS=1 python bench/quick_eval.py --data ../shared/data/ambient13 --epochs 30 \
        --set augment.mix_prob=0.0 --set model.hidden_size=128

Per fold: train on the fold's training scenes (edge_asc.training.train.fit_scenes, the trainer's own recipe),
embed every segment of both sides, classify each test segment by its nearest training segment (exact
L2), then score first-segment accuracy (position 0 of each test scene), mean segment accuracy (every
position), and all-segments accuracy (majority over the scene). The no-learning baseline (mean and std
of the 52 features over a segment, standardised, 1-NN) runs on the same folds, and the same embeddings are
also scored against smaller indexes (see rule_scores), which measures what condensing the index costs.
Prints one line per fold and a mean +- std summary; --json appends the result to a file
(bench/summarise_quick_eval.py turns that file into a table). The options screened once and since removed from
the trainer (bench/removed_options.py) are refused like any unknown key; their runs stay in
bench/results/quick_eval.jsonl as the record.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from edge_asc.commands.common import TRAIN_SECTIONS, train_config_from_file
from edge_asc.config import ConfigError, apply_overrides, to_dict
from edge_asc.dsp.features import FeatureExtractor
from edge_asc.runtime.select import select_per_label
from edge_asc.training.config import TrainConfig
from edge_asc.training.datasets import extract_segments, load_dataset, load_scene_audio
from edge_asc.training.splits import split_by_recording
from edge_asc.training.train import fit_scenes

log = logging.getLogger("quick_eval")


def apply_sets(config: TrainConfig, sets: list[str]) -> TrainConfig:
    """``KEY=VALUE`` settings (dotted: ``model.hidden_size=128``; values read as YAML) through the config loader."""
    overrides = {}
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item!r}: expected KEY=VALUE")
        overrides[key.strip()] = yaml.safe_load(value)
    return apply_overrides(config, overrides)


def nearest_labels(query: np.ndarray, ref: np.ndarray, ref_labels: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """Label of the exact L2 nearest neighbour of each query row."""
    ref_sq = (ref * ref).sum(axis=1)
    out = np.empty(query.shape[0], dtype=np.int64)
    for i in range(0, query.shape[0], chunk):
        q = query[i : i + chunk]
        d = ref_sq[None, :] - 2.0 * q @ ref.T  # (q, n) up to a per-row constant
        out[i : i + chunk] = ref_labels[d.argmin(axis=1)]
    return out


def scores(pred: np.ndarray, labels: np.ndarray, scene: np.ndarray, position: np.ndarray, n_classes: int) -> dict:
    first = position == 0
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)  # rows truth, columns prediction (all segments)
    np.add.at(confusion, (labels, pred), 1)
    scenes = np.unique(scene)
    votes = np.zeros((scenes.shape[0], n_classes), dtype=np.int64)
    row = np.searchsorted(scenes, scene)
    np.add.at(votes, (row, pred), 1)
    truth = np.zeros(scenes.shape[0], dtype=np.int64)
    truth[row] = labels
    return {
        "first": float(np.mean(pred[first] == labels[first])),
        "segment": float(np.mean(pred == labels)),
        "all": float(np.mean(votes.argmax(axis=1) == truth)),
        "confusion": confusion.tolist(),
    }


def balanced_rows(recording: np.ndarray, cap: int) -> np.ndarray:
    """Row indices keeping at most ``cap`` evenly spaced segments of every recording."""
    keep = []
    for rec in np.unique(recording):
        rows = np.flatnonzero(recording == rec)
        if rows.shape[0] > cap:
            rows = rows[np.linspace(0, rows.shape[0] - 1, cap).round().astype(np.int64)]
        keep.append(rows)
    return np.concatenate(keep)


def rule_scores(emb_tr: np.ndarray, emb_te: np.ndarray, tr, te, n_classes: int) -> dict:
    """Alternative segment decisions on the same embeddings: a recording-balanced index (at most 100
    segments, 30 s, per training recording), the index `edge-asc build-index --max-per-label 350` keeps
    (at most 350 segments per label, round-robin over its recordings), and the nearest training-recording
    centroid."""
    out = {}
    rows = select_per_label(tr.labels, tr.recording, 350, seed=0)
    out["per_label350"] = scores(nearest_labels(emb_te, emb_tr[rows], tr.labels[rows]), te.labels, te.scene, te.position, n_classes)
    out["per_label350"]["items"] = [int(rows.shape[0]), int(tr.labels.shape[0])]
    rows = balanced_rows(tr.recording, 100)
    out["balanced100"] = scores(nearest_labels(emb_te, emb_tr[rows], tr.labels[rows]), te.labels, te.scene, te.position, n_classes)
    recs = np.unique(tr.recording)
    cent = np.stack([emb_tr[tr.recording == r].mean(axis=0) for r in recs])  # (R, D)
    cent_labels = np.array([tr.labels[tr.recording == r][0] for r in recs])
    out["rec_centroid"] = scores(nearest_labels(emb_te, cent, cent_labels), te.labels, te.scene, te.position, n_classes)
    for v in out.values():
        v.pop("confusion")
    return out


def baseline_features(features: np.ndarray) -> np.ndarray:
    return np.concatenate([features.mean(axis=1), features.std(axis=1)], axis=1)  # (N, 104)


def summarise(results: list[dict], split_note: list, seeds: list[int]) -> dict:
    """Mean and std over folds (of the per-fold mean over seeds) of every score, the encoder's, the baseline's and each rule's."""

    def agg(kind: str, key: str) -> tuple[float, float]:
        # mean over seeds within a fold, then mean and std over folds
        per_fold = [np.mean([r[kind][key] for r in results if r["fold"] == k]) for k in sorted({r["fold"] for r in results})]
        return float(np.mean(per_fold)), float(np.std(per_fold))

    summary = {"split": split_note, "seeds": seeds, **{f"{kind}_{key}": agg(kind, key) for kind in ("encoder", "baseline") for key in ("first", "segment", "all")}}
    for name in results[0]["rules"] if results else ():
        per_fold = {key: [np.mean([r["rules"][name][key] for r in results if r["fold"] == k]) for k in sorted({r["fold"] for r in results})] for key in ("first", "all")}
        summary.update({f"{name}_{key}": (float(np.mean(v)), float(np.std(v))) for key, v in per_fold.items()})
    return summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/ambient13")
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--seeds", type=str, default=None, help="comma-separated training seeds, each fold trained once per seed")
    ap.add_argument("--config", type=Path, default=None, help=f"YAML file with the trainer's sections ({', '.join(TRAIN_SECTIONS)})")
    ap.add_argument("--set", action="append", default=[], help="KEY=VALUE train setting (dotted for model./augment./features.), over --config")
    ap.add_argument("--only-folds", type=str, default=None, help="comma-separated fold numbers (1-based)")
    ap.add_argument("--eval-every", type=int, default=0, help="also score the fold every N epochs (a learning curve)")
    ap.add_argument("--json", type=Path, default=None, help="append the result as one JSON line")
    ap.add_argument("--name", default="")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("edge_asc.training.datasets",):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    try:
        config = apply_sets(train_config_from_file(args.config), args.set)
        config = apply_overrides(config, {k: v for k, v in {"epochs": args.epochs, "seed": args.seed}.items() if v is not None})
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    dataset = load_dataset(args.data)
    folds = split_by_recording(dataset, args.folds, args.split_seed)
    # which recordings each fold tests, so runs are only compared on the same split
    split_note = [sorted({dataset.scenes[i].recording_id for i in f.test}) for f in folds]
    audio = load_scene_audio(dataset)
    extractor = FeatureExtractor(config.features)
    segs = extract_segments(dataset, extractor, audio=audio)
    scene_labels, scene_recs = dataset.scene_labels(), dataset.scene_recordings()
    n_classes = len(dataset.labels)
    only = None if args.only_folds is None else {int(k) for k in args.only_folds.split(",")}
    seeds = [config.seed] if args.seeds is None else [int(x) for x in args.seeds.split(",")]

    results = []
    t_start = time.perf_counter()
    for k, fold in enumerate(folds, start=1):
        if only is not None and k not in only:
            continue
        train_mask = np.isin(segs.scene, fold.train)
        test_mask = np.isin(segs.scene, fold.test)
        tr, te = segs.select(train_mask), segs.select(test_mask)
        # no-learning baseline
        b_tr, b_te = baseline_features(tr.features), baseline_features(te.features)
        mu, sd = b_tr.mean(axis=0), b_tr.std(axis=0) + 1e-6
        base = scores(nearest_labels((b_te - mu) / sd, (b_tr - mu) / sd, tr.labels), te.labels, te.scene, te.position, n_classes)
        for seed in seeds:
            results.append(run_fold(args, dataclasses.replace(config, seed=seed), k, fold, audio, tr, te, base, scene_labels, scene_recs, dataset.labels))

    summary = summarise(results, split_note, seeds)
    line = " ".join(f"{k} {v[0]:.3f}+-{v[1]:.3f}" for k, v in summary.items() if k not in ("split", "seeds"))
    print(f"SUMMARY {args.name} {' '.join(args.set)} epochs={config.epochs} seeds={seeds}: {line} ({time.perf_counter() - t_start:.0f} s)", flush=True)
    if args.json is not None:
        with open(args.json, "a", encoding="utf-8") as f:
            f.write(json.dumps({"name": args.name, "sets": args.set, "config": to_dict(config), "folds": results, "summary": summary}) + "\n")
    return 0


def run_fold(args, config, k, fold, audio, tr, te, base, scene_labels, scene_recs, label_names) -> dict:
    """Train on one fold with one seed (scoring every --eval-every epochs when asked) and score it."""
    n_classes = len(label_names)
    t0 = time.perf_counter()
    fold_audio = [audio[i] for i in fold.train]
    stops = list(range(args.eval_every, config.epochs, args.eval_every)) if args.eval_every else []
    curve = []
    with tempfile.TemporaryDirectory() as run_dir:
        for i, stop in enumerate(stops + [config.epochs]):
            trained = fit_scenes(
                config, fold_audio, scene_labels[fold.train], scene_recs[fold.train], label_names,
                out_dir=run_dir if stops else None, resume=i > 0, progress=False, stop_after=stop,
            )
            emb_tr, emb_te = trained.embed(tr.features), trained.embed(te.features)
            enc = scores(nearest_labels(emb_te, emb_tr, tr.labels), te.labels, te.scene, te.position, n_classes)
            curve.append({"epoch": stop, **enc})
            if stops:
                print(f"  fold {k} epoch {stop}: first {enc['first']:.3f} segment {enc['segment']:.3f} all {enc['all']:.3f}", flush=True)
    seconds = time.perf_counter() - t0
    rules = rule_scores(emb_tr, emb_te, tr, te, n_classes)
    last = trained.history[-1]
    print(
        f"fold {k} seed {config.seed}: encoder first {enc['first']:.3f} segment {enc['segment']:.3f} all {enc['all']:.3f} | "
        f"baseline first {base['first']:.3f} all {base['all']:.3f} | loss {last.loss:.4f} "
        f"importance {last.importance:.2f} train {seconds:.0f} s | "
        + " ".join(f"{name} first {r['first']:.3f} all {r['all']:.3f}" for name, r in rules.items()),
        flush=True,
    )
    return {"fold": k, "seed": config.seed, "encoder": enc, "baseline": base, "seconds": seconds,
            "final_loss": last.loss, "importance": last.importance, "curve": curve, "rules": rules}


if __name__ == "__main__":
    sys.exit(main())
