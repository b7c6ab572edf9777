"""Several datasets as one: ``edge-asc train --data A --data B`` (and ``build-index``).

Only numpy, the standard library and edge_asc's own modules are imported here (runtime-safe).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Sequence

from edge_asc.dsp.features import SAMPLE_RATE
from edge_asc.training.datasets import CHUNK_SECONDS, Dataset, load_dataset
from edge_asc.training.layouts import DatasetError

log = logging.getLogger(__name__)


def load_datasets(
    roots: Sequence[str | Path],
    layout: str = "auto",
    chunk_seconds: float | None = CHUNK_SECONDS,
    sample_rate: int = SAMPLE_RATE,
    segment_seconds: float | None = None,
) -> Dataset:
    """Several datasets as one (``edge-asc train --data A --data B``): the union of their labels and scenes.

    One root is ``load_dataset``'s dataset, unchanged. With several, every scene records its source (the
    folder's name, made unique: ``Dataset.sources``) and its recording id is prefixed with that name
    (``ambient13/moodist:cafe.mp3``), so that recordings stay distinct across sources and splits grouped by
    recording stay leak-free. Official folds are dropped (they describe one dataset); ``layout`` applies to all.
    """
    roots = [Path(r) for r in roots]
    if not roots:
        raise DatasetError("no dataset given")
    if len(roots) == 1:
        return load_dataset(roots[0], layout, chunk_seconds, sample_rate, segment_seconds)
    if len({r.resolve() for r in roots}) < len(roots):
        raise DatasetError(f"a dataset is given twice: {', '.join(map(str, roots))}")
    parts = [load_dataset(r, layout, chunk_seconds, sample_rate, segment_seconds) for r in roots]
    names = unique_names([r.resolve().name for r in roots])
    scenes = [
        dataclasses.replace(s, recording_id=f"{name}/{s.recording_id}", source=i)
        for i, (name, part) in enumerate(zip(names, parts))
        for s in part.scenes
    ]
    if any(part.folds for part in parts):
        log.info("official folds are not used when datasets are combined")
    dataset = Dataset(
        root=roots[0],
        layout="+".join(part.layout for part in parts),
        labels=tuple(sorted({s.label for s in scenes})),
        scenes=scenes,
        sample_rate=sample_rate,
        chunk_seconds=chunk_seconds,
        skipped=[x for part in parts for x in part.skipped],
        sources=tuple(names),
        roots=tuple(roots),
    )
    log.info("combined: %s", dataset.summary())
    return dataset


def unique_names(names: Sequence[str]) -> list[str]:
    """``names`` with a repeated one numbered (``data``, ``data-2``): two folders called alike stay apart."""
    out: list[str] = []
    for name in names:
        candidate, n = name, 1
        while candidate in out:
            n += 1
            candidate = f"{name}-{n}"
        out.append(candidate)
    return out
