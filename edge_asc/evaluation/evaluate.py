"""The evaluation of issue 3: first-segment, first-k and all-segments accuracy on folds grouped by recording.

``run_evaluation`` prepares the data and folds (plan.py), runs or resumes every task (runner.py; finished
units come from ``<out>/units``, units.py), aggregates the units (aggregate.py, results.py) and writes
report.json, report.md and the figures (report.py, figures.py).

* Scenes are the dataset's scenes (a file, or a 10 s chunk of a long file). Folds are grouped by recording,
  so no recording has scenes on both sides of a fold; the paper's random 80/20 split of scenes is optional
  and reported separately as LEAKY.
* Per fold and model seed, each variant (audio, triplet, noattn) and the softmax baseline are trained on the
  fold's training scenes only and read back through ONNX; every test segment is classified from its ``n``
  nearest training segments (``n`` in ``neighbours``; 1 in the paper).
* Scene decisions: first-k (the vote over the first k segments, k = 1..k_max; k = 1 is the first-segment
  decision) and all-segments, with the daemon's vote (scoring.py).
* Accuracy is averaged over folds and seeds (mean and sample standard deviation over the (fold, seed) units).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path

import numpy as np

from edge_asc.config import to_dict
from edge_asc.evaluation.config import CLASSES, GROUPED, EvalConfig
from edge_asc.evaluation.plan import Context, Task, plan_tasks, prepare
from edge_asc.evaluation.provenance import Reproducibility, RunRecord, Timing, cpu_seconds, package_versions, record_run
from edge_asc.evaluation.report import write_report
from edge_asc.evaluation.results import Report, build_report
from edge_asc.evaluation.runner import run_tasks
from edge_asc.evaluation.units import units_sha256
from edge_asc.training.config import TrainConfig
from edge_asc.training.feature_cache import FeatureCache

log = logging.getLogger(__name__)


def _log_plan(ctx: Context, tasks: list[Task]) -> None:
    config = ctx.config
    log.info(
        "%d tasks: %d folds x %d seeds x (%s)%s%s; %d job(s) x %d thread(s)",
        len(tasks), len(ctx.folds[GROUPED]), config.seeds, ", ".join(tasks[0].methods) if tasks else "-",
        " + leaky split" if config.leaky else "",
        f" + class-count study {list(config.class_sizes)} x {config.class_draws} draws" if config.class_draws else "",
        config.jobs, config.threads,
    )


def run_evaluation(
    data: str | Path, out: str | Path, config: EvalConfig, train_config: TrainConfig, command: str = "", layout: str = "auto",
    cache: FeatureCache | None = None,
) -> Report:
    """Run (or resume) every task, aggregate the units and write the report into ``out``. Returns the report.

    ``cache``: the feature cache (clean features and augmentation draws); None: ``FeatureCache.open()``, the
    default directory ($EDGE_ASC_CACHE, $XDG_CACHE_HOME/edge-asc/features, ~/.cache/edge-asc/features).
    """

    t_start = time.perf_counter()
    out = Path(out)
    ctx = prepare(data, out, config, train_config, layout, cache if cache is not None else FeatureCache.open())
    tasks = plan_tasks(config, ctx.n_classes, len(ctx.folds[GROUPED]), train_config.epochs)
    _log_plan(ctx, tasks)
    units = run_tasks(ctx, tasks)
    report = build_report(ctx, units, tasks)
    repro = Reproducibility(
        command=command, settings=to_dict(config), train_settings=to_dict(train_config), model_seeds=tuple(range(config.seeds)),
        split_seed=config.split_seed, data_sha256=ctx.data_sha256, data_files=ctx.data_files, versions=package_versions(),
        cpu_count=os.cpu_count(),
    )
    methods = sorted({u.method for u in units if u.protocol != CLASSES})
    timing = Timing(
        wall_s=time.perf_counter() - t_start,
        units=len(units),
        units_computed_now=sum(u.fresh for u in units),
        unit_compute_s=float(sum(u.wall_s for u in units)),
        per_method_mean_s={m: float(np.mean([u.wall_s for u in units if u.method == m and u.protocol != CLASSES])) for m in methods},
        jobs=config.jobs,
        threads_per_job=config.threads,
        cpu_s=cpu_seconds(),
        load_average_1_5_15=tuple(os.getloadavg()),
    )
    run = RunRecord(report.created, command, timing.wall_s, timing.units, timing.units_computed_now, timing.jobs, timing.threads_per_job,
                    units_sha256(units), timing.cpu_s, timing.load_average_1_5_15)
    timing = dataclasses.replace(timing, complete_run=record_run(out, run))
    report = dataclasses.replace(report, reproducibility=repro, timing=timing)
    write_report(report, out)
    try:
        ctx.work_dir.rmdir()
    except OSError:
        pass
    return report
