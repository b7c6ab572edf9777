"""Table of every recipe experiment in bench/results/quick_eval.jsonl, for the evaluation's investigation.

    python bench/summarise_quick_eval.py [--jsonl bench/results/quick_eval.jsonl] [--out reports/amb13/investigation_runs.md]

Each run of bench/quick_eval.py trained one model per fold (3 folds grouped by recording) and seed and
scored exact 1-NN on the fold's test recordings. The table lists, per run: what differs from today's
trainer defaults (read from the run's stored settings, not from its name), epochs, seeds, first-segment
and all-segments accuracy (mean over folds of the per-fold mean over seeds, and the standard deviation
over folds), the per-fold first-segment figures, and the alternative index rules when the run scored
them. The reference rows are the runs whose settings equal today's defaults except for epochs and seed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from removed_options import REMOVED_NEUTRAL  # bench/, beside this script

from edge_asc.config import to_dict
from edge_asc.training.config import TrainConfig

IGNORED = {"threads", "seed", "epochs"}  # not part of the recipe


def flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


REMOVED = {".".join(path): neutral for path, neutral in REMOVED_NEUTRAL.items()}


def differences(config: dict, defaults: dict) -> list[str]:
    """'key=value' for every stored setting that differs from today's default (new options absent from an
    old run's settings were not there yet, so they were at their neutral default). An option removed from
    the trainer since counts as a difference when the run set it away from its neutral value; settings that
    are no longer settings at all (the network's sizes) are passed over."""
    flat = flatten(config)
    diffs = []
    for key, value in sorted(flat.items()):
        if key.split(".")[-1] in IGNORED or key.startswith("features."):
            continue
        if key in defaults and defaults[key] != value:
            diffs.append(f"{key}={json.dumps(value)}")
        elif key in REMOVED and REMOVED[key] != value:
            diffs.append(f"{key}={json.dumps(value)} (since removed)")
    return diffs


def seeds_of(run: dict) -> list[int]:
    return sorted({run["config"]["seed"] if f.get("seed") is None else f["seed"] for f in run["folds"]})  # old runs: no per-fold seed


def per_fold(run: dict, kind: str, key: str) -> dict[int, float]:
    folds: dict[int, list[float]] = {}
    for f in run["folds"]:
        value = f[kind][key] if kind in f else f.get("rules", {}).get(kind, {}).get(key)
        if value is not None:
            folds.setdefault(f["fold"], []).append(value)
    return {k: sum(v) / len(v) for k, v in sorted(folds.items())}


def mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    m = sum(values) / len(values)
    s = (sum((v - m) ** 2 for v in values) / len(values)) ** 0.5
    return f"{100 * m:.1f} ± {100 * s:.1f}"


def table(runs: list[dict]) -> str:
    defaults = flatten(to_dict(TrainConfig()))
    lines = [
        "| run | differs from today's defaults | epochs | seeds | first segment | all segments | first segment per fold (1 / 2 / 3) | index of at most 100 segments per recording, first / all | index of `build-index --max-per-label 350`, first / all | nearest recording centroid, first / all |",
        "| :--- | :--- | ---: | :--- | ---: | ---: | :--- | :--- | :--- | :--- |",
    ]
    for run in runs:
        diffs = differences(run["config"], defaults)
        first, all_ = per_fold(run, "encoder", "first"), per_fold(run, "encoder", "all")
        folds = " / ".join(f"{100 * v:.1f}" for v in first.values())
        rules = []
        for rule in ("balanced100", "per_label350", "rec_centroid"):
            rf, ra = per_fold(run, rule, "first"), per_fold(run, rule, "all")
            rules.append(f"{mean_std(list(rf.values()))} / {mean_std(list(ra.values()))}" if rf else "-")
        name = f"**{run['name']}** (reference)" if not diffs else run["name"]
        lines.append(
            f"| {name} | {', '.join(diffs) or '(defaults)'} | {run['config']['epochs']} | {','.join(map(str, seeds_of(run)))} | "
            f"{mean_std(list(first.values()))} | {mean_std(list(all_.values()))} | {folds} | {rules[0]} | {rules[1]} | {rules[2]} |"
        )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jsonl", type=Path, default=Path("bench/results/quick_eval.jsonl"))
    ap.add_argument("--out", type=Path, default=None, help="write the table as markdown here (default: print it)")
    args = ap.parse_args()
    runs = [json.loads(line) for line in args.jsonl.read_text(encoding="utf-8").splitlines() if line.strip()]
    baseline = runs[0]["summary"]
    text = (
        f"<!-- generated by bench/summarise_quick_eval.py from {args.jsonl}; do not edit -->\n"
        f"{len(runs)} runs of `bench/quick_eval.py` on ambient13, 3 folds grouped by recording (split seed 0), exact 1-NN, "
        "accuracies in %, mean ± standard deviation over folds (per fold: mean over seeds). The no-learning baseline on "
        f"these folds: first segment {100 * baseline['baseline_first'][0]:.1f}%, all segments {100 * baseline['baseline_all'][0]:.1f}%.\n\n"
        + table(runs)
        + "\n"
    )
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
