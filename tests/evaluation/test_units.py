"""The unit cache: a unit is reused only under the fingerprint of the settings it was computed with."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge_asc.config import ConfigError, apply_overrides, to_dict
from edge_asc.evaluation.config import NO_LEARNING, EvalConfig
from edge_asc.evaluation.plan import Task
from edge_asc.evaluation.scoring import RuleResult, SceneDecisions
from edge_asc.evaluation.units import TrainingInfo, Unit, fingerprint, read_unit, unit_path, write_unit
from edge_asc.training.config import TrainConfig

TASK = Task("grouped", 0, 1, ("audio",), epochs=5)
SET_BY_THE_UNIT = {"epochs", "seed", "threads", "model.variant"}  # the task's epochs and seed, the method; threads pinned


def _fp(train: TrainConfig, task: Task = TASK, method: str = "audio", config: EvalConfig = EvalConfig()) -> str:
    return fingerprint(config, train, "d" * 64, task, method, np.arange(5), np.arange(5, 8))


def _leaves(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        out.update(_leaves(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out


def _other_values(value):
    """Candidate values different from ``value`` (the first one the config accepts is used)."""
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [value + 1, value + 2, value * 2, value - 1]
    if isinstance(value, float):
        return [value + 0.5, value * 0.5, value + 1.0]
    if value is None:
        return [4000.0, 1]
    if isinstance(value, list):
        return [[value[0] + 1.0, *value[1:]], [value[0], value[-1] + 1.0]]
    return ["constant", "cosine", "softmax", "triplet"]


def _changed(train: TrainConfig, key: str, value):
    for other in _other_values(value):
        if other == value:
            continue
        try:
            return apply_overrides(train, {key: other})
        except ConfigError:
            continue
    raise AssertionError(f"no other accepted value found for {key}")


def test_the_fingerprint_changes_when_any_training_setting_changes():
    base = TrainConfig()
    reference = _fp(base)
    leaves = _leaves(to_dict(base))
    assert len(leaves) > 20  # the whole config is walked, the feature settings included
    for key, value in leaves.items():
        changed = _changed(base, key, value)
        if key in SET_BY_THE_UNIT:
            assert _fp(changed) == reference, f"{key} is set by the unit, yet it changed the fingerprint"
        else:
            assert _fp(changed) != reference, f"changing {key} left the fingerprint unchanged"


def test_the_fingerprint_follows_the_task_the_method_and_the_decision_settings():
    base = TrainConfig()
    reference = _fp(base)
    assert _fp(base, task=Task("grouped", 0, 2, ("audio",), epochs=5)) != reference  # seed
    assert _fp(base, task=Task("grouped", 0, 1, ("audio",), epochs=6)) != reference  # epochs
    assert _fp(base, method="triplet") != reference
    assert _fp(base, config=EvalConfig(k_max=3)) != reference
    assert _fp(base, config=EvalConfig(threads=2, jobs=2)) == reference  # how many processes, not what they compute
    # the no-learning baseline does not train: the trainer's settings other than the features leave it alone
    assert _fp(base, method=NO_LEARNING) == _fp(apply_overrides(base, {"margin": 0.5}), method=NO_LEARNING)
    assert _fp(base, method=NO_LEARNING) != _fp(apply_overrides(base, {"features.n_mels": 41}), method=NO_LEARNING)


def _unit(fp: str) -> Unit:
    d = SceneDecisions(np.array([3, 4]), np.array([0, 1]), np.array([[0, 0], [0, 1]]), np.array([0, 1]), np.array([7, 9]))
    info = TrainingInfo(1.5, 0.25, 5, 0.125, None, 129, 1e-7)
    return Unit("grouped-f1-s1-audio", "grouped-f1-s1", "grouped", "fold1", 0, False, 1, "audio", None, 0, ("a", "b"),
                10, 4, 5, 2, fp, 2.0, info, (RuleResult("audio", "nn1", 0.75, d), RuleResult("audio", "nn5", 0.5, d)))


def test_a_written_unit_is_read_back_only_under_its_fingerprint(tmp_path):
    unit = _unit("f" * 64)
    path = write_unit(tmp_path, unit)
    assert path == unit_path(tmp_path, unit.key)
    back = read_unit(path, "f" * 64)
    assert back is not None and back.to_json() == unit.to_json()
    assert back.result("audio", "nn5").segment_accuracy == 0.5 and back.rows == ("audio",)
    assert read_unit(path, "e" * 64) is None  # other settings: recomputed
    assert read_unit(tmp_path / "missing.json", "f" * 64) is None
    path.write_text("{not json", encoding="utf-8")
    assert read_unit(path, "f" * 64) is None  # a damaged file is recomputed, not an error


def test_a_unit_file_keeps_its_format(tmp_path):
    data = json.loads(write_unit(tmp_path, _unit("f" * 64)).read_text(encoding="utf-8"))
    assert list(data) == ["format", "key", "task", "protocol", "fold", "fold_index", "leaky", "seed", "method", "classes", "draw",
                          "labels", "segments", "scenes", "fingerprint", "wall_s", "info", "results"]
    assert data["results"]["audio"]["nn1"]["decisions"]["scene"] == [3, 4]
    assert data["segments"] == {"train": 10, "test": 4} and data["info"]["embedding_size"] == 129
    with pytest.raises(ValueError, match="format"):
        Unit.from_json(data | {"format": 2})
