"""One-off: re-key the committed evaluation units (reports/amb13/units) to today's unit fingerprint.

    python bench/rekey_units.py [--out reports/amb13] [--data ../shared/data/ambient13] [--write]

Why: a unit's fingerprint used to hash the TrainConfig with a workaround (``NEUTRAL_TRAIN_OPTIONS``: options
added after the units were computed were left out at their neutral value). Eleven trainer options were then
removed (``balance_recordings``, ``cross_recording_positives``, ``ema_decay``, ``aux_softmax``,
``robust_normalization``, ``model.input_clip``, ``model.input_features``, ``augment.pieces``, ``augment.speed``,
``augment.feature_noise``, ``augment.feature_mask``; training with the others is bit-identical) and ModelConfig's
``n_features``/``n_frames``/``n_classes`` stopped being settings (the network takes them from the feature settings
and the labels). Today's fingerprint (edge_asc.evaluation.units.fingerprint) hashes ``to_dict`` of the TrainConfig
as it is, so every cached unit has a stale key; recomputing them costs 54 min on 2 cores.

What it checks before it rewrites anything (it refuses, naming the unit, when any check fails):

1. The units store no settings of their own; the settings are those of the report's reproducibility block
   (report.json: ``settings`` and ``train_settings``). In them, every removed option sits at its neutral value
   (the value that trains exactly as today's trainer does) and n_features / n_frames / n_classes equal what the
   network now derives (2 x n_mfcc + 12, frames_per_segment, 0 = from the labels).
2. Those settings, without the removed keys, are a valid TrainConfig whose ``to_dict`` is exactly what is left
   (nothing else was renamed or dropped).
3. The data in --data hashes to the report's ``data_sha256``.
4. For every unit of the plan, the OLD fingerprint recomputed from those recorded settings (the former function,
   copied below) equals the unit's stored fingerprint. This proves, unit by unit, that the unit was computed with
   the recorded settings, hence with the removed options at their neutral values. No unit file is left over.

Then, with --write (without it: a dry run that only checks), each unit gets the new fingerprint (nothing else in
its file changes: checked), and the entries of runs.json that name the old set of units are re-pointed to the new
set (the runs that computed the units keep their wall time in the report). ``edge-asc evaluate`` with
bench/run_evaluation.sh's arguments (KEEP_UNITS=1) then finds every unit cached and regenerates the report.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import hashlib
import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np

from removed_options import REMOVED_NEUTRAL  # bench/, beside this script

from edge_asc.config import ConfigError, from_dict, to_dict
from edge_asc.dsp.features import FeatureConfig
from edge_asc.evaluation.config import GROUPED, NO_LEARNING, EvalConfig
from edge_asc.evaluation.plan import Context, Task, plan_tasks, prepare, task_data
from edge_asc.evaluation.provenance import RunRecord, read_runs, write_runs
from edge_asc.evaluation.units import Unit, fingerprint, unit_path, units_sha256, write_unit
from edge_asc.training.config import TrainConfig

log = logging.getLogger("rekey_units")

LEGACY_NEUTRAL: dict[tuple[str, ...], Any] = {  # the former fingerprint's workaround (NEUTRAL_TRAIN_OPTIONS)
    ("robust_normalization",): False,
    ("augment", "pieces"): 1,
    ("model", "input_clip"): 0.0,
    ("model", "input_features"): "all",
}


class RekeyError(RuntimeError):
    pass


def _get(tree: dict[str, Any], path: tuple[str, ...]) -> Any:
    node = tree
    for key in path[:-1]:
        node = node.get(key, {})
    if path[-1] not in node:
        raise KeyError(".".join(path))
    return node[path[-1]]


def _drop(tree: dict[str, Any], path: tuple[str, ...]) -> None:
    node = tree
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]


def derived_sizes(train: dict[str, Any]) -> dict[tuple[str, ...], Any]:
    """The former ModelConfig sizes and the value today's network derives for them from the recorded settings."""
    try:
        features = from_dict(FeatureConfig, train.get("features"), "train_settings.features.")
    except ConfigError as exc:
        raise RekeyError(str(exc)) from None
    return {("model", "n_features"): features.n_features, ("model", "n_frames"): features.frames_per_segment, ("model", "n_classes"): 0}


def todays_train_config(recorded: dict[str, Any]) -> TrainConfig:
    """Checks 1 and 2: the recorded trainer settings as today's TrainConfig."""
    expected = REMOVED_NEUTRAL | derived_sizes(recorded)
    rest = copy.deepcopy(recorded)
    for path, value in expected.items():
        try:
            got = _get(recorded, path)
        except KeyError:
            raise RekeyError(f"train_settings has no {'.'.join(path)}: cannot tell the value the units were computed with") from None
        if got != value or type(got) is not type(value):
            raise RekeyError(f"train_settings: {'.'.join(path)} = {got!r}, not {value!r}; these units cannot be re-keyed, recompute them")
        _drop(rest, path)
    config = from_dict(TrainConfig, rest)
    if to_dict(config) != rest:
        raise RekeyError("the recorded trainer settings do not map one to one onto today's TrainConfig")
    return config


def legacy_fingerprint(version: str, data_sha256: str, settings: dict[str, Any], train: dict[str, Any], task: Task, method: str,
                       train_scenes: np.ndarray, test_scenes: np.ndarray) -> str:
    """The former ``unit_fingerprint``, computed from the recorded settings (JSON) instead of the config objects."""
    h = hashlib.sha256(np.asarray(train_scenes, dtype=np.int64).tobytes())
    h.update(np.asarray(test_scenes, dtype=np.int64).tobytes())
    parts: dict[str, Any] = {
        "version": version, "data": data_sha256, "scenes": h.hexdigest(), "chunk_seconds": settings["chunk_seconds"],
        "method": method, "seed": task.seed, "classes": task.classes, "k_max": settings["k_max"],
        "neighbours": list(settings["neighbours"]), "features": train["features"],
    }
    if method != NO_LEARNING:
        t = copy.deepcopy(train) | {"epochs": task.epochs, "seed": task.seed, "threads": 1}
        for path, neutral in LEGACY_NEUTRAL.items():
            if _get(t, path) == neutral:
                _drop(t, path)
        parts["train"] = t
        parts["index"] = [settings["index_m"], settings["index_ef_construction"], settings["index_ef"]]
        parts["augmentation"] = "shared per task"  # the former function's value, fixed here whatever units.AUGMENTATION becomes
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def rekey(out: Path, data: Path, layout: str, write: bool) -> int:
    """Checks 1-4, then (with ``write``) the new fingerprints and runs.json; returns the number of units."""
    repro = json.loads((out / "report.json").read_text(encoding="utf-8"))["reproducibility"]
    train_config = todays_train_config(repro["train_settings"])
    config = from_dict(EvalConfig, repro["settings"])
    log.info("recorded settings: removed options neutral, sizes as derived; command: %s", repro["command"])
    ctx = prepare(data, out, config, train_config, layout)
    try:
        return _check_and_rekey(ctx, out, repro, config, train_config, write)
    finally:
        try:
            ctx.work_dir.rmdir()  # empty: nothing is trained here
        except OSError:
            pass


def _check_and_rekey(ctx: Context, out: Path, repro: dict[str, Any], config: EvalConfig, train_config: TrainConfig, write: bool) -> int:
    """Checks 3 and 4 on the prepared data, then (with ``write``) the new fingerprints and runs.json."""
    if ctx.data_sha256 != repro["data_sha256"]:
        raise RekeyError(f"{ctx.dataset.root}: sha256 {ctx.data_sha256}, the report's units were computed on {repro['data_sha256']}")
    tasks = plan_tasks(config, ctx.n_classes, len(ctx.folds[GROUPED]), train_config.epochs)
    old_units, new_units = [], []
    for task in tasks:
        d = task_data(ctx, task)
        for method in task.methods:
            path = unit_path(ctx.units_dir, task.unit_key(method))
            raw = json.loads(path.read_text(encoding="utf-8"))
            old = legacy_fingerprint(repro["versions"]["edge-asc"], repro["data_sha256"], repro["settings"], repro["train_settings"],
                                     task, method, d.train_scenes, d.test_scenes)
            if raw["fingerprint"] != old:
                raise RekeyError(f"{path.name}: its fingerprint is not that of the recorded settings; it was computed otherwise")
            unit = Unit.from_json(raw)
            new = dataclasses.replace(unit, fingerprint=fingerprint(config, train_config, ctx.data_sha256, task, method, d.train_scenes, d.test_scenes))
            if new.to_json() != raw | {"fingerprint": new.fingerprint}:
                raise RekeyError(f"{path.name}: would change more than its fingerprint")
            old_units.append(unit)
            new_units.append(new)
    stray = sorted({p.name for p in ctx.units_dir.glob("*.json")} - {unit_path(ctx.units_dir, u.key).name for u in old_units})
    if stray:
        raise RekeyError(f"unit files outside the recorded plan: {', '.join(stray)}")
    old_sha, new_sha = units_sha256(old_units), units_sha256(new_units)
    runs = read_runs(out)
    log.info("%d units match the recorded settings; %d of %d runs in runs.json name this set", len(old_units),
             sum(r.units_sha256 == old_sha for r in runs), len(runs))
    if write:
        for unit in new_units:
            write_unit(ctx.units_dir, unit)
        repointed: list[RunRecord] = [dataclasses.replace(r, units_sha256=new_sha) if r.units_sha256 == old_sha else r for r in runs]
        write_runs(out, repointed)
        log.info("rewrote %d fingerprints; runs.json: set %s... is now %s...", len(new_units), old_sha[:12], new_sha[:12])
    return len(new_units)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("reports/amb13"))
    ap.add_argument("--data", type=Path, default=Path("../shared/data/ambient13"))
    ap.add_argument("--layout", default="auto")
    ap.add_argument("--write", action="store_true", help="rewrite the fingerprints (default: check only)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stderr)
    try:
        n = rekey(args.out, args.data, args.layout, args.write)
    except RekeyError as exc:
        log.error("%s", exc)
        return 1
    print(f"{n} units {'re-keyed' if args.write else 'checked (dry run; --write to re-key)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
