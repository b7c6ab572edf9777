"""Enrolment and forgetting over the socket (``server.allow_enroll``): the daemon remembers what it hears.

``{"type":"enroll","label":L,"seconds":S}`` starts a job; the worker, which computes every segment's
embedding anyway, hands each one to ``on_segment`` (a copy of a D-float vector and, per block, a sum of
squares for the silence check: nothing more on the worker thread). Progress goes out as ``enrolling``
events about once a second. When S seconds were heard the job goes to a writer thread, which adds the
embeddings to the overlay exactly as ``edge-asc enroll`` does (runtime.enrol.enrol_embeddings: the lock,
the calibration, the atomic replace), publishes ``enrolled`` (or an ``error`` with code ``enrol_refused``)
and asks the daemon to reload the overlay, which it swaps in between two segments. ``forget`` runs on a
writer thread too. One enrolment or forget at a time; another request meanwhile is refused.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from edge_asc.protocol.messages import ENROL_REFUSED, Enrolled, Enrolling, Error, Event, Forgotten
from edge_asc.runtime.enrol import SILENCE_RMS, EnrolError, Piece, check_label, enrol_embeddings, forget

log = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 1.0  # of audio between two ``enrolling`` events
SOURCE_NAME = "socket"  # the enrolment's source in the overlay (edge-asc labels shows it)


@dataclass
class _Job:
    label: str
    seconds: float
    want: int  # segments
    embeddings: list = field(default_factory=list)
    sumsq: float = 0.0
    samples: int = 0
    reported: int = 0  # segments at the last progress event


class LiveEnrolments:
    """The enrolment requests of one daemon; ``publish`` sends an event to every client, ``written`` asks
    the daemon to reload the overlay."""

    def __init__(self, directory: str | Path, meta, model_labels: tuple[str, ...], publish: Callable[[Event], None], written: Callable[[], None]) -> None:
        self.directory = Path(directory)
        self.meta = meta
        self.model_labels = model_labels
        self.publish = publish
        self.written = written
        self.segment_s = meta.feature_config.segment_seconds
        self._lock = threading.Lock()
        self._job: _Job | None = None
        self._busy = False  # a job is collecting or being written, or a forget runs
        self._writers: list[threading.Thread] = []

    # --- requests (server thread) ---
    def request_enrol(self, label: str, seconds: float) -> Event:
        try:
            check_label(label)
        except EnrolError as exc:
            return Error(ENROL_REFUSED, str(exc))
        want = max(2, int(round(seconds / self.segment_s)))
        with self._lock:
            if self._busy:
                return Error(ENROL_REFUSED, "another enrolment or forget is in progress; try again when it has finished")
            self._busy = True
            self._job = _Job(label, seconds, want)
        log.info("enrolling %r from the live stream: %.1f s", label, seconds)
        return Enrolling(label, 0.0, seconds)

    def request_forget(self, label: str) -> Event | None:
        with self._lock:
            if self._busy:
                return Error(ENROL_REFUSED, "an enrolment or forget is in progress; try again when it has finished")
            self._busy = True
        self._start(self._forget, label)
        return None

    # --- the worker thread: cheap ---
    def on_block(self, block: np.ndarray) -> None:
        job = self._job
        if job is not None:
            job.sumsq += float(np.dot(block, block))
            job.samples += block.shape[0]

    def on_segment(self, embedding: np.ndarray | None) -> None:
        job = self._job
        if job is None or embedding is None:
            return
        job.embeddings.append(np.array(embedding, dtype=np.float32))
        n = len(job.embeddings)
        if n >= job.want:
            with self._lock:
                self._job = None
            self._start(self._write, job)
        elif (n - job.reported) * self.segment_s >= PROGRESS_INTERVAL_S:
            job.reported = n
            self.publish(Enrolling(job.label, round(n * self.segment_s, 3), job.seconds))

    # --- writer threads ---
    def _start(self, target, arg) -> None:
        t = threading.Thread(target=self._run, args=(target, arg), name="edge-asc-enrol", daemon=True)
        self._writers = [w for w in self._writers if w.is_alive()] + [t]
        t.start()

    def _run(self, target, arg) -> None:
        try:
            self.publish(target(arg))
        except EnrolError as exc:
            log.warning("%s", exc)
            self.publish(Error(ENROL_REFUSED, str(exc)))
        except Exception as exc:  # a writer must never die silently: the client waits for an answer
            log.exception("enrolment failed")
            self.publish(Error(ENROL_REFUSED, f"the enrolment failed: {exc}"))
        finally:
            with self._lock:
                self._busy = False

    def _write(self, job: _Job) -> Event:
        rms = float(np.sqrt(job.sumsq / max(job.samples, 1)))
        if rms < SILENCE_RMS:
            raise EnrolError(f"{job.label}: the live audio was silent (RMS {20 * np.log10(max(rms, 1e-12)):.0f} dBFS); nothing to remember")
        emb = np.stack(job.embeddings)
        piece = Piece(SOURCE_NAME, round(len(emb) * self.segment_s, 3), emb, np.arange(len(emb)) * self.segment_s)
        r = enrol_embeddings(self.directory, self.meta, job.label, [piece], self.model_labels)
        self.written()
        log.info("enrolled %r from the live stream: %d segments, threshold %.4g", r.label, r.items, r.threshold)
        return Enrolled(r.label, r.items, round(r.seconds, 3), r.threshold, r.total_items, r.model_label)

    def _forget(self, label: str) -> Event:
        removed = forget(self.directory, label)
        self.written()
        log.info("forgot %r (%d items)", label, removed)
        return Forgotten(label, removed)

    def join(self, timeout: float) -> None:
        """Let a write in progress finish (the daemon is stopping)."""
        for t in self._writers:
            t.join(timeout)
