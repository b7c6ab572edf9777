"""Where a report's numbers come from: the command, settings, data hash and versions, and how long it took.

``<out>/runs.json`` logs one entry per invocation (when, how long, how many units it computed). A rerun
that only reuses cached units (e.g. to refresh notes.md) keeps the wall time of the run that did the work;
a report whose units come from several partial runs has no complete run.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from edge_asc.evaluation.units import write_json

log = logging.getLogger(__name__)

RUNS_FILE = "runs.json"


@dataclass(frozen=True)
class Reproducibility:
    command: str
    settings: dict[str, Any]  # to_dict of the EvalConfig
    train_settings: dict[str, Any]  # to_dict of the TrainConfig
    model_seeds: tuple[int, ...]
    split_seed: int
    data_sha256: str
    data_files: int
    versions: dict[str, str]
    cpu_count: int | None


@dataclass(frozen=True)
class RunRecord:
    """One invocation of the evaluation, as runs.json stores it (early entries have no cpu_s / load average)."""

    created: str
    command: str
    wall_s: float
    units: int
    units_computed: int
    jobs: int
    threads_per_job: int
    units_sha256: str  # identity of the set of units (keys and fingerprints) it ended with
    cpu_s: float | None = None
    load_average_1_5_15: tuple[float, float, float] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"created": self.created, "command": self.command, "wall_s": self.wall_s, "units": self.units,
                               "units_computed": self.units_computed, "jobs": self.jobs, "threads_per_job": self.threads_per_job}
        if self.cpu_s is not None:
            out["cpu_s"] = self.cpu_s
        if self.load_average_1_5_15 is not None:
            out["load_average_1_5_15"] = list(self.load_average_1_5_15)
        out["units_sha256"] = self.units_sha256
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "RunRecord":
        load = d.get("load_average_1_5_15")
        return cls(d["created"], d["command"], float(d["wall_s"]), int(d["units"]), int(d["units_computed"]), int(d["jobs"]),
                   int(d["threads_per_job"]), d["units_sha256"], d.get("cpu_s"), tuple(load) if load is not None else None)


@dataclass(frozen=True)
class Timing:
    wall_s: float  # this invocation
    units: int
    units_computed_now: int
    unit_compute_s: float  # the stored compute time of every unit, whichever run computed it
    per_method_mean_s: dict[str, float]
    jobs: int
    threads_per_job: int
    cpu_s: float  # this process and its finished workers: the work, whatever else ran on the machine
    load_average_1_5_15: tuple[float, float, float]  # at the end of the run: how busy the machine was
    complete_run: RunRecord | None = None  # the latest run that computed every unit of this report itself


def package_versions() -> dict[str, str]:
    import platform
    from importlib import metadata

    from edge_asc import __version__

    out = {"python": platform.python_version(), "edge-asc": __version__}
    for name in ("numpy", "torch", "onnx", "onnxruntime", "hnswlib", "soundfile", "matplotlib"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its children that have finished (the pool's workers)."""
    import resource

    return float(sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN))))


def read_runs(out: Path) -> list[RunRecord]:
    path = Path(out) / RUNS_FILE
    if not path.is_file():
        return []
    try:
        return [RunRecord.from_json(r) for r in json.loads(path.read_text(encoding="utf-8"))]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("%s: unreadable (%s); starting a new run log", path, exc)
        return []


def write_runs(out: Path, runs: list[RunRecord]) -> None:
    write_json(Path(out) / RUNS_FILE, [r.to_json() for r in runs])


def record_run(out: Path, run: RunRecord) -> RunRecord | None:
    """Append this invocation to ``<out>/runs.json``; return the latest run that computed every unit of the same set itself."""
    runs = read_runs(out) + [run]
    write_runs(out, runs)
    complete = [r for r in runs if r.units_sha256 == run.units_sha256 and r.units_computed == r.units]
    return complete[-1] if complete else None
