"""``edge-asc labels``: every label the daemon can decide, with its items and where they came from.

Model labels: items and recordings in the index (the model's training data). Enrolled places: items, the
threshold, and each enrolment (when, from what, how long). Enrolled places made with another encoder than
the index's are marked stale (the daemon refuses them; re-enrol).
"""

from __future__ import annotations

import argparse
import logging

from edge_asc.commands.common import MODEL_FLAGS, add_store_arguments, daemon_config

HELP = "list the labels: the model's (with their training data) and the enrolled places"

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_store_arguments(parser, model=True)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from edge_asc.contract import MANIFEST_FILE, ArtifactError
    from edge_asc.runtime.enrolled import EnrolledSet
    from edge_asc.runtime.index import SegmentIndex

    cfg = daemon_config(args, MODEL_FLAGS)
    try:
        index = SegmentIndex.load(cfg.index_path())
        enrolled_dir = cfg.enrolled_path()
        enrolled = EnrolledSet.load(enrolled_dir) if (enrolled_dir / MANIFEST_FILE).exists() else None
    except ArtifactError as exc:
        log.error("%s", exc)
        return 2
    recordings = index.recording_ids
    print(f"model data: index {cfg.index_path()} ({len(index)} items)")
    for i, (label, count) in enumerate(index.counts().items()):
        n_rec = np.unique(recordings[index.item_labels == i]).size
        print(f"  {label:<24} {count:6d} items from {n_rec} recordings")
    if enrolled is None or not len(enrolled):
        print(f"enrolled places: none ({enrolled_dir}; add one with edge-asc enroll --label NAME FILE)")
        return 0
    stale = enrolled.manifest.encoder_sha256 != index.manifest.encoder_sha256
    print(f"enrolled places: {enrolled_dir}" + ("  STALE: made with another encoder than this index's; re-enrol them" if stale else ""))
    counts = enrolled.counts()
    for label in enrolled.labels:
        kind = " (model label: more audio of that class)" if label in index.labels else ""
        print(f"  {label:<24} {counts[label]:6d} items, threshold {enrolled.manifest.thresholds[label]:.4g}{kind}")
        for e in enrolled.manifest.enrolments:
            if e.label == label:
                print(f"      enrolled {e.time} from {e.source}: {e.seconds:.1f} s, {e.items} items")
    return 0
