"""Benchmark: adaptive decisions (decision.mode adaptive, k_max) against fixed k, on unheard recordings.

    OMP_NUM_THREADS=1 python bench/bench_adaptive.py --work /tmp/bench_enroll --json bench/results/bench_adaptive.json --png bench/results/bench_adaptive.png

The fold encoders and indexes of bench_enroll.py (one encoder per fold trained on the fold's training
recordings only; ``--work`` is shared with it, so they are trained once). Every test recording is streamed
from its start; each segment's label is its nearest item (exact search) in the fold's base index
(``model``), or in base + the recording's own first 20 s enrolled (``enrolled 20 s``: the rest of the
recording is scored). The segment labels go through runtime.decision.DecisionPolicy, one fresh policy per
recording: ``window`` with k = 1..10 and ``adaptive`` with k_max = 2..10. Accuracy: share of the audio
whose decision gives the recording's class (each decision weighted by the segments it used; the share of
decisions, ``decision_accuracy``, favours adaptive, which decides more often where the segments agree);
latency: mean audio per decision (segments x 0.3 s). Adaptive decisions equal
the k_max window vote over the same segments by construction (runtime/decision.py); what the bench
measures is how much sooner they come, and whether adaptive at k_max reaches the accuracy of a fixed k at
a lower mean latency.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench_enroll import FOLD_EPOCHS, REPO, embed_recordings, fold_models, nearest, recording_features
from edge_asc.runtime.decision import DecisionPolicy, Vote
from edge_asc.training.datasets import load_dataset
from edge_asc.training.splits import split_by_recording

KS = tuple(range(1, 11))
K_MAXES = tuple(range(2, 11))
ENROL_S = 20.0


def streams(dataset, splits, work: Path, epochs: int) -> dict[str, list[tuple[int, np.ndarray, np.ndarray]]]:
    """setting -> [(class id, segment labels (n,), distances (n,)) per test recording of every fold]."""
    models = fold_models(dataset, splits, work, epochs)
    feats = recording_features(dataset, models[0][0].meta.feature_config, work / "recording_features.npz")
    seg_s = models[0][0].meta.feature_config.segment_seconds
    n_enr = int(round(ENROL_S / seg_s))
    out: dict[str, list] = {"model": [], f"enrolled {ENROL_S:g} s": []}
    for (encoder, index), split in zip(models, splits):
        test = sorted({dataset.scenes[i].recording_id for i in split.test})
        rec_emb = embed_recordings(encoder, {r: feats[r] for r in test})
        vecs, labs = index.vectors(), index.item_labels
        for r in test:
            label, e = rec_emb[r]
            cls = list(index.labels).index(label)
            ids, d = nearest(e, vecs)
            out["model"].append((cls, labs[ids], d))
            if len(e) > n_enr + 10:
                items = np.concatenate([vecs, e[:n_enr]])
                ilab = np.concatenate([labs, np.full(n_enr, cls)])
                ids, d = nearest(e[n_enr:], items)
                out[f"enrolled {ENROL_S:g} s"].append((cls, ilab[ids], d))
    return out


def decide(recs, n_labels: int, mode: str, k: int) -> tuple[float, float, int, float]:
    """(accuracy weighted by segments, mean segments per decision, decisions, share of right decisions)."""
    right = used = total = right_used = 0
    for cls, labels, dists in recs:
        policy = DecisionPolicy(n_labels, k=k if mode == "window" else 1, mode=mode, k_max=k)
        for i, (lab, d) in enumerate(zip(labels, dists)):
            out = policy.push(Vote(i, int(lab), float(d), i, i + 1, 0.0))
            if out is not None:
                right, used, total = right + int(out.label == cls), used + out.k, total + 1
                right_used += out.k * int(out.label == cls)
    return right_used / max(used, 1), used / max(total, 1), total, right / max(total, 1)


def curves(recs, n_labels: int, seg_s: float) -> dict:
    rows = {}
    for mode, ks in (("window", KS), ("adaptive", K_MAXES)):
        rows[mode] = []
        for k in ks:
            acc, segs, n, dec_acc = decide(recs, n_labels, mode, k)
            rows[mode].append({"k": k, "accuracy": acc, "latency_s": segs * seg_s, "decisions": n, "decision_accuracy": dec_acc})
    fixed = rows["window"]
    verdicts = []
    for a in rows["adaptive"]:
        reach = [f for f in fixed if f["accuracy"] <= a["accuracy"] + 1e-9]
        best = max(reach, key=lambda f: f["accuracy"]) if reach else None
        verdicts.append({"k_max": a["k"], "accuracy": a["accuracy"], "latency_s": a["latency_s"],
                         "best_fixed_k_it_reaches": best and best["k"], "that_k_latency_s": best and best["latency_s"],
                         "lower_latency": bool(best and a["latency_s"] < best["latency_s"])})
    rows["verdict"] = verdicts
    return rows


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(res["settings"]), figsize=(6 * len(res["settings"]), 4.2))
    for ax, (name, rows) in zip(np.atleast_1d(axes), res["settings"].items()):
        for mode, marker in (("window", "o-"), ("adaptive", "s--")):
            xs, ys = [r["latency_s"] for r in rows[mode]], [r["accuracy"] for r in rows[mode]]
            ax.plot(xs, ys, marker, label=f"{'fixed k' if mode == 'window' else 'adaptive (k_max)'}")
            for r in rows[mode]:
                ax.annotate(str(r["k"]), (r["latency_s"], r["accuracy"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_title(f"{name}: unheard recordings, 3 folds")
        ax.set_xlabel("mean audio per decision (s)")
        ax.set_ylabel("accuracy (decisions weighted by their segments)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "ambient13")
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "bench_enroll", help="fold models (shared with bench_enroll.py)")
    p.add_argument("--epochs", type=int, default=FOLD_EPOCHS)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--png", type=Path, default=None)
    args = p.parse_args(argv)
    dataset = load_dataset(args.data)
    splits = split_by_recording(dataset, 3, 0)
    seg_s = 0.3
    res = {"note": f"fold encoders trained {args.epochs} epochs on each fold's training recordings; test recordings unheard", "settings": {}}
    for name, recs in streams(dataset, splits, args.work, args.epochs).items():
        res["settings"][name] = curves(recs, len(dataset.labels), seg_s)
    for name, rows in res["settings"].items():
        print(f"\n{name}\n  mode      k  accuracy  latency_s  decisions  decision_accuracy")
        for mode in ("window", "adaptive"):
            for r in rows[mode]:
                print(f"  {mode:<8} {r['k']:>2}   {r['accuracy']:.3f}     {r['latency_s']:.2f}     {r['decisions']:>5}      {r['decision_accuracy']:.3f}")
        for v in rows["verdict"]:
            print(f"  adaptive k_max={v['k_max']}: {v['accuracy']:.3f} at {v['latency_s']:.2f} s; fixed k={v['best_fixed_k_it_reaches']} "
                  f"({v['that_k_latency_s'] or 0:.2f} s) is the best fixed k it reaches; lower latency: {v['lower_latency']}")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    if args.png:
        plot(res, args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
