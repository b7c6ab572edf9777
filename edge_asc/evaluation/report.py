"""The evaluation report: report.json, report.md, the figures and the confusion CSV, rendered from a ``Report``.

Nothing is measured here. ``notes.md`` in the output folder, when present, is hand-written text (the
reading of the results for that dataset: what was tried, what limits the accuracy, how the numbers compare
with a target) and is copied into report.md under its own heading, so regenerating the report keeps it.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from edge_asc.evaluation.aggregate import ProtocolSummary, Summary, as_json
from edge_asc.evaluation.config import GROUPED, NO_LEARNING, SOFTMAX_HEAD
from edge_asc.evaluation.measures_report import FIG_LATENCY, measures_lines, plot_accuracy_vs_latency
from edge_asc.evaluation.figures import CSV_CONFUSION, FIG_CLASSES, FIG_CONFUSION, FIG_K, plot_accuracy_vs_classes, plot_accuracy_vs_k, plot_confusion, seeds_text, write_confusion_csv
from edge_asc.evaluation.results import Report
from edge_asc.evaluation.scoring import HEAD_RULE, rule_key, rule_title
from edge_asc.evaluation.units import write_json
from edge_asc.fsutil import atomic_write_text

log = logging.getLogger(__name__)

NOTES_FILE = "notes.md"
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
PAPER_RATIO = 0.93  # the paper's headline: first segment keeps 93% of the all-segments accuracy


def pct(value: float | None, digits: int = 1) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.{digits}f}"


def pm(summary: Summary | None) -> str:
    """'47.1 ± 3.2' (percent) from a summary."""
    if summary is None or summary.mean is None:
        return "-"
    return f"{pct(summary.mean)} ± {pct(summary.std)}"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    align = align or ("l" + "r" * (len(header) - 1))
    marks = {"l": ":---", "r": "---:", "c": ":---:"}
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(marks[a] for a in align) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _plural(n: int, word: str, suffix: str = "s") -> str:
    return f"{word}{suffix if n != 1 else ''}"


def _spread(protocol: ProtocolSummary) -> str:
    folds, seeds = len(protocol.folds), len(protocol.seeds)
    return f"{folds} {_plural(folds, 'fold')} x {seeds} {_plural(seeds, 'seed')}"


def _results_table(report: Report, protocol: ProtocolSummary) -> str:
    """Table 1 layout: per method, rows first segment / all segments, a column per segment rule.

    The softmax head has no neighbours: its numbers sit in the first rule's column.
    """
    rules = [rule_key(n) for n in report.neighbours]
    header = ["method", "decision", *(rule_title(r) for r in rules), f"ratio first/all ({rule_title(rules[0])})", "units"]
    rows = []
    for row, results in protocol.results.items():
        own = [r for r in rules if r in results] or [HEAD_RULE]
        columns = [results.get(r) for r in rules] if own != [HEAD_RULE] else [results[HEAD_RULE]] + [None] * (len(rules) - 1)
        main = results[own[0]]
        name = f"**{row}**: {report.title_of(row)}" if row == report.primary else f"{row}: {report.title_of(row)}"
        ratio = f"{pct(main.ratio)}%" if main.ratio is not None else "-"
        rows.append([name, "first segment", *(pm(c.first) if c else "-" for c in columns), ratio, main.units])
        rows.append(["", "all segments", *(pm(c.all) if c else "-" for c in columns), "", ""])
    return table(header, rows)


def _k_table(report: Report, protocol: ProtocolSummary) -> str:
    seg_ms = 1000 * report.segment_seconds
    rules = [rule_key(n) for n in report.neighbours]
    primary = protocol.results.get(report.primary, {})
    others = [row for row in protocol.results if row != report.primary]
    own = {row: protocol.results[row][protocol.main_rule(row, rules[0])] for row in others}
    header = ["k", "latency (ms of audio)", *(f"{report.primary} {rule_title(r)}" for r in rules if r in primary)]
    header += [f"{row} {rule_title(protocol.main_rule(row, rules[0]))}" for row in others]
    rows = []
    for k in range(1, report.k_max + 1):
        line = [k, f"{k * seg_ms:.0f}"]
        line += [pm(primary[r].first_k[k - 1]) for r in rules if r in primary]
        line += [pct(own[row].first_k[k - 1].mean) for row in others]
        rows.append(line)
    line = ["all", "whole scene"] + [pm(primary[r].all) for r in rules if r in primary]
    line += [pct(own[row].all.mean) for row in others]
    rows.append(line)
    return table(header, rows)


def _per_class_table(report: Report, protocol: ProtocolSummary) -> str:
    show = [r for r in protocol.per_class if r in (report.primary, NO_LEARNING, SOFTMAX_HEAD)]
    header = ["class", "test scenes (x seeds)"]
    for row in show:
        header += [f"{row} first", f"{row} all"]
    rows = []
    for i, label in enumerate(report.dataset.labels):
        pc = protocol.per_class[show[0]] if show else None
        line = [label, pc.scenes[i] if pc else "-"]
        for row in show:
            c = protocol.per_class[row]
            line += [pct(c.first[i]), pct(c.all[i])]
        rows.append(line)
    return table(header, rows)


def _per_fold_table(protocol: ProtocolSummary) -> str:
    """First / all segments per fold (mean over seeds), for each method's first rule."""
    names = [f.name for f in protocol.folds]
    header = ["method", *(f"{n}: first / all" for n in names)]
    rows = []
    for row, entry in protocol.per_fold.items():
        by_fold = {e.fold: e for e in entry.folds}
        rows.append([f"{row} ({rule_title(entry.rule)})",
                     *(f"{pct(by_fold[n].first)} / {pct(by_fold[n].all)}" if n in by_fold else "-" for n in names)])
    return table(header, rows)


def _fold_table(protocol: ProtocolSummary) -> str:
    rows = [
        [f.name, f.train_scenes, f.test_scenes, f.train_recordings, f.test_recordings, f.test_classes, f.recordings_on_both_sides,
         "yes" if f.leaky else "no"]
        for f in protocol.folds
    ]
    return table(["fold", "train scenes", "test scenes", "train recordings", "test recordings", "test classes",
                  "recordings on both sides", "leaky"], rows)


def _summary_lines(report: Report) -> list[str]:
    """The headline of the default variant and the paper's ordering of the variants."""
    grouped, main = report.grouped, report.headline()
    if grouped is None or main is None:
        return ["No result for the default variant on folds grouped by recording."]
    rule = report.first_rule
    lines = [
        f"- Default variant (`{report.primary}`, {rule_title(rule)}), {grouped.title} x {seeds_text(grouped)}: "
        f"**first segment {pm(main.first)}%**, **all segments {pm(main.all)}%**, ratio first/all "
        f"**{pct(main.ratio)}%** (the paper reports {pct(PAPER_RATIO, 0)}% on DCASE with a leaky random split). "
        f"Chance is {pct(1 / len(report.dataset.labels))}%.",
    ]
    orderings = ((report.ordering.first, "first segment"), (report.ordering.all, "all segments")) if report.ordering else ()
    for o, name in orderings:
        if len(o.values) > 1:
            vals = ", ".join(f"{v} {pct(o.values[v])}%" for v in o.ranked)
            lines.append(
                f"- Paper's ordering audio > triplet > no attention, {name}: "
                f"{'holds' if o.paper_order_holds else '**does not hold**'} here ({vals}; differences smaller than "
                f"the standard deviations in the table are not significant)."
            )
    return lines


def _timing_lines(report: Report) -> list[str]:
    timing, repro = report.timing, report.reproducibility
    if timing is None or repro is None:
        return []
    out = []
    complete = timing.complete_run
    if complete:
        procs = f"{complete.jobs} training {_plural(complete.jobs, 'process', 'es')}"
        out.append(
            f"- Wall time of the complete evaluation: **{complete.wall_s / 60:.1f} min** on {repro.cpu_count} CPU cores ({procs} x "
            f"{complete.threads_per_job} {_plural(complete.threads_per_job, 'thread')}), the run of {complete.created} that computed all "
            f"{complete.units} units"
            + (f"; its CPU time was {complete.cpu_s / 60:.1f} min ({complete.cpu_s / 60 / complete.jobs:.1f} min of wall "
               f"time with {complete.jobs} {_plural(complete.jobs, 'process', 'es')} on otherwise idle cores), and the "
               f"machine's 15-minute load average at its end was {complete.load_average_1_5_15[2]:.1f}"
               if complete.cpu_s and complete.load_average_1_5_15 else "")
            + "."
        )
    else:
        out.append(
            "- No single run computed every unit of this report (it was resumed or assembled from earlier runs); "
            "the wall time of a complete run is not known from it."
        )
    if not (complete and complete.created == report.created):
        out.append(
            f"- Wall time of this run: {timing.wall_s / 60:.1f} min on {repro.cpu_count} CPU cores "
            f"({timing.jobs} training {_plural(timing.jobs, 'process', 'es')} x {timing.threads_per_job} "
            f"{_plural(timing.threads_per_job, 'thread')}); {timing.units_computed_now} of {timing.units} units computed "
            f"in this run" + (" (the rest reused from an earlier run with the same settings)." if timing.units_computed_now < timing.units else ".")
        )
    return out


PROTOCOL_TEXT = (
    "- Scenes: each file, or each chunk of a long file, is one scene; a scene is cut into non-overlapping "
    "{segment_ms:.0f} ms segments, featurised as a stream of its own (as the daemon does).",
    "- Folds grouped by recording: no recording has scenes on both sides of a fold; every model, every "
    "normalisation statistic and every index is built from the fold's training scenes only. Folds are fixed "
    "(split seed) and the model seed varies; a class with fewer recordings than folds is absent from some test sides.",
    "- Segment decision: the label of the nearest training segment in the fold's hnswlib index (1-NN, the paper), "
    "or the majority of the n nearest. Scene decisions: first-k = majority over the scene's first k segments "
    "(k = 1 is the first-segment decision); all segments = majority over every segment of the scene. A scene "
    "shorter than k segments votes over all of its segments.",
    "- Votes are the daemon's (`edge_asc.runtime.decision.vote`, tie-break `distance`): equal votes go to the label whose "
    "votes have the smallest summed distance to their nearest neighbours, then to the earlier label. For the "
    "softmax head the distance is 1 - its top probability.",
    "- Encoders are embedded through the exported ONNX file and `edge_asc.runtime.encoder.Encoder`, the daemon's path; the "
    "ONNX/PyTorch difference on real test segments is recorded per unit in `units/*.json`. The variants of one "
    "fold and seed train on the same augmented epochs (drawn once per fold and seed), a paired comparison.",
    "- Baselines on exactly the same folds: no learning (per-feature mean and standard deviation of the {n_features} features "
    "over the segment, standardised with training statistics, exact nearest neighbour); the same encoder trained "
    "with a softmax classifier and cross-entropy, classifying with its own head and, separately, with 1-NN on its "
    "embedding.",
)
LEAKY_TEXT = (
    "**LEAKY.** Scenes of one recording sit on both sides of this split, so a test scene may have near-copies of "
    "itself in the index. These numbers measure memorisation, not generalisation to new places, and are shown only "
    "for comparison with the paper's protocol."
)


def _protocol_section(report: Report, protocol: ProtocolSummary) -> list[str]:
    """One protocol's heading, folds (when leaky), Table 1, per fold, training and segment accuracy."""
    out = [f"## {'Table 1: ' + protocol.title if protocol.key == GROUPED else protocol.title}", ""]
    if protocol.leaky:
        out += [LEAKY_TEXT, "", _fold_table(protocol), ""]
    out += [f"{_spread(protocol)}; seeds {list(protocol.seeds)}.", "", _results_table(report, protocol), ""]
    if protocol.key == GROUPED and len(protocol.folds) > 1:
        out += ["Per fold (mean over seeds), first segment / all segments, %:", "", _per_fold_table(protocol), ""]
    if protocol.training:
        out.append("Training, mean per model: " + "; ".join(
            f"{m}: {t.epochs} epochs, {t.train_s:.0f} s, final loss {t.final_loss:.4f}"
            + (f", importance h'' {t.importance:.3f}" if t.importance is not None else "")
            for m, t in protocol.training.items()
        ) + ". Largest ONNX Runtime vs PyTorch difference on real test segments: "
          + f"{max(t.onnx_torch_max_abs_diff for t in protocol.training.values()):.1e}.")
        out.append("")
    if protocol.key == GROUPED:
        out.append("Mean segment accuracy (every segment of every test scene classified alone): " + ", ".join(
            f"{row} {pm(next(iter(r.values())).segment)}%" for row, r in protocol.results.items()
        ) + ".")
        out.append("")
    return out


def _k_and_class_sections(report: Report, grouped: ProtocolSummary, figures: Mapping[str, Path | None]) -> list[str]:
    out = [
        "## Choosing k: accuracy against decision latency", "",
        f"Latency is the audio heard before the decision, k x {1000 * report.segment_seconds:.0f} ms (the processing "
        "time comes on top). Mean ± std for the default variant; means for the others.", "",
        _k_table(report, grouped), "",
    ]
    if figures.get("k"):
        out += [f"![accuracy against k]({figures['k'].name})", ""]
    out += ["## Per class and confusion (first segment)", "",
            "Share of each class's test scenes decided correctly, pooled over folds and seeds.", "",
            _per_class_table(report, grouped), ""]
    if figures.get("confusion"):
        out += [f"![confusion matrix]({figures['confusion'].name}) (numbers: `{CSV_CONFUSION}`)", ""]
    return out


def _class_epochs(epochs: int | None, main_epochs: int) -> str:
    """'10 epochs (the main run: 30)': the class study's epochs, compared with the main run's."""
    if epochs is None or epochs == main_epochs:
        return f"{main_epochs} {_plural(main_epochs, 'epoch')} (as the main run)"
    return f"{epochs} {_plural(epochs, 'epoch')} (the main run: {main_epochs})"


def _class_study_section(report: Report, figures: Mapping[str, Path | None]) -> list[str]:
    study = report.class_study
    if not study:
        return []
    out = [
        "## Accuracy against the number of classes", "",
        f"Random class subsets ({study.draws} draws per size, each on one of the grouped folds in turn, model seed "
        f"{study.seed}), models trained on those classes only, {_class_epochs(study.epochs, report.epochs)}, "
        f"{rule_title(study.rule)}. The point at all classes is the main run above.", "",
    ]
    header = ["classes", "chance"]
    rows_by_size: dict[int, list[str]] = {}
    for row, points in study.summary.items():
        header += [f"{row} first", f"{row} all"]
        for p in points:
            rows_by_size.setdefault(p.size, [str(p.size), pct(p.chance)])
            rows_by_size[p.size] += [pm(p.first), pm(p.all)]
    out += [table(header, [rows_by_size[s] for s in sorted(rows_by_size)]), ""]
    if figures.get("classes"):
        out += [f"![accuracy against the number of classes]({figures['classes'].name})", ""]
    return out


def _reproducibility_section(report: Report) -> list[str]:
    repro, timing, ds = report.reproducibility, report.timing, report.dataset
    if repro is None:
        return []
    out = ["## Reproducibility", "", "```", repro.command or "(called from Python)", "```", ""]
    out.append(f"- Data: `{ds.root}`, sha256 `{repro.data_sha256}` over {repro.data_files} files "
               "(sha256 of the sorted list of per-file sha256 and relative path).")
    out.append(f"- Model seeds {list(repro.model_seeds)}, fold split seed {repro.split_seed}, {report.epochs} epochs.")
    out.append("- Versions: " + ", ".join(f"{k} {v}" for k, v in repro.versions.items()) + ".")
    if timing:
        out.append(
            f"- Time: {timing.wall_s:.0f} s wall for this run; {timing.unit_compute_s:.0f} s of unit compute in all; "
            "mean per unit: " + ", ".join(f"{m} {s:.0f} s" for m, s in timing.per_method_mean_s.items()) + "."
        )
    out.append("- Evaluation settings: `" + json.dumps(repro.settings, sort_keys=True) + "`")
    out.append("- Trainer settings: `" + json.dumps(repro.train_settings, sort_keys=True) + "`")
    out += ["- Per-unit scene decisions: `units/*.json` (rerunning the command reuses them).", ""]
    return out


def render_markdown(report: Report, notes: str | None = None, figures: Mapping[str, Path | None] | None = None) -> str:
    figures = figures or {}
    ds = report.dataset
    out = [
        f"# edge-asc evaluation on {ds.name}", "",
        f"Generated by `edge-asc evaluate` ({report.created}). {ds.scenes} scenes ({ds.minutes:.1f} min, "
        f"scenes of at most {ds.chunk_seconds:g} s), {ds.recordings} recordings, {len(ds.labels)} classes, "
        f"{ds.segments} segments of {1000 * report.segment_seconds:.0f} ms. All numbers below are measured by the "
        f"command in the reproducibility section; accuracies are the share of test scenes decided correctly, in %, "
        f"mean ± sample standard deviation over folds x seeds.", "",
        "## Summary", "",
        *_summary_lines(report), *_timing_lines(report), "",
        "## Protocol", "",
        *(line.format(segment_ms=1000 * report.segment_seconds, n_features=report.n_features) for line in PROTOCOL_TEXT), "",
    ]
    grouped = report.grouped
    if grouped is not None:
        out += [_fold_table(grouped), ""]
    for protocol in report.protocols:
        out += _protocol_section(report, protocol)
    if grouped is not None:
        out += _k_and_class_sections(report, grouped, figures)
    out += _class_study_section(report, figures)
    out += measures_lines(report.measures, figures.get("latency"))
    if notes:
        out += ["## Investigation notes", "", notes.strip(), ""]
    out += _reproducibility_section(report)
    return "\n".join(out)


def write_report(report: Report, out: Path) -> dict[str, Path]:
    """Write report.json, the figures, the CSV and report.md into ``out``; returns what was written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    write_json(out / REPORT_JSON, as_json(report))
    written["json"] = out / REPORT_JSON
    figures = {
        "k": plot_accuracy_vs_k(report, out / FIG_K),
        "classes": plot_accuracy_vs_classes(report, out / FIG_CLASSES),
        "confusion": plot_confusion(report, out / FIG_CONFUSION),
        "latency": plot_accuracy_vs_latency(report.measures, out / FIG_LATENCY),
    }
    csv_path = write_confusion_csv(report, out / CSV_CONFUSION)
    notes_path = out / NOTES_FILE
    notes = notes_path.read_text(encoding="utf-8") if notes_path.is_file() else None
    atomic_write_text(out / REPORT_MD, render_markdown(report, notes, figures) + "\n")
    written["markdown"] = out / REPORT_MD
    written.update({k: v for k, v in figures.items() if v is not None})
    if csv_path is not None:
        written["confusion_csv"] = csv_path
    log.info("report written to %s (%s)", out / REPORT_MD, ", ".join(p.name for p in written.values()))
    return written


def recorded_data_sha256(report_json: Path) -> str | None:
    """The dataset sha256 a report.json written by ``write_report`` records (its reproducibility block);
    None when the file cannot be read as one."""
    try:
        value = json.loads(report_json.read_text(encoding="utf-8"))["reproducibility"]["data_sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return value if isinstance(value, str) else None
