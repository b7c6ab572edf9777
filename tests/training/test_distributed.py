"""Training across processes (training/distributed.py, the trainer under torchrun, train --workers): two gloo
ranks on one machine train as well as one, record world_size 2, and their checkpoint resumes on one rank
(and a one-rank checkpoint on two); a seeded two-rank run is reproducible.

The two-rank parts run this file as a script under ``python -m torch.distributed.run`` (see ``ranks_main``).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

torch = pytest.importorskip("torch")

from edge_asc.cli import build_parser, main as cli_main  # noqa: E402
from edge_asc.commands.train import torchrun_command  # noqa: E402
from edge_asc.training.checkpoint import CHECKPOINT_NAME, load_checkpoint  # noqa: E402
from edge_asc.training.batches import SceneRef, SceneSource  # noqa: E402
from edge_asc.training.distributed import TORCHRUN_ENV, World, default_extract_workers, join, leave  # noqa: E402
from edge_asc.training.extract import Worker  # noqa: E402
from edge_asc.training.feature_cache import FeatureCache  # noqa: E402
from edge_asc.training.train import fit_segments, steps_per_epoch  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # `training.generated` when run as a script under torchrun
from training.generated import CLASSES, SR, features_of, generated_scenes, tiny_config  # noqa: E402

EPOCHS = 6
ACCURACY_MARGIN = 0.15  # two ranks' 1-NN accuracy on unheard recordings may be this much below one rank's


def recipe_file(path: Path) -> Path:
    path.write_text(f"train:\n  epochs: {EPOCHS}\n  batch_size: 24\n  classes_per_batch: 3\n  lr: 0.003\n  threads: 1\nmodel:\n  hidden_size: 16\n")
    return path


def dataset_folder(root: Path) -> Path:
    """Four 2.4 s generated recordings per class (those of trained_tiny), as a folder dataset."""
    audio, labels, _ = generated_scenes(4, 2.4, seed=0)
    rows = ["path,label,recording_id"]
    for i, (x, c) in enumerate(zip(audio, labels)):
        rel = f"{CLASSES[c]}/{i}.wav"
        (root / CLASSES[c]).mkdir(parents=True, exist_ok=True)
        sf.write(root / rel, x, SR, subtype="FLOAT")
        rows.append(f"{rel},{CLASSES[c]},rec{i}")
    (root / "metadata.csv").write_text("\n".join(rows) + "\n")
    return root


def held_out_accuracy(trained) -> float:
    """1-NN accuracy on recordings it never heard, against its training recordings' embeddings."""
    train_audio, train_labels, _ = generated_scenes(4, 2.4, seed=0)
    test_audio, test_labels, _ = generated_scenes(3, 2.4, seed=5000)
    ref_x, ref_y = features_of(train_audio, train_labels)
    q_x, q_y = features_of(test_audio, test_labels)
    ref, query = trained.embed(ref_x), trained.embed(q_x)
    d = ((query[:, None, :] - ref[None, :, :]) ** 2).sum(-1)  # (Q, R)
    return float(np.mean(ref_y[d.argmin(axis=1)] == q_y))


def fixed_segments() -> tuple[np.ndarray, np.ndarray]:
    return np.random.default_rng(0).standard_normal((120, 20, 52)).astype(np.float32), np.arange(120) % 3


def weights(trained) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in trained.model.parameters()])


def run_ranks(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=HERE.parent.parent)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def ranks_main(out: Path, one_rank_run: Path) -> None:
    """Under torchrun with 2 ranks: two seeded runs on fixed features (saved for the test to compare), and a
    one-rank run's checkpoint resumed for one more epoch."""
    world = join("cpu")
    x, y = fixed_segments()
    for name in ("a", "b"):
        trained = fit_segments(tiny_config(epochs=2), x, y, CLASSES, out_dir=out / name, progress=False)
        assert trained.world_size == world.size == 2
    cfg = load_checkpoint(one_rank_run).config
    import dataclasses

    from edge_asc.training.datasets import load_dataset
    from edge_asc.training.train import train

    dataset = load_dataset(one_rank_run.parent / "data")
    train(dataclasses.replace(cfg, epochs=EPOCHS + 1), dataset, out_dir=one_rank_run, resume=True, progress=False)
    leave()


def test_two_gloo_ranks_train_as_well_as_one_and_each_checkpoint_resumes_on_the_other_world_size(tmp_path, capsys):
    data = dataset_folder(tmp_path / "data")
    recipe = recipe_file(tmp_path / "train.yaml")
    common = ["--data", str(data), "--config", str(recipe), "--cache-dir", str(tmp_path / "cache"), "--extract-workers", "1"]
    # two ranks, through the command's own --workers (torchrun underneath)
    run_ranks("-m", "edge_asc", "train", "--out", str(tmp_path / "two"), "--workers", "2", *common)
    two = load_checkpoint(tmp_path / "two")
    assert two.epoch == EPOCHS and two.world_size == 2
    assert torch.load(tmp_path / "two" / CHECKPOINT_NAME, weights_only=False)["world_size"] == 2
    # one rank, in this process, on the same data and recipe (and the same cache)
    assert cli_main(["train", "--out", str(tmp_path / "one"), *common]) == 0
    one = load_checkpoint(tmp_path / "one")
    assert one.world_size == 1 and [h.segments for h in one.history] == [h.segments for h in two.history]
    acc_one, acc_two = held_out_accuracy(one), held_out_accuracy(two)
    assert acc_one >= 0.6 and acc_two >= acc_one - ACCURACY_MARGIN, (acc_one, acc_two)  # chance is 1/3
    # the two-rank checkpoint resumes on one rank, saying that the run is no longer the uninterrupted one
    capsys.readouterr()
    assert cli_main(["train", "--out", str(tmp_path / "two"), "--resume", "--epochs", str(EPOCHS + 1), *common]) == 0
    assert "trained on 2 rank(s), this run has 1" in capsys.readouterr().err
    resumed = load_checkpoint(tmp_path / "two")
    assert resumed.epoch == EPOCHS + 1 and resumed.world_size == 1 and resumed.history[:EPOCHS] == two.history
    # a one-rank checkpoint resumes on two ranks; two seeded two-rank runs end with equal weights
    run_ranks("-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", __file__, str(tmp_path), str(tmp_path / "one"))
    again = load_checkpoint(tmp_path / "one")
    assert again.epoch == EPOCHS + 1 and again.world_size == 2 and again.history[:EPOCHS] == one.history
    a, b = load_checkpoint(tmp_path / "a"), load_checkpoint(tmp_path / "b")
    assert torch.equal(weights(a), weights(b))
    alone = fit_segments(tiny_config(epochs=2), *fixed_segments(), CLASSES, progress=False)
    assert not torch.equal(weights(a), weights(alone))  # two ranks are not one rank run twice


def test_one_process_is_a_world_of_one_rank_that_sums_to_its_own_values(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    world = join("cpu")
    assert world == World(0, 1, torch.device("cpu")) and world.is_main and not world.distributed
    assert world.sum([1, 2.5]) == [1.0, 2.5]
    module = torch.nn.Linear(2, 2)
    assert world.wrap(module) is module  # no DistributedDataParallel for one rank


def test_steps_per_epoch_share_the_segments_between_the_ranks():
    assert steps_per_epoch(1000, 64, 1) == 16 and steps_per_epoch(1000, 64, 2) == 8 and steps_per_epoch(10, 64, 4) == 1


def test_workers_reruns_the_same_command_line_under_torchrun_without_workers(tmp_path):
    argv = ["--log-level", "DEBUG", "train", "--data", "d", "--data", "e", "--out", str(tmp_path), "--workers", "3", "--epochs", "2",
            "--no-augment", "--resume", "--lr", "0.001", "--extract-workers", "2", "--no-cache"]
    args = build_parser().parse_args(argv)
    command = torchrun_command(args)
    assert command[:7] == [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "3", "-m"]
    assert command[7] == "edge_asc" and "--workers" not in command
    again = build_parser().parse_args(command[8:])
    for key, value in vars(args).items():
        if key not in ("workers", "_run", "_log_level", "_train_parser"):
            assert getattr(again, key) == value, key
    assert again.workers == 1


def test_workers_under_torchrun_is_refused_with_a_one_line_message(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(TORCHRUN_ENV, "x")
    assert cli_main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--workers", "2"]) == 2
    err = capsys.readouterr().err
    assert "already runs under torchrun" in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "r").exists()


if __name__ == "__main__":  # under torchrun: see ranks_main
    logging.basicConfig(level=logging.WARNING)
    ranks_main(Path(sys.argv[1]), Path(sys.argv[2]))


def test_extraction_workers_default_to_the_machines_cores_over_its_ranks(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    for env, expected in (({}, 16), ({"WORLD_SIZE": "4"}, 4), ({"WORLD_SIZE": "8", "LOCAL_WORLD_SIZE": "2"}, 8), ({"WORLD_SIZE": "32"}, 1)):
        for name in ("WORLD_SIZE", "LOCAL_WORLD_SIZE"):
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        args = build_parser().parse_args(["train", "--data", "d", "--out", "o"])
        assert default_extract_workers() == args.extract_workers == expected, env


def test_each_rank_fills_its_share_of_the_cache_and_waits_for_the_others_before_the_draws(tmp_path, monkeypatch):
    audio, labels, recs = generated_scenes(2, 1.0, seed=3)
    refs = []
    for i, x in enumerate(audio):
        sf.write(tmp_path / f"{i}.flac", x, SR)
        refs.append(SceneRef.from_file(tmp_path / f"{i}.flac", 0, x.shape[0]))
    done: dict[str, list[int]] = {}
    real_run = Worker.run
    monkeypatch.setattr(Worker, "run", lambda self, job: done.setdefault(threading.current_thread().name, []).append(job.draw) or real_run(self, job))
    barrier = threading.Barrier(2, timeout=60)
    sources = [SceneSource(tiny_config(), refs, labels, recs, FeatureCache.open(tmp_path / "cache")) for _ in range(2)]
    ranks = [threading.Thread(target=sources[r].prepare, args=(range(2), r, 2, barrier.wait), name=f"rank{r}") for r in range(2)]
    for t in ranks:
        t.start()
    for t in ranks:
        t.join()
    assert sorted(done) == ["rank0", "rank1"] and [len(v) for v in done.values()] == [9, 9]  # (6 clean + 12 draws) / 2
    assert all(v[:3] == [None] * 3 and None not in v[3:] for v in done.values())  # clean first, then draws
    assert len(list((tmp_path / "cache").glob("??/*.npy"))) == 18
