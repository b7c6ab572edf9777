"""Picking up enrolments made on disk while the daemon runs (``edge-asc enroll`` / ``forget``, SIGHUP).

The overlay directory is replaced as a whole (runtime.enrolled: atomic_write_dir), so its manifest's
(inode, mtime_ns) changes with every write: ``OverlayWatcher.changed`` is one ``stat`` of that file, cheap
enough for the daemon's main loop to call several times a second. ``load`` reads the new overlay and
builds the Searcher to swap in (off the worker thread) and checks it can answer the pipeline's
``decision.neighbours`` neighbours; the worker swaps it between two segments (Daemon._swap), so no query
ever sees half of a change. A store that cannot be read (a stale encoder, a damaged file) or that holds
fewer items than ``decision.neighbours`` keeps the current one and says why. ``enrolled_only`` with every
place forgotten is swapped in: every segment is then ``unknown`` (runtime.search).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from edge_asc.contract import MANIFEST_FILE, ArtifactError
from edge_asc.runtime.enrolled import EnrolledSet
from edge_asc.runtime.pipeline import neighbours_problem
from edge_asc.runtime.search import Searcher

log = logging.getLogger(__name__)

Stamp = tuple[int, int] | None  # (inode, mtime_ns) of the manifest; None: there is none


def stamp(directory: Path) -> Stamp:
    try:
        st = os.stat(directory / MANIFEST_FILE)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


class OverlayWatcher:
    """The enrolled-places directory of a running daemon and the version of it last loaded."""

    def __init__(self, directory: str | Path, meta) -> None:
        self.directory = Path(directory)
        self.meta = meta
        self.loaded: Stamp = stamp(self.directory)

    def changed(self) -> bool:
        return stamp(self.directory) != self.loaded

    def load(self, current: Searcher, neighbours: int = 1) -> Searcher | str:
        """The Searcher over the overlay as it is now, able to answer ``neighbours`` neighbours per segment,
        or a one-line reason why the current one stays."""
        now = stamp(self.directory)
        self.loaded = now  # tried once per change: a broken store is reported once, not every poll
        try:
            found = current.with_enrolled(EnrolledSet.load_or_empty(self.directory, self.meta))
        except (ArtifactError, ValueError) as exc:
            return f"enrolled places {self.directory} not reloaded, the previous ones stay in use: {exc}"
        problem = neighbours_problem(neighbours, found)
        if problem:
            return f"enrolled places {self.directory} not reloaded, the previous ones stay in use: {problem}"
        return found
