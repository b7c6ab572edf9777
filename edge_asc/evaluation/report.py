"""The evaluation report: report.json, report.md, PNG figures and the confusion-matrix CSV.

Everything here renders the dictionary built by ``evaluate.build_report``; nothing is measured here.
``notes.md`` in the output folder, when present, is hand-written text (what was tried and what changed the
result) and is copied into report.md under its own heading, so regenerating the report keeps it.

Files written into the output folder:

* ``report.json``: the whole dictionary (every per-unit accuracy behind each mean);
* ``report.md``: the tables (Table 1 layout, the k / latency / accuracy table, per class, class count);
* ``accuracy_vs_k.png``: first-k accuracy against k, decision latency (k x segment) on the top axis;
* ``accuracy_vs_classes.png``: accuracy against the number of classes (random subsets);
* ``confusion_first_segment.png`` / ``.csv``: row-normalised confusion of first-segment decisions.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

log = logging.getLogger(__name__)

NOTES_FILE = "notes.md"
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
FIG_K = "accuracy_vs_k.png"
FIG_CLASSES = "accuracy_vs_classes.png"
FIG_CONFUSION = "confusion_first_segment.png"
CSV_CONFUSION = "confusion_first_segment.csv"
DPI = 120
PAPER_RATIO = 0.93  # the paper's headline: first segment keeps 93% of the all-segments accuracy


# --- formatting -------------------------------------------------------------------------------------------


def pct(value: float | None, digits: int = 1) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.{digits}f}"


def pm(summary: Mapping[str, Any] | None) -> str:
    """'47.1 ± 3.2' (percent) from a {"mean", "std"} summary."""
    if not summary or summary.get("mean") is None:
        return "-"
    return f"{pct(summary['mean'])} ± {pct(summary['std'])}"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    align = align or ("l" + "r" * (len(header) - 1))
    marks = {"l": ":---", "r": "---:", "c": ":---:"}
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(marks[a] for a in align) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def title_of(report: Mapping[str, Any], row: str) -> str:
    return report.get("method_titles", {}).get(row, row)


def rule_title(rule: str) -> str:
    return "own softmax head" if rule == "head" else f"{rule[2:]}-NN"


# --- figures ----------------------------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_accuracy_vs_k(report: Mapping[str, Any], path: Path) -> Path | None:
    """First-k accuracy (mean ± std over folds and seeds) against k, for each method's first rule."""
    grouped = _protocol(report, "grouped")
    if grouped is None:
        return None
    plt = _pyplot()
    seg = report["segment_seconds"]
    rule = f"nn{report['neighbours'][0]}"
    fig, ax = plt.subplots(figsize=(8, 5))
    for row, rules in grouped["results"].items():
        key = rule if rule in rules else ("head" if "head" in rules else None)
        if key is None:
            continue
        s = rules[key]
        ks = list(range(1, len(s["first_k"]) + 1))
        mean = [100 * x["mean"] for x in s["first_k"]]
        std = [100 * x["std"] for x in s["first_k"]]
        primary = row == report["primary"]
        (line,) = ax.plot(ks, mean, marker="o", lw=2.5 if primary else 1.3, label=title_of(report, row))
        if primary:
            ax.fill_between(ks, [m - d for m, d in zip(mean, std)], [m + d for m, d in zip(mean, std)], color=line.get_color(), alpha=0.15)
            ax.axhline(100 * s["all"]["mean"], color=line.get_color(), ls="--", lw=1.2, label=f"{title_of(report, row)}: all segments")
    ax.set_xlabel("k: segments heard before deciding")
    ax.set_ylabel("scene accuracy (%)")
    ax.set_xticks(range(1, report["k_max"] + 1))
    top = ax.secondary_xaxis("top", functions=(lambda k: k * seg, lambda t: t / seg))
    top.set_xlabel("decision latency (s of audio = k x %.0f ms)" % (1000 * seg))
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(f"First-k accuracy on {report['dataset']['name']}: {grouped['title']} x {_seeds(grouped)}\n"
                 "mean over folds and seeds; shading: ±1 std of the default variant", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def plot_accuracy_vs_classes(report: Mapping[str, Any], path: Path) -> Path | None:
    study = report.get("class_study")
    if not study or not study["summary"]:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    sizes_all: set[int] = set()
    full = study.get("full") or {}
    for i, (row, points) in enumerate(study["summary"].items()):
        color = f"C{i}"
        sizes = [p["size"] for p in points]
        sizes_all.update(sizes)
        for key, style in (("first", "-o"), ("all", "--s")):
            mean = [100 * p[key]["mean"] for p in points]
            std = [100 * p[key]["std"] for p in points]
            ax.errorbar(sizes, mean, yerr=std, fmt=style, color=color, capsize=3,
                        label=f"{title_of(report, row)}: {'first segment' if key == 'first' else 'all segments'}")
        if row in full:
            p = full[row]
            sizes_all.add(p["size"])
            ax.errorbar([p["size"]], [100 * p["first"]["mean"]], yerr=[100 * p["first"]["std"]], fmt="*", ms=12, color=color,
                        capsize=3, label=f"{title_of(report, row)}: first segment, all classes (main run, {report['epochs']} epochs)")
    xs = sorted(sizes_all)
    ax.plot(xs, [100.0 / n for n in xs], ":", color="grey", label="chance (1 / classes)")
    ax.set_xlabel("number of classes (random subsets, trained on those classes only)")
    ax.set_ylabel("scene accuracy (%)")
    ax.set_xticks(xs)
    ax.set_ylim(0, 105)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    ax.set_title(f"Accuracy vs number of classes ({study['draws']} draws per size, {study['epochs']} epochs, {study['rule'][2:]}-NN)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def plot_confusion(report: Mapping[str, Any], path: Path) -> Path | None:
    grouped = _protocol(report, "grouped")
    if grouped is None or not grouped.get("confusion"):
        return None
    plt = _pyplot()
    conf = grouped["confusion"]
    labels = report["dataset"]["labels"]
    m = conf["normalised"]
    n = len(labels)
    fig, ax = plt.subplots(figsize=(0.6 * n + 3, 0.6 * n + 2))
    im = ax.imshow([[100 * v for v in r] for r in m], cmap="Blues", vmin=0, vmax=100)
    for i in range(n):
        for j in range(n):
            v = 100 * m[i][j]
            if v >= 0.5:
                ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=7, color="white" if v > 60 else "black")
    ax.set_xticks(range(n), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), [f"{l} ({sum(c)})" for l, c in zip(labels, conf["counts"])], fontsize=8)
    ax.set_xlabel("predicted class (first segment)")
    ax.set_ylabel("true class (test scenes)")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="% of the true class's scenes")
    ax.set_title(f"First-segment confusion, {title_of(report, conf['method'])}, {rule_title(conf['rule'])}\n"
                 f"{grouped['title']}, pooled over folds and seeds; rows sum to 100%", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def write_confusion_csv(report: Mapping[str, Any], path: Path) -> Path | None:
    grouped = _protocol(report, "grouped")
    if grouped is None or not grouped.get("confusion"):
        return None
    conf = grouped["confusion"]
    labels = report["dataset"]["labels"]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["true \\ predicted", *labels, "scenes"])
        for label, shares, counts in zip(labels, conf["normalised"], conf["counts"]):
            w.writerow([label, *(f"{v:.4f}" for v in shares), sum(counts)])
    return path


# --- markdown ---------------------------------------------------------------------------------------------


def _protocol(report: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    return next((p for p in report.get("protocols", []) if p["key"] == key), None)


def _seeds(protocol: Mapping[str, Any]) -> str:
    n = len(protocol["seeds"])
    return f"{n} model seed{'s' if n != 1 else ''}"


def _spread(protocol: Mapping[str, Any]) -> str:
    folds, seeds = len(protocol["folds"]), len(protocol["seeds"])
    return f"{folds} fold{'s' if folds != 1 else ''} x {seeds} seed{'s' if seeds != 1 else ''}"


def _results_table(report: Mapping[str, Any], protocol: Mapping[str, Any]) -> str:
    """Table 1 layout: per method, rows first segment / all segments, a column per segment rule.

    The softmax head has no neighbours: its numbers sit in the first rule's column.
    """
    rules = [f"nn{n}" for n in report["neighbours"]]
    header = ["method", "decision", *(rule_title(r) for r in rules), f"ratio first/all ({rule_title(rules[0])})", "units"]
    rows = []
    for row, results in protocol["results"].items():
        own = [r for r in rules if r in results] or ["head"]
        columns = [results.get(r) for r in rules] if own != ["head"] else [results["head"]] + [None] * (len(rules) - 1)
        main = results[own[0]]
        name = f"**{row}**: {title_of(report, row)}" if row == report["primary"] else f"{row}: {title_of(report, row)}"
        ratio = f"{pct(main['ratio'])}%" if main["ratio"] is not None else "-"
        rows.append([name, "first segment", *(pm(c["first"]) if c else "-" for c in columns), ratio, main["units"]])
        rows.append(["", "all segments", *(pm(c["all"]) if c else "-" for c in columns), "", ""])
    return table(header, rows)


def _k_table(report: Mapping[str, Any], protocol: Mapping[str, Any]) -> str:
    seg_ms = 1000 * report["segment_seconds"]
    rules = [f"nn{n}" for n in report["neighbours"]]
    primary = protocol["results"].get(report["primary"], {})
    header = ["k", "latency (ms of audio)", *(f"{report['primary']} {rule_title(r)}" for r in rules if r in primary)]
    others = [row for row in protocol["results"] if row != report["primary"]]
    for row in others:
        header.append(f"{row} {rule_title(rules[0]) if rules[0] in protocol['results'][row] else rule_title('head')}")
    rows = []
    for k in range(1, report["k_max"] + 1):
        line = [k, f"{k * seg_ms:.0f}"]
        line += [pm(primary[r]["first_k"][k - 1]) for r in rules if r in primary]
        for row in others:
            res = protocol["results"][row]
            s = res.get(rules[0]) or res.get("head")
            line.append(pct(s["first_k"][k - 1]["mean"]))
        rows.append(line)
    line = ["all", "whole scene"] + [pm(primary[r]["all"]) for r in rules if r in primary]
    for row in others:
        res = protocol["results"][row]
        line.append(pct((res.get(rules[0]) or res.get("head"))["all"]["mean"]))
    rows.append(line)
    return table(header, rows)


def _per_class_table(report: Mapping[str, Any], protocol: Mapping[str, Any]) -> str:
    labels = report["dataset"]["labels"]
    show = [r for r in protocol["per_class"] if r in (report["primary"], "nolearn", "softmax-head")]
    header = ["class", "test scenes (x seeds)"]
    for row in show:
        header += [f"{row} first", f"{row} all"]
    rows = []
    for i, label in enumerate(labels):
        pc = protocol["per_class"][show[0]] if show else None
        line = [label, pc["scenes"][i] if pc else "-"]
        for row in show:
            c = protocol["per_class"][row]
            line += [pct(c["first"][i]), pct(c["all"][i])]
        rows.append(line)
    return table(header, rows)


def _per_fold_table(report: Mapping[str, Any], protocol: Mapping[str, Any]) -> str:
    """First / all segments per fold (mean over seeds), for each method's first rule."""
    names = [f["name"] for f in protocol["folds"]]
    header = ["method", *(f"{n}: first / all" for n in names)]
    rows = []
    for row, entry in protocol.get("per_fold", {}).items():
        by_fold = {e["fold"]: e for e in entry["folds"]}
        rows.append([f"{row} ({rule_title(entry['rule'])})",
                     *(f"{pct(by_fold[n]['first'])} / {pct(by_fold[n]['all'])}" if n in by_fold else "-" for n in names)])
    return table(header, rows)


def _fold_table(protocol: Mapping[str, Any]) -> str:
    rows = [
        [f["name"], f["train_scenes"], f["test_scenes"], f["train_recordings"], f["test_recordings"], f["test_classes"],
         f["recordings_on_both_sides"], "yes" if f["leaky"] else "no"]
        for f in protocol["folds"]
    ]
    return table(["fold", "train scenes", "test scenes", "train recordings", "test recordings", "test classes",
                  "recordings on both sides", "leaky"], rows)


def _summary_lines(report: Mapping[str, Any]) -> list[str]:
    grouped = _protocol(report, "grouped")
    target = report.get("target")
    if grouped is None or target is None:
        return ["No result for the default variant on folds grouped by recording."]
    res = grouped["results"]
    rule = target["rule"]
    main = res[report["primary"]][rule]
    c = target["checks"]
    lines = [
        f"- Default variant (`{report['primary']}`, {rule_title(rule)}), {grouped['title']} x {_seeds(grouped)}: "
        f"**first segment {pm(main['first'])}%**, **all segments {pm(main['all'])}%**, ratio first/all "
        f"**{pct(main['ratio'])}%** (the paper reports {pct(PAPER_RATIO, 0)}% on DCASE with a leaky random split). "
        f"Chance is {pct(1 / len(report['dataset']['labels']))}%.",
        f"- Target (first segment >= {pct(c['first_segment']['target'], 0)}%, >= {pct(c['ratio']['target'], 0)}% of all segments, "
        f"all segments above every baseline): **{'met' if target['met'] else 'NOT met'}**. "
        + "; ".join(
            [
                f"first segment {pct(c['first_segment']['value'])}% ({'ok' if c['first_segment']['met'] else 'missed'})",
                f"ratio {pct(c['ratio']['value'])}% ({'ok' if c['ratio']['met'] else 'missed'})",
                (f"all segments {pct(c['all_above_baselines']['value'])}% vs best baseline "
                 f"{c['all_above_baselines']['best_baseline']} {pct(c['all_above_baselines']['best_baseline_value'])}% "
                 f"({'ok' if c['all_above_baselines']['met'] else 'missed'})")
                if c["all_above_baselines"]["best_baseline"] is not None else "no baseline was run (--no-baselines)",
            ]
        )
        + ".",
    ]
    for key, name in (("first", "first segment"), ("all", "all segments")):
        o = target["ordering"][key]
        if len(o["values"]) > 1:
            vals = ", ".join(f"{v} {pct(o['values'][v])}%" for v in o["ranked"])
            lines.append(
                f"- Paper's ordering audio > triplet > no attention, {name}: "
                f"{'holds' if o['paper_order_holds'] else '**does not hold**'} here ({vals}; differences smaller than "
                f"the standard deviations in the table are not significant)."
            )
    return lines


def render_markdown(report: Mapping[str, Any], notes: str | None = None, figures: Mapping[str, Path | None] | None = None) -> str:
    figures = figures or {}
    ds = report["dataset"]
    out: list[str] = []
    out.append(f"# edge-asc evaluation on {ds['name']}")
    out.append("")
    out.append(
        f"Generated by `edge-asc evaluate` ({report['created']}). {ds['scenes']} scenes ({ds['minutes']:.1f} min, "
        f"scenes of at most {ds['chunk_seconds']:g} s), {ds['recordings']} recordings, {len(ds['labels'])} classes, "
        f"{ds['segments']} segments of {1000 * report['segment_seconds']:.0f} ms. All numbers below are measured by the "
        f"command in the reproducibility section; accuracies are the share of test scenes decided correctly, in %, "
        f"mean ± sample standard deviation over folds x seeds."
    )
    out.append("")
    out.append("## Summary")
    out.append("")
    out.extend(_summary_lines(report))
    timing = report.get("timing")
    complete = (timing or {}).get("complete_run")
    if complete:
        out.append(
            f"- Wall time of the complete evaluation: **{complete['wall_s'] / 60:.1f} min** on {report['reproducibility']['cpu_count']} "
            f"CPU cores ({complete['jobs']} training process{'es' if complete['jobs'] != 1 else ''} x {complete['threads_per_job']} "
            f"thread{'s' if complete['threads_per_job'] != 1 else ''}), the run of {complete['created']} that computed all "
            f"{complete['units']} units"
            + (f"; its CPU time was {complete['cpu_s'] / 60:.1f} min ({complete['cpu_s'] / 60 / complete['jobs']:.1f} min of wall "
               f"time with {complete['jobs']} process{'es' if complete['jobs'] != 1 else ''} on otherwise idle cores), and the "
               f"machine's 15-minute load average at its end was {complete['load_average_1_5_15'][2]:.1f}"
               if complete.get("cpu_s") else "")
            + "."
        )
    elif timing:
        out.append(
            "- No single run computed every unit of this report (it was resumed or assembled from earlier runs); "
            "the wall time of a complete run is not known from it."
        )
    if timing and not (complete and complete["created"] == report["created"]):
        out.append(
            f"- Wall time of this run: {timing['wall_s'] / 60:.1f} min on {report['reproducibility']['cpu_count']} CPU cores "
            f"({timing['jobs']} training process{'es' if timing['jobs'] != 1 else ''} x {timing['threads_per_job']} thread"
            f"{'s' if timing['threads_per_job'] != 1 else ''}); {timing['units_computed_now']} of {timing['units']} units computed "
            f"in this run" + (" (the rest reused from an earlier run with the same settings)." if timing["units_computed_now"] < timing["units"] else ".")
        )
    out.append("")

    grouped = _protocol(report, "grouped")
    out.append("## Protocol")
    out.append("")
    out.append(
        "- Scenes: each file, or each chunk of a long file, is one scene; a scene is cut into non-overlapping "
        f"{1000 * report['segment_seconds']:.0f} ms segments, featurised as a stream of its own (as the daemon does)."
    )
    out.append(
        "- Folds grouped by recording: no recording has scenes on both sides of a fold; every model, every "
        "normalisation statistic and every index is built from the fold's training scenes only. Folds are fixed "
        "(split seed) and the model seed varies; a class with fewer recordings than folds is absent from some test sides."
    )
    out.append(
        "- Segment decision: the label of the nearest training segment in the fold's hnswlib index (1-NN, the paper), "
        "or the majority of the n nearest. Scene decisions: first-k = majority over the scene's first k segments "
        "(k = 1 is the first-segment decision); all segments = majority over every segment of the scene. A scene "
        "shorter than k segments votes over all of its segments."
    )
    out.append(
        "- Votes are the daemon's (`edge_asc.runtime.decision.vote`, tie-break `distance`): equal votes go to the label whose "
        "votes have the smallest summed distance to their nearest neighbours, then to the earlier label. For the "
        "softmax head the distance is 1 - its top probability."
    )
    out.append(
        "- Encoders are embedded through the exported ONNX file and `edge_asc.runtime.encoder.Encoder`, the daemon's path; the "
        "ONNX/PyTorch difference on real test segments is recorded per unit in `units/*.json`. The variants of one "
        "fold and seed train on the same augmented epochs (drawn once per fold and seed), a paired comparison."
    )
    out.append(
        "- Baselines on exactly the same folds: no learning (per-feature mean and standard deviation of the 52 features "
        "over the segment, standardised with training statistics, exact nearest neighbour); the same encoder trained "
        "with a softmax classifier and cross-entropy, classifying with its own head and, separately, with 1-NN on its "
        "embedding."
    )
    out.append("")
    if grouped is not None:
        out.append(_fold_table(grouped))
        out.append("")

    for protocol in report.get("protocols", []):
        heading = "Table 1: " + protocol["title"] if protocol["key"] == "grouped" else protocol["title"]
        out.append(f"## {heading}")
        out.append("")
        if protocol["leaky"]:
            out.append(
                "**LEAKY.** Scenes of one recording sit on both sides of this split; ambient13's recordings are long, "
                "near-stationary loops, so a test scene usually has near-copies in the index. These numbers measure "
                "memorisation, not generalisation to new places, and are shown only for comparison with the paper's protocol."
            )
            out.append("")
            out.append(_fold_table(protocol))
            out.append("")
        out.append(f"{_spread(protocol)}; seeds {protocol['seeds']}.")
        out.append("")
        out.append(_results_table(report, protocol))
        out.append("")
        if protocol["key"] == "grouped" and len(protocol["folds"]) > 1:
            out.append("Per fold (mean over seeds), first segment / all segments, %:")
            out.append("")
            out.append(_per_fold_table(report, protocol))
            out.append("")
        if protocol.get("training"):
            out.append("Training, mean per model: " + "; ".join(
                f"{m}: {t['epochs']} epochs, {t['train_s']:.0f} s, final loss {t['final_loss']:.4f}"
                + (f", importance h'' {t['importance']:.3f}" if t.get("importance") is not None else "")
                for m, t in protocol["training"].items()
            ) + ". Largest ONNX Runtime vs PyTorch difference on real test segments: "
              + f"{max(t['onnx_torch_max_abs_diff'] for t in protocol['training'].values()):.1e}.")
            out.append("")
        if protocol["key"] == "grouped":
            out.append("Mean segment accuracy (every segment of every test scene classified alone): " + ", ".join(
                f"{row} {pm(next(iter(r.values()))['segment'])}%" for row, r in protocol["results"].items()
            ) + ".")
            out.append("")

    if grouped is not None:
        out.append("## Choosing k: accuracy against decision latency")
        out.append("")
        out.append(
            f"Latency is the audio heard before the decision, k x {1000 * report['segment_seconds']:.0f} ms (processing "
            "adds about a millisecond per segment on this machine, see the daemon's benchmark). Mean ± std for the default "
            "variant; means for the others."
        )
        out.append("")
        out.append(_k_table(report, grouped))
        out.append("")
        if figures.get("k"):
            out.append(f"![accuracy against k]({figures['k'].name})")
            out.append("")
        out.append("## Per class and confusion (first segment)")
        out.append("")
        out.append("Share of each class's test scenes decided correctly, pooled over folds and seeds.")
        out.append("")
        out.append(_per_class_table(report, grouped))
        out.append("")
        if figures.get("confusion"):
            out.append(f"![confusion matrix]({figures['confusion'].name}) (numbers: `{CSV_CONFUSION}`)")
            out.append("")

    study = report.get("class_study")
    if study:
        out.append("## Accuracy against the number of classes")
        out.append("")
        out.append(
            f"Random class subsets ({study['draws']} draws per size, each on one of the grouped folds in turn, model seed "
            f"{study['seed']}), models trained on those classes only, {study['epochs']} epochs (kept short to stay within the "
            f"time budget), {rule_title(study['rule'])}. The point at all classes is the main run above."
        )
        out.append("")
        header = ["classes", "chance"]
        rows_by_size: dict[int, list[str]] = {}
        for row, points in study["summary"].items():
            header += [f"{row} first", f"{row} all"]
            for p in points:
                rows_by_size.setdefault(p["size"], [str(p["size"]), pct(p["chance"])])
                rows_by_size[p["size"]] += [pm(p["first"]), pm(p["all"])]
        out.append(table(header, [rows_by_size[s] for s in sorted(rows_by_size)]))
        out.append("")
        if figures.get("classes"):
            out.append(f"![accuracy against the number of classes]({figures['classes'].name})")
            out.append("")

    if notes:
        out.append("## Investigation notes")
        out.append("")
        out.append(notes.strip())
        out.append("")

    repro = report.get("reproducibility")
    if repro:
        out.append("## Reproducibility")
        out.append("")
        out.append("```")
        out.append(repro["command"] or "(called from Python)")
        out.append("```")
        out.append("")
        out.append(f"- Data: `{ds['root']}`, sha256 `{repro['data_sha256']}` over {repro['data_files']} files "
                   "(sha256 of the sorted list of per-file sha256 and relative path).")
        out.append(f"- Model seeds {repro['model_seeds']}, fold split seed {repro['split_seed']}, {report['epochs']} epochs.")
        out.append("- Versions: " + ", ".join(f"{k} {v}" for k, v in repro["versions"].items()) + ".")
        if timing:
            out.append(
                f"- Time: {timing['wall_s']:.0f} s wall for this run; {timing['unit_compute_s']:.0f} s of unit compute in all; "
                "mean per unit: " + ", ".join(f"{m} {s:.0f} s" for m, s in timing["per_method_mean_s"].items()) + "."
            )
        out.append("- Evaluation settings: `" + json.dumps(repro["settings"], sort_keys=True) + "`")
        out.append("- Trainer settings: `" + json.dumps(repro["train_settings"], sort_keys=True) + "`")
        out.append("- Per-unit scene decisions: `units/*.json` (rerunning the command reuses them).")
        out.append("")
    return "\n".join(out)


def write_report(report: Mapping[str, Any], out: Path) -> dict[str, Path]:
    """Write report.json, the figures, the CSV and report.md into ``out``; returns what was written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    (out / REPORT_JSON).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    written["json"] = out / REPORT_JSON
    figures = {
        "k": plot_accuracy_vs_k(report, out / FIG_K),
        "classes": plot_accuracy_vs_classes(report, out / FIG_CLASSES),
        "confusion": plot_confusion(report, out / FIG_CONFUSION),
    }
    csv_path = write_confusion_csv(report, out / CSV_CONFUSION)
    notes_path = out / NOTES_FILE
    notes = notes_path.read_text(encoding="utf-8") if notes_path.is_file() else None
    (out / REPORT_MD).write_text(render_markdown(report, notes, figures) + "\n", encoding="utf-8")
    written["markdown"] = out / REPORT_MD
    written.update({k: v for k, v in figures.items() if v is not None})
    if csv_path is not None:
        written["confusion_csv"] = csv_path
    log.info("report written to %s (%s)", out / REPORT_MD, ", ".join(p.name for p in written.values()))
    return written
