"""edge-asc evaluate: the config file's sections overridden by the given flags; a report of other data is never overwritten."""

from __future__ import annotations

import json

import pytest

from edge_asc.evaluation.config import EvalConfig


def test_the_file_sections_are_read_and_the_given_flags_override_them(tmp_path):
    from edge_asc.cli import build_parser
    from edge_asc.commands.evaluate import load_configs
    from edge_asc.config import ConfigError

    cfg = tmp_path / "eval.yaml"
    cfg.write_text("evaluate:\n  seeds: 2\n  neighbours: [1, 3]\ntrain:\n  epochs: 4\n  augment:\n    mix_prob: 0.0\nmodel:\n  hidden_size: 16\n")
    parser = build_parser()
    args = parser.parse_args(["evaluate", "--data", str(tmp_path), "--out", str(tmp_path / "out"), "--config", str(cfg), "--seeds", "1", "--leaky", "--variants", "audio,noattn"])
    evaluate, train = load_configs(args.config, args)
    assert (evaluate.seeds, evaluate.neighbours, evaluate.leaky, evaluate.variants) == (1, (1, 3), True, ("audio", "noattn"))
    assert evaluate.folds == EvalConfig().folds  # not given anywhere: the default
    assert (train.epochs, train.augment.mix_prob, train.model.hidden_size) == (4, 0.0, 16)
    for text, key in (("evalute:\n  seeds: 2\n", "evalute"), ("evaluate:\n  seedz: 2\n", "seedz"), ("evaluate:\n  variants: [audio, x]\n", "variants")):
        cfg.write_text(text)
        with pytest.raises(ConfigError, match=key):
            load_configs(cfg, parser.parse_args(["evaluate", "--data", str(tmp_path), "--out", str(tmp_path / "out")]))


def write_dataset(root, seed: int = 0):
    """Two class folders of 2 s generated clips: a dataset evaluate can load (no training happens here)."""
    import audio_gen
    import soundfile as sf

    for label in audio_gen.LABELS[:2]:
        (root / label).mkdir(parents=True)
        for i in range(2):
            sf.write(str(root / label / f"{label}-{i}.wav"), audio_gen.scene(label, 2.0, seed=seed + i), audio_gen.SAMPLE_RATE)
    return root


def write_report(out, data_sha256):
    out.mkdir(parents=True)
    (out / "report.json").write_text(json.dumps({"format": 1, "reproducibility": {"data_sha256": data_sha256}}))
    return out / "report.json"


@pytest.fixture
def evaluation_calls(monkeypatch):
    """run_evaluation replaced by a recorder: these tests are about what happens before any training."""
    import edge_asc.evaluation.evaluate as evaluate_module

    calls = []

    def record(data, out, *args, **kwargs):
        calls.append(out)
        raise SystemExit(0)

    monkeypatch.setattr(evaluate_module, "run_evaluation", record)
    return calls


def test_out_is_required():
    from edge_asc.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["evaluate", "--data", "somewhere"])


def test_a_report_of_other_data_is_refused_in_one_line_naming_it_unless_forced(tmp_path, evaluation_calls, capfd):
    from edge_asc.cli import main

    data = write_dataset(tmp_path / "data")
    report = write_report(tmp_path / "out", "0" * 64)
    before = report.read_bytes()
    assert main(["evaluate", "--data", str(data), "--out", str(tmp_path / "out")]) == 2
    [message] = [line for line in capfd.readouterr().err.splitlines() if line.startswith("ERROR")]
    assert str(report) in message and "other data" in message and "--force" in message and "\n" not in message
    assert report.read_bytes() == before and evaluation_calls == []
    with pytest.raises(SystemExit):
        main(["evaluate", "--data", str(data), "--out", str(tmp_path / "out"), "--force"])
    assert evaluation_calls == [tmp_path / "out"]


def test_a_report_of_the_same_data_is_resumed_and_an_unreadable_one_is_refused(tmp_path, evaluation_calls):
    from edge_asc.cli import build_parser
    from edge_asc.commands.evaluate import load_configs, refuse_other_report
    from edge_asc.evaluation.plan import dataset_sha256
    from edge_asc.training.datasets import load_dataset

    data = write_dataset(tmp_path / "data")
    args = build_parser().parse_args(["evaluate", "--data", str(data), "--out", str(tmp_path / "out")])
    config, train = load_configs(None, args)
    fc = train.features
    sha, _ = dataset_sha256(load_dataset(data, chunk_seconds=config.chunk_seconds, sample_rate=fc.sample_rate, segment_seconds=fc.segment_seconds))
    assert refuse_other_report(tmp_path / "out", data, "auto", config, train) is None  # no report yet
    report = write_report(tmp_path / "out", sha)
    assert refuse_other_report(tmp_path / "out", data, "auto", config, train) is None
    report.write_text("{not json")
    assert "records no readable dataset sha256" in refuse_other_report(tmp_path / "out", data, "auto", config, train)
    other = write_dataset(tmp_path / "other", seed=7)
    report.write_text(json.dumps({"reproducibility": {"data_sha256": sha}}))
    assert "other data" in refuse_other_report(tmp_path / "out", other, "auto", config, train)
