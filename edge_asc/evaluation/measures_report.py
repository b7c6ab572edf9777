"""The report's section on "unknown" in the default mode and on adaptive decisions (issue 10).

Summarises the per-unit measures (evaluation.measures) of the default variant's units on the grouped folds
(folds x seeds): the leave-one-class-out AUROC of the nearest-training-item distance, and accuracy against
mean decision latency for fixed k (``window``) and ``adaptive`` (k_max), the same folds and segments for
both. Figure ``accuracy_vs_latency.png``. Units cached before the measures existed carry none; the section
says how many units it summarises.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from edge_asc.evaluation.aggregate import Summary, summarise
from edge_asc.evaluation.config import GROUPED
from edge_asc.evaluation.measures import ADAPTIVE, WINDOW
from edge_asc.evaluation.novelty import USEFUL_AUROC
from edge_asc.evaluation.units import Unit

FIG_LATENCY = "accuracy_vs_latency.png"


@dataclass(frozen=True)
class LatencyRow:
    mode: str
    k: int  # k (window) or k_max (adaptive)
    accuracy: Summary  # over units
    seconds: float  # mean decision latency: mean segments per decision x segment seconds, mean over units


@dataclass(frozen=True)
class AdaptiveVerdict:
    k_max: int
    fixed_k: int | None  # the largest-accuracy fixed k whose accuracy adaptive reaches (None: none)
    lower_latency: bool  # adaptive reaches it at a lower mean latency


@dataclass(frozen=True)
class MeasuresSummary:
    method: str
    units: int  # units with measures (of the method, grouped folds)
    novelty_auroc: Summary
    useful_auroc: float
    latency: tuple[LatencyRow, ...]
    verdicts: tuple[AdaptiveVerdict, ...]


def _verdicts(rows: Sequence[LatencyRow]) -> tuple[AdaptiveVerdict, ...]:
    fixed = [r for r in rows if r.mode == WINDOW]
    out = []
    for a in (r for r in rows if r.mode == ADAPTIVE):
        reached = [f for f in fixed if f.accuracy.mean is not None and a.accuracy.mean is not None and f.accuracy.mean <= a.accuracy.mean + 1e-9]
        best = max(reached, key=lambda f: (f.accuracy.mean, -f.k)) if reached else None
        out.append(AdaptiveVerdict(a.k, best.k if best else None, bool(best and a.seconds < best.seconds)))
    return tuple(out)


def summarise_measures(units: Sequence[Unit], method: str, segment_seconds: float) -> MeasuresSummary | None:
    """The section's numbers from the grouped units of ``method``; None when none carries measures."""
    measured = [u.info.measures for u in units if u.protocol == GROUPED and u.method == method and u.info is not None and u.info.measures is not None]
    if not measured:
        return None
    keys = sorted({(p.mode, p.k) for m in measured for p in m.latency}, key=lambda t: (t[0] != WINDOW, t[1]))
    rows = []
    for mode, k in keys:
        points = [p for m in measured for p in m.latency if (p.mode, p.k) == (mode, k)]
        rows.append(LatencyRow(mode, k, summarise(p.accuracy for p in points), float(np.mean([p.segments for p in points])) * segment_seconds))
    auroc = summarise(m.novelty_auroc for m in measured if m.novelty_auroc is not None)
    return MeasuresSummary(method, len(measured), auroc, USEFUL_AUROC, tuple(rows), _verdicts(rows))


def _pct(s: Summary) -> str:
    return "-" if s.mean is None else f"{100 * s.mean:.1f} ± {100 * (s.std or 0.0):.1f}"


def measures_lines(m: MeasuresSummary | None, figure: Path | None) -> list[str]:
    """The markdown section (nothing when no unit carries measures)."""
    if m is None:
        return []
    a = m.novelty_auroc
    useful = a.mean is not None and a.mean >= m.useful_auroc
    out = ["## Unknown in the default mode, and adaptive decisions", "",
           f"Default variant `{m.method}`, grouped folds, {m.units} units (folds x seeds).", "",
           f"**A distance threshold for unknown scenes.** Leave-one-class-out AUROC of the distance from a test segment to its nearest "
           f"training item (a held-out class's segments against unheard recordings of the known classes): "
           f"{'-' if a.mean is None else f'{a.mean:.3f} ± {a.std or 0.0:.3f}'}. The default mode ships with a distance threshold only at "
           f"an AUROC of {m.useful_auroc} or more: {'useful' if useful else 'not useful, so the default mode has none'} "
           f"(`--enrolled-only` has its own test against enrolled places).", "",
           "**Adaptive against fixed k.** Accuracy: share of the audio decided right (each decision weighted by the segments it "
           "used); latency: mean audio per decision.", ""]
    fixed = {r.k: r for r in m.latency if r.mode == WINDOW}
    out += ["| k / k_max | fixed k: accuracy % | latency s | adaptive: accuracy % | latency s | adaptive reaches fixed k = | at lower latency |",
            "|---|---|---|---|---|---|---|"]
    verdict = {v.k_max: v for v in m.verdicts}
    for k in sorted({r.k for r in m.latency}):
        f = fixed.get(k)
        a_row = next((r for r in m.latency if r.mode == ADAPTIVE and r.k == k), None)
        v = verdict.get(k)
        out.append(f"| {k} | {_pct(f.accuracy) if f else '-'} | {f'{f.seconds:.2f}' if f else '-'} | "
                   f"{_pct(a_row.accuracy) if a_row else '-'} | {f'{a_row.seconds:.2f}' if a_row else '-'} | "
                   f"{(v.fixed_k if v.fixed_k is not None else 'none') if v else '-'} | {('yes' if v.lower_latency else 'no') if v else '-'} |")
    n_yes = sum(v.lower_latency for v in m.verdicts)
    top = max((r for r in m.latency if r.mode == ADAPTIVE), key=lambda r: r.k, default=None)
    if top is not None and top.k in fixed and top.accuracy.mean is not None and fixed[top.k].accuracy.mean is not None:
        f = fixed[top.k]
        out += ["", f"At k_max = {top.k}, adaptive decides {100 * top.accuracy.mean:.1f}% of the audio right with {top.seconds:.2f} s per "
                f"decision; fixed k = {top.k} (the vote adaptive's decisions equal): {100 * f.accuracy.mean:.1f}% with {f.seconds:.2f} s."]
    out += ["", f"Adaptive reaches the accuracy of a fixed k at a lower mean latency for {n_yes} of {len(m.verdicts)} values of k_max"
            + ("." if n_yes == len(m.verdicts) else "; the table shows where it does not."), ""]
    if figure is not None:
        out += [f"![accuracy against mean decision latency]({figure.name})", ""]
    return out


def plot_accuracy_vs_latency(m: MeasuresSummary | None, path: Path) -> Path | None:
    if m is None:
        return None
    from edge_asc.evaluation.figures import _pyplot, _save  # lazy: figures imports results, which imports this module

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for mode, style, title in ((WINDOW, "o-", "fixed k"), (ADAPTIVE, "s--", "adaptive (k_max)")):
        rows = [r for r in m.latency if r.mode == mode and r.accuracy.mean is not None]
        ax.plot([r.seconds for r in rows], [100 * r.accuracy.mean for r in rows], style, label=title)
        for r in rows:
            ax.annotate(str(r.k), (r.seconds, 100 * r.accuracy.mean), fontsize=7, textcoords="offset points", xytext=(3, 3))
    ax.set_xlabel("mean decision latency (s of audio)")
    ax.set_ylabel("accuracy (% of audio decided right)")
    ax.set_title(f"{m.method}: adaptive vs fixed k, grouped folds ({m.units} units)")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(plt, fig, path)
