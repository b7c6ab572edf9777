"""Enrolment and forgetting over the socket (``server.allow_enroll``): the daemon remembers what it hears.

``{"type":"enroll","label":L,"seconds":S}`` starts a job; the worker, which computes every segment's
embedding anyway, hands each one to ``on_segment`` (a copy of a D-float vector and, per block, a sum of
squares for the silence check: nothing more on the worker thread). Progress goes out as ``enrolling``
events about once a second. When S seconds were heard the job goes to a writer thread, which adds the
embeddings to the overlay exactly as ``edge-asc enroll`` does (runtime.enrol.enrol_embeddings: the lock,
the calibration, the atomic replace), publishes ``enrolled`` (or an ``error`` with code ``enrol_refused``)
and asks the daemon to reload the overlay, which it swaps in between two segments. ``forget`` runs on a
writer thread too. One enrolment or forget at a time; another request meanwhile is refused.

Only audio heard after the request is enrolled: the job starts at the first block the worker takes after
it, and a segment whose audio (its left context included) begins before that is not used; the silence
check covers the same blocks. A job that has not heard its S seconds within 2 S + ``audio.no_data_timeout``
(``expire``, called by the daemon's main loop), or whose source is lost (``cancel``), ends with
``enrol_refused`` and the next request is accepted.
"""

from __future__ import annotations

import logging
import threading
import time
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
    deadline: float  # monotonic time by which the job must have heard its segments
    start: int | None = None  # stream sample (model rate) of the first block after the request; None: none yet
    run_start: int = 0  # stream sample where the pipeline's current run began (silence before it)
    embeddings: list = field(default_factory=list)
    sumsq: float = 0.0
    samples: int = 0
    reported: int = 0  # segments at the last progress event


class LiveEnrolments:
    """The enrolment requests of one daemon; ``publish`` sends an event to every client, ``written`` asks
    the daemon to reload the overlay."""

    def __init__(
        self, directory: str | Path, meta, model_labels: tuple[str, ...], publish: Callable[[Event], None], written: Callable[[], None],
        no_data_timeout: float = 0.0,
    ) -> None:
        self.directory = Path(directory)
        self.no_data_timeout = no_data_timeout  # audio.no_data_timeout: slack of each job's deadline
        self.context_samples = meta.feature_config.context_samples
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
            self._job = _Job(label, seconds, want, time.monotonic() + 2.0 * seconds + self.no_data_timeout)
        log.info("enrolling %r from the live stream: %.1f s", label, seconds)
        return Enrolling(label, 0.0, seconds)

    def request_forget(self, label: str) -> Event | None:
        with self._lock:
            if self._busy:
                return Error(ENROL_REFUSED, "an enrolment or forget is in progress; try again when it has finished")
            self._busy = True
        self._start(self._forget, label)
        return None

    def expire(self, now: float) -> None:
        """End a job that has not heard its audio by its deadline (the daemon's main loop calls this)."""
        job = self._job
        if job is not None and now > job.deadline:
            heard = round(len(job.embeddings) * self.segment_s, 1)
            self.cancel(f"enrolment timed out, {heard} of {job.seconds} s heard; is the audio source working? Nothing was remembered", job)

    def cancel(self, reason: str, job: _Job | None = None) -> None:
        """End the collecting job (``job``, or whichever collects) with ``enrol_refused``: "<label>: ``reason``".
        A job already handed to its writer is left to finish."""
        with self._lock:
            if self._job is None or (job is not None and self._job is not job):
                return
            label, self._job, self._busy = self._job.label, None, False
        log.warning("%s: %s", label, reason)
        self.publish(Error(ENROL_REFUSED, f"{label}: {reason}"))

    # --- the worker thread: cheap ---
    def on_block(self, block: np.ndarray, position: int, run_start: int = 0) -> None:
        """A block of mono model-rate samples that starts at stream sample ``position``, before the
        pipeline gets it; ``run_start``: Pipeline.run_start."""
        job = self._job
        if job is not None:
            if job.start is None:
                job.start, job.run_start = position, run_start  # the job's audio starts here
            job.sumsq += float(np.dot(block, block))
            job.samples += block.shape[0]

    def on_segment(self, start: int, embedding: np.ndarray | None) -> None:
        """The embedding of the segment that starts at stream sample ``start``."""
        job = self._job
        if job is None or embedding is None or job.start is None or max(start - self.context_samples, job.run_start) < job.start:
            return  # no job, or audio heard before the request (a left context of zeros before the run is none)
        job.embeddings.append(np.array(embedding, dtype=np.float32))
        n = len(job.embeddings)
        if n >= job.want:
            with self._lock:
                if self._job is not job:
                    return  # cancelled meanwhile
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
