"""The trainer's settings (training/config.py) in a config file: only what a user chooses is accepted."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from edge_asc.config import ConfigError, from_dict
from edge_asc.training.config import REMOVED_OPTIONS, TrainConfig

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "default-amb13.yaml"


def _yaml_section(key: str, value) -> tuple[str, dict]:
    """A dotted key (``train.augment.pieces``) -> its section and the mapping of that section."""
    section, *path = key.split(".")
    data: dict = {path[-1]: value}
    for part in reversed(path[:-1]):
        data = {part: data}
    return section, data


@pytest.mark.parametrize("key", sorted(REMOVED_OPTIONS) + ["model.n_features", "model.n_frames", "model.n_classes"])
def test_a_removed_option_or_a_derived_size_in_a_config_file_is_refused_naming_the_key(tmp_path, key):
    from edge_asc.commands.common import train_config_from_file

    section, data = _yaml_section(key, REMOVED_OPTIONS.get(key, 52))
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump({section: data}))
    with pytest.raises(ConfigError, match=f"unknown key {key};"):
        train_config_from_file(path)


def test_a_model_section_that_sets_n_features_is_an_unknown_key():
    with pytest.raises(ConfigError, match="unknown key model.n_features"):
        from_dict(TrainConfig, {"model": {"n_features": 40}})


def test_the_default_recipe_file_reads_as_the_trainer_defaults_with_two_threads():
    """Every setting of the recipe (model, augmentation, features, optimiser) is the default but the
    number of threads, which the recipe sets for the machine it was trained on."""
    from edge_asc.commands.common import train_config_from_file

    config = train_config_from_file(DEFAULT_CONFIG)
    assert config == dataclasses.replace(TrainConfig(), threads=2)
