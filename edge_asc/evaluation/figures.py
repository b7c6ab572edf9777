"""The report's figures (PNG, matplotlib's Agg backend) and the confusion-matrix CSV.

* ``accuracy_vs_k.png``: first-k accuracy against k, decision latency (k x segment) on the top axis;
* ``accuracy_vs_classes.png``: accuracy against the number of classes (random subsets);
* ``confusion_first_segment.png`` / ``.csv``: row-normalised confusion of first-segment decisions.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from edge_asc.evaluation.aggregate import ProtocolSummary
from edge_asc.fsutil import atomic_write_file, atomic_write_text
from edge_asc.evaluation.results import Report
from edge_asc.evaluation.scoring import HEAD_RULE, rule_title

FIG_K = "accuracy_vs_k.png"
FIG_CLASSES = "accuracy_vs_classes.png"
FIG_CONFUSION = "confusion_first_segment.png"
CSV_CONFUSION = "confusion_first_segment.csv"
DPI = 120


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: Path) -> Path:
    fig.tight_layout()
    try:
        atomic_write_file(path, lambda tmp: fig.savefig(tmp, dpi=DPI, format="png"))
    finally:
        plt.close(fig)
    return path


def seeds_text(protocol: ProtocolSummary) -> str:
    n = len(protocol.seeds)
    return f"{n} model seed{'s' if n != 1 else ''}"


def plot_accuracy_vs_k(report: Report, path: Path) -> Path | None:
    """First-k accuracy (mean ± std over folds and seeds) against k, for each method's first rule."""
    grouped = report.grouped
    if grouped is None:
        return None
    plt = _pyplot()
    seg = report.segment_seconds
    rule = report.first_rule
    fig, ax = plt.subplots(figsize=(8, 5))
    for row, rules in grouped.results.items():
        key = rule if rule in rules else (HEAD_RULE if HEAD_RULE in rules else None)
        if key is None:
            continue
        s = rules[key]
        ks = list(range(1, len(s.first_k) + 1))
        mean = [100 * x.mean for x in s.first_k]
        std = [100 * x.std for x in s.first_k]
        primary = row == report.primary
        (line,) = ax.plot(ks, mean, marker="o", lw=2.5 if primary else 1.3, label=report.title_of(row))
        if primary:
            ax.fill_between(ks, [m - d for m, d in zip(mean, std)], [m + d for m, d in zip(mean, std)], color=line.get_color(), alpha=0.15)
            ax.axhline(100 * s.all.mean, color=line.get_color(), ls="--", lw=1.2, label=f"{report.title_of(row)}: all segments")
    ax.set_xlabel("k: segments heard before deciding")
    ax.set_ylabel("scene accuracy (%)")
    ax.set_xticks(range(1, report.k_max + 1))
    top = ax.secondary_xaxis("top", functions=(lambda k: k * seg, lambda t: t / seg))
    top.set_xlabel("decision latency (s of audio = k x %.0f ms)" % (1000 * seg))
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(f"First-k accuracy on {report.dataset.name}: {grouped.title} x {seeds_text(grouped)}\n"
                 "mean over folds and seeds; shading: ±1 std of the default variant", fontsize=9)
    return _save(plt, fig, path)


def plot_accuracy_vs_classes(report: Report, path: Path) -> Path | None:
    study = report.class_study
    if not study or not study.summary:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    sizes_all: set[int] = set()
    full = study.full or {}
    for i, (row, points) in enumerate(study.summary.items()):
        color = f"C{i}"
        sizes = [p.size for p in points]
        sizes_all.update(sizes)
        for first, style in ((True, "-o"), (False, "--s")):
            mean = [100 * (p.first if first else p.all).mean for p in points]
            std = [100 * (p.first if first else p.all).std for p in points]
            ax.errorbar(sizes, mean, yerr=std, fmt=style, color=color, capsize=3,
                        label=f"{report.title_of(row)}: {'first segment' if first else 'all segments'}")
        if row in full:
            p = full[row]
            sizes_all.add(p.size)
            ax.errorbar([p.size], [100 * p.first.mean], yerr=[100 * p.first.std], fmt="*", ms=12, color=color,
                        capsize=3, label=f"{report.title_of(row)}: first segment, all classes (main run, {report.epochs} epochs)")
    xs = sorted(sizes_all)
    ax.plot(xs, [100.0 / n for n in xs], ":", color="grey", label="chance (1 / classes)")
    ax.set_xlabel("number of classes (random subsets, trained on those classes only)")
    ax.set_ylabel("scene accuracy (%)")
    ax.set_xticks(xs)
    ax.set_ylim(0, 105)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    ax.set_title(f"Accuracy vs number of classes ({study.draws} draws per size, {study.epochs} epochs, {rule_title(study.rule)})", fontsize=10)
    return _save(plt, fig, path)


def plot_confusion(report: Report, path: Path) -> Path | None:
    grouped = report.grouped
    if grouped is None or grouped.confusion is None:
        return None
    plt = _pyplot()
    conf = grouped.confusion
    labels = report.dataset.labels
    m = conf.normalised
    n = len(labels)
    fig, ax = plt.subplots(figsize=(0.6 * n + 3, 0.6 * n + 2))
    im = ax.imshow([[100 * v for v in r] for r in m], cmap="Blues", vmin=0, vmax=100)
    for i in range(n):
        for j in range(n):
            v = 100 * m[i][j]
            if v >= 0.5:
                ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=7, color="white" if v > 60 else "black")
    ax.set_xticks(range(n), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), [f"{l} ({sum(c)})" for l, c in zip(labels, conf.counts)], fontsize=8)
    ax.set_xlabel("predicted class (first segment)")
    ax.set_ylabel("true class (test scenes)")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="% of the true class's scenes")
    ax.set_title(f"First-segment confusion, {report.title_of(conf.method)}, {rule_title(conf.rule)}\n"
                 f"{grouped.title}, pooled over folds and seeds; rows sum to 100%", fontsize=9)
    return _save(plt, fig, path)


def write_confusion_csv(report: Report, path: Path) -> Path | None:
    grouped = report.grouped
    if grouped is None or grouped.confusion is None:
        return None
    conf = grouped.confusion
    text = io.StringIO(newline="")
    w = csv.writer(text)
    w.writerow(["true \\ predicted", *report.dataset.labels, "scenes"])
    for label, shares, counts in zip(report.dataset.labels, conf.normalised, conf.counts):
        w.writerow([label, *(f"{v:.4f}" for v in shares), sum(counts)])
    atomic_write_text(path, text.getvalue())
    return path
