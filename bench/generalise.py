"""Does the encoder generalise? ambient13 and debian-ambient (edge-asc data debian), leak-free, paired by seed.

    OMP_NUM_THREADS=1 python bench/generalise.py --amb ../shared/data/ambient13 --deb ~/data/debian-ambient \
        --seeds 0,1 --epochs 12 --parts paired,cross,union --json bench/results/generalise.jsonl

Parts (every split grouped by recording; every score exact 1-NN on the embeddings of the clean segments):
- ``paired``: the ambient13 test folds of the report (split_by_recording, 3 folds, split seed 0); per fold and seed
  two encoders, one trained on the fold's ambient13 training side alone (``amb``) and one on it plus every
  debian-ambient recording (``amb+deb``), both scored on the same ambient13 test side with the same seed: the gain
  of the added data, paired. The index holds the encoder's own training segments.
- ``cross``: train on all of one source, test on all of the other (only the classes both hold), both directions,
  with the softmax variant (1-NN on its embedding) when ``--softmax`` is given.
- ``union``: 3 folds grouped by recording over the union of both sources, scored per source.
Beside every encoder score: the no-learning baseline (mean and std of the 52 features per segment, standardised
on the training side, exact 1-NN over the same training segments), chance (one over the classes tested), and the
encoder's embedding concatenated with the baseline's standardised statistics (``concatW``, the statistics scaled
to the embedding's mean norm times each weight W of ``--concat-w``): whether the learned part adds to what the statistics know.
Scores: ``first`` (a scene's first 300 ms), ``segment`` (every segment alone), ``all`` (majority over the scene),
each a mean over scenes' segments as the report computes them. Prints one line per model and a summary table
(mean +- std over folds of the per-fold mean over seeds; over seeds for the one cross-source split); --json appends every result as one line, and
``--tables FILE`` prints the tables of such a file, pooling runs with the same settings.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quick_eval import apply_sets, nearest_labels, scores  # noqa: E402  (the same scoring as the screens)

from edge_asc.commands.common import train_config_from_file  # noqa: E402
from edge_asc.dsp.features import FeatureExtractor  # noqa: E402
from edge_asc.evaluation.baselines import Standardiser, segment_statistics  # noqa: E402
from edge_asc.training.combine import load_datasets  # noqa: E402
from edge_asc.training.datasets import extract_segments  # noqa: E402
from edge_asc.training.feature_cache import FeatureCache  # noqa: E402
from edge_asc.training.splits import split_by_recording  # noqa: E402
from edge_asc.training.train import train  # noqa: E402

log = logging.getLogger("generalise")
AMB, DEB = 0, 1  # source indices in the combined dataset (--amb first)


@dataclasses.dataclass(frozen=True)
class Task:
    part: str  # paired / cross / union
    name: str  # what is trained and tested, e.g. "fold1 amb+deb"
    fold: int
    train: np.ndarray  # scene indices
    test: np.ndarray  # scene indices


def plan(dataset, parts: list[str], n_folds: int) -> list[Task]:
    src = dataset.scene_sources()
    labels = np.array([s.label for s in dataset.scenes])
    amb, deb = np.flatnonzero(src == AMB), np.flatnonzero(src == DEB)
    tasks = []
    if "paired" in parts:
        amb_only = dataclasses.replace(dataset, scenes=[dataset.scenes[i] for i in amb], sources=(), roots=())
        for k, fold in enumerate(split_by_recording(amb_only, n_folds, 0), start=1):
            tr, te = amb[fold.train], amb[fold.test]
            tasks += [Task("paired", f"fold{k} amb", k, tr, te), Task("paired", f"fold{k} amb+deb", k, np.concatenate([tr, deb]), te)]
    if "cross" in parts:
        shared = np.intersect1d(labels[amb], labels[deb])
        tasks.append(Task("cross", "amb->deb", 0, amb, deb[np.isin(labels[deb], shared)]))
        tasks.append(Task("cross", "deb->amb", 0, deb, amb[np.isin(labels[amb], shared)]))
    if "union" in parts:
        for k, fold in enumerate(split_by_recording(dataset, n_folds, 0), start=1):
            tasks.append(Task("union", f"fold{k} union", k, fold.train, fold.test))
    return tasks


def score_rows(pred, te, n_classes, src_of_scene) -> dict:
    """Scores over all test segments and per source."""
    out = {"all_sources": scores(pred, te.labels, te.scene, te.position, n_classes)}
    for s, name in ((AMB, "amb"), (DEB, "deb")):
        rows = src_of_scene[te.scene] == s
        if rows.any() and not rows.all():
            out[name] = scores(pred[rows], te.labels[rows], te.scene[rows], te.position[rows], n_classes)
    for v in out.values():
        v.pop("confusion")
    return out


def run_task(task: Task, config, dataset, segs, cache, concat_ws: list[float], variant: str) -> dict:
    n_classes = len(dataset.labels)
    src_of_scene = dataset.scene_sources()
    tr, te = segs.of_scenes(task.train), segs.of_scenes(task.test)
    t0 = time.perf_counter()
    trained = train(config, dataset, task.train, progress=False, cache=cache)
    seconds = time.perf_counter() - t0
    emb_tr, emb_te = trained.embed(tr.features), trained.embed(te.features)  # (N, D), (M, D)
    stats = Standardiser.fit(segment_statistics(tr.features))
    s_tr, s_te = stats.apply(segment_statistics(tr.features)), stats.apply(segment_statistics(te.features))  # (N, 104)
    unit = float(np.linalg.norm(emb_tr, axis=1).mean()) / float(np.linalg.norm(s_tr, axis=1).mean())  # statistics at the embedding's norm
    classes_tested = np.unique(te.labels).shape[0]
    result = {
        "part": task.part, "name": task.name, "fold": task.fold, "seed": config.seed, "variant": variant, "seconds": seconds,
        "chance": 1.0 / classes_tested, "classes_tested": int(classes_tested),
        "encoder": score_rows(nearest_labels(emb_te, emb_tr, tr.labels), te, n_classes, src_of_scene),
        "baseline": score_rows(nearest_labels(s_te, s_tr, tr.labels), te, n_classes, src_of_scene),
    }
    for w in concat_ws:
        q, ref = np.hstack([emb_te, w * unit * s_te]), np.hstack([emb_tr, w * unit * s_tr])
        result[f"concat{w:g}"] = score_rows(nearest_labels(q, ref, tr.labels), te, n_classes, src_of_scene)
    enc, base = (result[k]["all_sources"] for k in ("encoder", "baseline"))
    cats = " ".join(f"w{w:g} {result[f'concat{w:g}']['all_sources']['first']:.3f}/{result[f'concat{w:g}']['all_sources']['segment']:.3f}" for w in concat_ws)
    print(
        f"{task.part:6s} {task.name:16s} {variant:8s} seed {config.seed}: encoder first {enc['first']:.3f} segment {enc['segment']:.3f} "
        f"all {enc['all']:.3f} | baseline {base['first']:.3f} {base['segment']:.3f} {base['all']:.3f} | concat first/segment {cats} "
        f"| chance {result['chance']:.3f} | {seconds:.0f} s",
        flush=True,
    )
    return result


def summary(results: list[dict]) -> list[str]:
    """Mean +- std over folds (of the per-fold mean over seeds) per (part, name without fold, variant, method, source)."""
    lines = ["| part | trained -> tested | variant | method | source | first | segment | all | chance |", "|---|---|---|---|---|---|---|---|---|"]
    keys = sorted({(r["part"], r["name"].split(" ", 1)[-1], r["variant"]) for r in results})
    for part, name, variant in keys:
        rs = [r for r in results if r["part"] == part and r["name"].split(" ", 1)[-1] == name and r["variant"] == variant]
        methods = [m for m in rs[0] if (m in ("encoder", "baseline") or m.startswith("concat")) and all(m in r for r in rs)]
        for method in methods:  # the concatenation weights every pooled run measured
            for source in rs[0][method]:
                cells = []
                for metric in ("first", "segment", "all"):
                    folds = sorted({r["fold"] for r in rs})
                    per_fold = [np.mean([r[method][source][metric] for r in rs if r["fold"] == f]) for f in folds]
                    if len(folds) == 1:  # one split (cross-source): the spread is over seeds
                        per_fold = [r[method][source][metric] for r in rs]
                    cells.append(f"{100 * np.mean(per_fold):.1f} ± {100 * np.std(per_fold):.1f}")
                chance = np.mean([r["chance"] for r in rs])
                lines.append(f"| {part} | {name} | {variant} | {method} | {source} | {' | '.join(cells)} | {100 * chance:.1f} |")
    return lines


def tables(path: Path) -> int:
    """The summary table of every recipe in a --json file: runs with the same settings pooled (seeds, parts)."""
    recipes: dict[str, list[dict]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        run = json.loads(line)
        recipes.setdefault(f"epochs={run['epochs']} {' '.join(run['sets']) or 'default recipe'}", []).extend(run["results"])
    for recipe, results in recipes.items():
        seeds = sorted({r["seed"] for r in results})
        print(f"\n### {recipe} (seeds {', '.join(map(str, seeds))})\n")
        print("\n".join(summary(results)))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--amb", type=Path, default=Path("../shared/data/ambient13"))
    ap.add_argument("--deb", type=Path, help="the output of `edge-asc data debian`")
    ap.add_argument("--parts", default="paired,cross,union")
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--config", type=Path, default=None)
    ap.add_argument("--set", action="append", default=[], help="KEY=VALUE train setting (as bench/quick_eval.py)")
    ap.add_argument("--softmax", action="store_true", help="also train the softmax variant in the cross part")
    ap.add_argument("--only", default=None, help="comma-separated task names to run (e.g. 'amb+deb')")
    ap.add_argument("--concat-w", default="1,2,4", help="comma-separated weights of the statistics in the concatenation")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--name", default="")
    ap.add_argument("--tables", type=Path, default=None, help="only print the pooled tables of a --json file")
    args = ap.parse_args()
    if args.tables is not None:
        return tables(args.tables)
    if args.deb is None:
        ap.error("--deb is required")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    base = apply_sets(train_config_from_file(args.config), args.set)
    base = dataclasses.replace(base, epochs=args.epochs)
    dataset = load_datasets([args.amb, args.deb])
    segs = extract_segments(dataset, FeatureExtractor(base.features))  # clean features of every scene, for scoring
    cache = FeatureCache.open()
    tasks = plan(dataset, args.parts.split(","), args.folds)
    if args.only:
        tasks = [t for t in tasks if t.name.split(" ", 1)[-1] in args.only.split(",")]
    variants = [base.model.variant] + (["softmax"] if args.softmax else [])
    t_start = time.perf_counter()
    results = []
    for task in tasks:
        for seed in (int(s) for s in args.seeds.split(",")):
            for variant in variants if task.part == "cross" else variants[:1]:
                config = dataclasses.replace(base, seed=seed, model=dataclasses.replace(base.model, variant=variant))
                results.append(run_task(task, config, dataset, segs, cache, [float(w) for w in args.concat_w.split(",")], variant))
    print(f"\n{args.name} {' '.join(args.set)} epochs={args.epochs} seeds={args.seeds} ({time.perf_counter() - t_start:.0f} s)")
    print("\n".join(summary(results)), flush=True)
    if args.json is not None:
        with open(args.json, "a", encoding="utf-8") as f:
            f.write(json.dumps({"name": args.name, "sets": args.set, "epochs": args.epochs, "results": results}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
