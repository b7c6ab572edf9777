"""The shipped encoder and index (ONNX Runtime + hnswlib, as the daemon runs them) on another dataset, per class.

    python bench/shipped_on_source.py --data ~/data/debian-ambient

Every scene of the dataset is featurised as its own stream, every complete 300 ms segment embedded and labelled
by its nearest indexed segment (k = 1, the index's own ef). Prints first-segment, per-segment and whole-scene
(majority) accuracy per class and over all scenes, with the classes' chance level. For the model card's
per-source figures: the shipped model heard every ambient13 recording, so on ambient13 this is optimistic; on a
source it never heard (debian-ambient) it is the honest figure.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

from edge_asc.dsp.features import FeatureExtractor
from edge_asc.paths import default_index_path, default_model_path
from edge_asc.runtime.encoder import Encoder
from edge_asc.runtime.index import SegmentIndex
from edge_asc.training.datasets import extract_segments, load_dataset


def accuracy(pred: np.ndarray, truth: np.ndarray, scene: np.ndarray, position: np.ndarray) -> tuple[float, float, float]:
    """(first segment, every segment, majority over the scene) accuracy."""
    first = position == 0
    scenes = np.unique(scene)
    majority = [np.bincount(pred[scene == s]).argmax() == truth[scene == s][0] for s in scenes]
    return float(np.mean(pred[first] == truth[first])), float(np.mean(pred == truth)), float(np.mean(majority))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--index", type=Path, default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    encoder = Encoder(args.model or default_model_path())
    index = SegmentIndex.load(args.index or default_index_path(), encoder.meta)
    dataset = load_dataset(args.data)
    segs = extract_segments(dataset, FeatureExtractor(encoder.meta.feature_config))
    names = [dataset.labels[i] for i in segs.labels]
    truth = np.array([encoder.meta.labels.index(n) for n in names])  # (N,) in the model's label ids
    pred = np.concatenate([index.query(encoder.embed(segs.features[i : i + 512]), k=1)[0][:, 0] for i in range(0, len(segs), 512)])
    print(f"{args.data}: {len(segs)} segments, {len(np.unique(segs.scene))} scenes, model {encoder.meta.sha256[:12]}, ef {index.ef}")
    print("| class | scenes | first segment | every segment | whole scene |\n|---|---:|---:|---:|---:|")
    for label in dataset.labels:
        rows = np.array([n == label for n in names])
        f, s, a = accuracy(pred[rows], truth[rows], segs.scene[rows], segs.position[rows])
        print(f"| {label} | {len(np.unique(segs.scene[rows]))} | {100 * f:.1f} | {100 * s:.1f} | {100 * a:.1f} |")
    f, s, a = accuracy(pred, truth, segs.scene, segs.position)
    print(f"| **all** ({len(dataset.labels)} classes tested of the model's {len(encoder.meta.labels)}: chance {100 / len(encoder.meta.labels):.1f}) | {len(np.unique(segs.scene))} | {100 * f:.1f} | {100 * s:.1f} | {100 * a:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
