"""Indexing a dataset (edge_asc.training.build_index) and the edge-asc build-index command, without torch.

The encoder is the committed tiny fixture (``tiny_artifacts``); the dataset is generated tones, one folder
per fixture label, plus an unreadable file (skipped) and, where a test needs it, a label the encoder lacks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from edge_asc.cli import main as cli_main
from edge_asc.dsp.features import FeatureExtractor
from edge_asc.runtime.encoder import Encoder
from edge_asc.runtime.index import SegmentIndex
from edge_asc.training.build_index import build_index_from_dataset
from edge_asc.training.datasets import extract_segments, load_dataset


@pytest.fixture(scope="module")
def encoder(tiny_artifacts) -> Encoder:
    return Encoder(tiny_artifacts.model)


def write_dataset(root: Path, labels, extra_label: str | None = None) -> Path:
    """Distinct generated tones, two recordings per label (1.0 and 1.3 s), and one broken file."""
    sr = 16000
    rng = np.random.default_rng(0)
    names = list(labels) + ([extra_label] if extra_label else [])
    for i, label in enumerate(names):
        freq = 300.0 * (2.0 ** i)
        for r in range(2):
            n = int(sr * (1.0 + 0.3 * r))
            t = np.arange(n) / sr
            x = 0.3 * np.sin(2 * np.pi * freq * (1 + 0.05 * r) * t) + 0.02 * rng.standard_normal(n)
            (root / label).mkdir(parents=True, exist_ok=True)
            sf.write(str(root / label / f"{label}{r}.wav"), x.astype(np.float32), sr)
    (root / labels[1] / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk")
    return root


def test_an_index_of_a_dataset_holds_what_the_daemon_computes_for_its_segments(encoder, tmp_path):
    dataset = load_dataset(write_dataset(tmp_path / "data", encoder.meta.labels))
    index = build_index_from_dataset(encoder, dataset, M=8, ef_construction=50)
    segs = extract_segments(dataset, FeatureExtractor(encoder.meta.feature_config))
    assert len(index) == len(segs) == 3 * (3 + 4)  # per label: 1.0 s -> 3 and 1.3 s -> 4 segments
    np.testing.assert_allclose(index.vectors(), encoder.embed(segs.features), atol=1e-5)
    np.testing.assert_array_equal(np.asarray(index.labels)[index.item_labels], np.asarray(dataset.labels)[segs.labels])
    assert set(index.scene_ids) == {s.scene_id for s in dataset.scenes}
    assert set(index.recording_ids) == set(dataset.recording_ids)
    np.testing.assert_array_equal(index.positions, segs.position)
    info = index.manifest.dataset
    broken = str(tmp_path / "data" / encoder.meta.labels[1] / "broken.wav")
    assert info["segments"] == 21 and info["recordings"] == 6 and info["skipped_files"] == [broken]
    # a selection of scenes and a per-label cap
    part = build_index_from_dataset(encoder, dataset, scene_indices=[0, 1, 2], M=8, ef_construction=50, max_items_per_label=2)
    assert len(part) <= 6 and part.manifest.dataset["scenes"] == 3


def test_indexing_a_dataset_with_a_label_the_encoder_lacks_is_refused_naming_it(encoder, tmp_path):
    dataset = load_dataset(write_dataset(tmp_path / "data", encoder.meta.labels, extra_label="thunder"))
    with pytest.raises(ValueError, match="not trained on: thunder"):
        build_index_from_dataset(encoder, dataset)


def test_the_build_index_command_takes_defaults_then_the_file_then_the_flags(tiny_artifacts, encoder, tmp_path, capsys):
    data = write_dataset(tmp_path / "data", encoder.meta.labels)
    config = tmp_path / "index.yaml"
    config.write_text(yaml.safe_dump({"index": {"M": 6, "ef": 12, "max_per_label": 5}, "model": {"hidden_size": 8}}))
    out = tmp_path / "index" / "tiny"
    argv = ["build-index", "--model", str(tiny_artifacts.model), "--data", str(data), "--out", str(out), "--config", str(config), "--ef", "20"]
    assert cli_main(argv) == 0
    index = SegmentIndex.load(out, encoder_meta=encoder.meta)
    assert (index.manifest.M, index.manifest.ef, index.manifest.ef_construction) == (6, 20, 200)  # file, then flag
    assert len(index) == 15 and index.manifest.dataset["subsample"]["from_count"] == 21
    unknown = write_dataset(tmp_path / "data2", encoder.meta.labels, extra_label="thunder")
    assert cli_main(["build-index", "--model", str(tiny_artifacts.model), "--data", str(unknown), "--out", str(tmp_path / "x")]) == 1
    assert "not trained on: thunder" in capsys.readouterr().err and not (tmp_path / "x").exists()
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"index": {"m": 6}}))
    assert cli_main(argv[:-4] + ["--config", str(bad)]) == 2
    assert "unknown key index.m" in capsys.readouterr().err
    bad.write_text(yaml.safe_dump({"indx": {}}))
    assert cli_main(argv[:-4] + ["--config", str(bad)]) == 2
    assert "indx" in capsys.readouterr().err
