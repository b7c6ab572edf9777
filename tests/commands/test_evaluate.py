"""edge-asc evaluate's settings: the config file's sections, overridden by the flags that were given."""

from __future__ import annotations

import pytest

from edge_asc.evaluation.config import EvalConfig


def test_the_file_sections_are_read_and_the_given_flags_override_them(tmp_path):
    from edge_asc.cli import build_parser
    from edge_asc.commands.evaluate import load_configs
    from edge_asc.config import ConfigError

    cfg = tmp_path / "eval.yaml"
    cfg.write_text("evaluate:\n  seeds: 2\n  neighbours: [1, 3]\ntrain:\n  epochs: 4\n  augment:\n    mix_prob: 0.0\nmodel:\n  hidden_size: 16\n")
    parser = build_parser()
    args = parser.parse_args(["evaluate", "--data", str(tmp_path), "--config", str(cfg), "--seeds", "1", "--leaky", "--variants", "audio,noattn"])
    evaluate, train = load_configs(args.config, args)
    assert (evaluate.seeds, evaluate.neighbours, evaluate.leaky, evaluate.variants) == (1, (1, 3), True, ("audio", "noattn"))
    assert evaluate.folds == EvalConfig().folds  # not given anywhere: the default
    assert (train.epochs, train.augment.mix_prob, train.model.hidden_size) == (4, 0.0, 16)
    for text, key in (("evalute:\n  seeds: 2\n", "evalute"), ("evaluate:\n  seedz: 2\n", "seedz"), ("evaluate:\n  variants: [audio, x]\n", "variants")):
        cfg.write_text(text)
        with pytest.raises(ConfigError, match=key):
            load_configs(cfg, parser.parse_args(["evaluate", "--data", str(tmp_path)]))
