"""The daemon: audio source -> ring buffer -> worker (pipeline) -> event server, with its life cycle.

Threads:

* the source's producer (PortAudio's callback thread, or a file/stdin reader) writes into the ring;
* one worker thread owns the source and the pipeline: it opens the source (retrying with back-off
  while a microphone is missing), takes every block from the ring, mixes and resamples it, runs the
  pipeline and publishes ``segment`` and ``scene`` events; it notices a dead stream or silence from
  the device (no data for ``audio.no_data_timeout``) and reports ``error`` source_lost / source_back;
  it sends systemd's WATCHDOG=1;
* the event server's loop thread (edge_asc.protocol.server) serves the clients;
* with MQTT or metrics configured (daemon/outlets.py): the MQTT publisher and paho's network threads, the
  metrics HTTP server; the worker only hands events over to them and never waits for their I/O;
* the main thread waits for SIGTERM/SIGINT (or the end of a file), sends ``status`` events and logs a
  warning when the overflow count grows (at most once per OVERFLOW_WARN_INTERVAL_S). The signal
  handler only notes the signal; the main thread sees it within SIGNAL_POLL_S. It also watches the
  enrolled places (daemon/reload.py): on SIGHUP, or when their manifest changed on disk (``edge-asc
  enroll`` / ``forget``), it loads them and hands the new index to the worker, which swaps it in between
  two segments (``_swap``): no segment is lost or doubled and no query sees half of a change.

Stopping: the source is closed, the audio already in the ring is processed, the last events are
handed to the clients, the socket file is removed, and ``run`` returns 0. A file or stdin source
that ends stops the daemon the same way.
"""

from __future__ import annotations

import logging
import signal
import threading
import time

from edge_asc.daemon.config import DaemonConfig
from edge_asc.runtime.decision import DecisionPolicy
from edge_asc.daemon.events import scene_event, segment_event
from edge_asc.runtime.pipeline import Conditioner, Pipeline
from edge_asc.protocol.messages import ENROL_REFUSED, PROTOCOL_VERSION, SOURCE_BACK, SOURCE_LOST, Enroll, Error, Forget, Hello, Request, Set, Status
from edge_asc.protocol.records import ProtocolError
from edge_asc.daemon.live_enrol import LiveEnrolments
from edge_asc.daemon.metrics import Probes
from edge_asc.daemon.outlets import Outlets
from edge_asc.daemon.reload import OverlayWatcher
from edge_asc.daemon.sdnotify import Notifier
from edge_asc.protocol.addresses import default_socket_path
from edge_asc.protocol.limits import read_token_file
from edge_asc.protocol.server import EventServer
from edge_asc.daemon.sources import Source, SourceError

log = logging.getLogger(__name__)

WORKER_WAIT_S = 0.1  # longest sleep of the worker between two looks at the ring / the source
STOP_TIMEOUT_S = 10.0  # how long stop() waits for the worker to process what is in the ring
SIGNAL_POLL_S = 0.2  # longest wait of the main thread between two looks at the signal flag
OVERFLOW_WARN_INTERVAL_S = 30.0  # at most one warning about new overflows per this long


class Daemon:
    """Wires a source, the pipeline and the event server; ``run()`` blocks until stopped."""

    def __init__(self, config: DaemonConfig, encoder, index, source: Source, notifier: Notifier | None = None) -> None:
        self.config = config
        self.meta = encoder.meta
        self.labels = tuple(index.labels)  # the model's, then enrolled places (and unknown): runtime.search
        self.rate = encoder.meta.feature_config.sample_rate
        self.searcher = index if hasattr(index, "origin") else None  # items' origins, for the scene evidence
        self.watcher = OverlayWatcher(config.enrolled_path(), encoder.meta) if self.searcher is not None else None
        self._swap_lock = threading.Lock()
        self._next_index = None  # a reloaded Searcher the worker swaps in before its next segment
        self._reload_asked = False  # SIGHUP, or an enrolment over the socket was written
        dc = config.decision
        self.policy = DecisionPolicy(len(self.labels), dc.k, dc.mode, dc.tie_break, dc.k_max)
        self.pipeline = Pipeline(encoder, index, self.policy, dc.neighbours, silence_dbfs=dc.silence_dbfs)
        self.source = source
        self.notifier = notifier or Notifier()
        source.keepalive = self.notifier.watchdog  # a device call waiting on a frozen sound server still pings
        sc = config.server
        self.socket_path = sc.socket if sc.socket is not None else default_socket_path()
        self.server = EventServer(
            [str(self.socket_path)] + ([f"tcp://{sc.tcp}"] if sc.tcp else []),
            hello=self._hello,
            on_request=self._on_request,
            queue_size=sc.queue_size,
            slow_policy=sc.slow_policy,
            max_clients=sc.max_clients,
            request_rate=sc.request_rate,
            tcp_read_only=True,  # TCP reaches past the Unix socket's permissions: changes only with the token
            tcp_token=read_token_file(sc.tcp_token_file) if sc.tcp_token_file is not None else None,
        )
        self.enrolments = None if self.watcher is None else LiveEnrolments(
            self.watcher.directory, encoder.meta, tuple(self.meta.labels), self.server.publish, self._ask_reload,
            config.audio.no_data_timeout,
        )
        probes = Probes(self.status, lambda: self.server.stats().clients, lambda: not self.source_lost, self._enrolled_items)
        self.outlets = Outlets(config, encoder.meta.version, self._on_request, probes)  # MQTT and metrics, when configured
        self._stop = threading.Event()  # the daemon should stop (signal, end of file, fatal error)
        self._worker_stop = threading.Event()  # the worker should drain the ring and end
        self._client_seen = threading.Event()
        self._worker: threading.Thread | None = None
        self._signal: int | None = None  # set by the signal handler, acted on by the main loop
        self._overflows_warned = 0  # the overflow count at the last warning
        self._overflows_warned_at = float("-inf")
        self._started = 0.0
        self.exit_code = 0
        self.worker_stuck = False  # the worker outlived STOP_TIMEOUT_S: the entry point exits without waiting for it
        self.source_lost = False

    # --- the server's callbacks (server thread) ---------------------------------------------------
    def _hello(self) -> Hello:
        self._client_seen.set()
        return Hello(
            protocol=PROTOCOL_VERSION,
            labels=self.labels,
            k=self.policy.k,
            mode=self.policy.mode,
            segment_seconds=self.meta.feature_config.segment_seconds,
            sample_rate=self.rate,
            model_sha256=self.meta.sha256,
            model_version=self.meta.version,
            enrolled=tuple(self.searcher.enrolled.labels) if self.searcher is not None else (),
            enrolled_only=bool(self.searcher is not None and self.searcher.enrolled_only),
            k_max=self.policy.k_max,
        )

    def _on_request(self, request: Request):
        if isinstance(request, Set):
            before = (self.policy.k, self.policy.mode, self.policy.k_max)
            try:
                self.policy.set(k=request.k, mode=request.mode, k_max=request.k_max)  # at once: no segment sees half of it
            except ValueError as exc:
                raise ProtocolError(str(exc)) from None
            if (self.policy.k, self.policy.mode, self.policy.k_max) != before:  # logged once per change, not per request
                log.info("decision policy set to k=%d, mode=%s, k_max=%d", self.policy.k, self.policy.mode, self.policy.k_max)
            return self.status()  # the new settings, to the client that asked
        if isinstance(request, (Enroll, Forget)):
            if not self.config.server.allow_enroll or self.enrolments is None:
                return Error(ENROL_REFUSED, f"{request.type} over the socket is off in this daemon: set server.allow_enroll: true in its config, or use edge-asc {request.type} on the device")
            if isinstance(request, Enroll):
                return self.enrolments.request_enrol(request.label, request.seconds)
            return self.enrolments.request_forget(request.label)
        raise ProtocolError(f"the daemon does not handle {request.type!r} requests")

    # --- events -----------------------------------------------------------------------------------
    def status(self) -> Status:
        stats = self.server.stats()
        return Status(
            uptime_s=time.monotonic() - self._started,
            segments=self.pipeline.segments_done,
            overflows=self.source.overflows,
            timings_ms=self.pipeline.times.summary_ms(),
            subscribers=stats.subscribers,
            drops=stats.drops,
            source=self.source.description + (" (lost)" if self.source_lost else ""),
            k=self.policy.k,
            mode=self.policy.mode,
            mqtt_connected=self.outlets.mqtt_connected,
            k_max=self.policy.k_max,
        )

    def _enrolled_items(self) -> int:
        return len(self.searcher.enrolled) if self.searcher is not None else 0

    def publish(self, event) -> None:
        """An event to the socket's clients and to the other outlets (MQTT, metrics); never blocks."""
        self.server.publish(event)
        self.outlets.publish(event)

    def _error(self, code: str, message: str) -> None:
        (log.warning if code == SOURCE_LOST else log.info)("%s", message)
        self.publish(Error(code, message))
        if code == SOURCE_LOST and self.enrolments is not None:
            self.enrolments.cancel("the audio source was lost during the enrolment; nothing was remembered")

    # --- life cycle (main thread) -----------------------------------------------------------------
    def run(self) -> int:
        """Serve until SIGTERM/SIGINT or the end of a finite source; returns the exit code."""
        self._started = time.monotonic()
        previous = {}
        if threading.current_thread() is threading.main_thread():  # signals can only be handled there
            previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
            previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, self._on_hangup)
        try:
            self.server.start()
            try:
                self.outlets.start()
                self.notifier.ready(f"serving on {self.socket_path}")  # before the worker's first WATCHDOG=1
                self._worker = threading.Thread(target=self._work, name="edge-asc-worker", daemon=True)
                self._worker.start()
                log.info("ready: %d labels, k=%d, mode=%s, source %s%s", len(self.labels), self.policy.k, self.policy.mode, self.source.description, (", " + self.outlets.describe()) if self.outlets.describe() else "")
                self._main_loop()
                self.notifier.stopping()
                self._shutdown_worker()
                if self.enrolments is not None:
                    self.enrolments.join(STOP_TIMEOUT_S)
            finally:
                self.outlets.stop()
                self.server.stop()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.notifier.close()
        log.info("stopped after %d segments", self.pipeline.segments_done)
        return self.exit_code

    def _main_loop(self) -> None:
        """Status events every status_interval, overflow warnings, signals; returns when told to stop."""
        interval = self.config.status_interval
        next_status = time.monotonic() + interval
        while True:
            if self._signal is not None:
                log.info("%s: stopping", signal.Signals(self._signal).name)
                self.stop()
            if self._stop.wait(min(SIGNAL_POLL_S, max(0.0, next_status - time.monotonic()))):
                return
            self._check_enrolled()
            if self.enrolments is not None:
                self.enrolments.expire(time.monotonic())
            self._warn_overflows()
            now = time.monotonic()
            if now >= next_status:
                self.publish(self.status())
                next_status = max(next_status, now) + interval  # after a stall: one status, no burst

    def _warn_overflows(self) -> None:
        """A warning (for the journal) when the overflow count grew, at most once per OVERFLOW_WARN_INTERVAL_S."""
        total = self.source.overflows
        now = time.monotonic()
        if total > self._overflows_warned and now - self._overflows_warned_at >= OVERFLOW_WARN_INTERVAL_S:
            log.warning(
                "%d audio overflows since the last report (%d in all): audio was dropped before the worker saw it",
                total - self._overflows_warned, total,
            )
            self._overflows_warned, self._overflows_warned_at = total, now

    def _check_enrolled(self) -> None:
        """After SIGHUP or a change of the enrolled places on disk: load them (here, not on the worker)
        and hand the new index to the worker."""
        if self.watcher is None or not (self._reload_asked or self.watcher.changed()):
            return
        self._reload_asked = False
        with self._swap_lock:
            current = self._next_index or self.searcher
        found = self.watcher.load(current, self.pipeline.neighbours)
        if isinstance(found, str):
            log.warning("%s", found)
            return
        with self._swap_lock:
            self._next_index = found
        log.info("enrolled places reloaded from %s: %s", self.watcher.directory, ", ".join(found.enrolled.labels) or "none")

    def _on_hangup(self, signum: int, frame) -> None:
        self._reload_asked = True

    def _ask_reload(self) -> None:
        self._reload_asked = True

    def _on_signal(self, signum: int, frame) -> None:
        """Only notes the signal: no lock, no logging here (the main loop acts on it)."""
        self._signal = signum

    def stop(self, exit_code: int | None = None) -> None:
        if exit_code is not None and not self._stop.is_set():
            self.exit_code = exit_code
        self._stop.set()

    def _shutdown_worker(self) -> None:
        """Close the source, let the worker process what the ring holds, wait for it."""
        self._worker_stop.set()
        if self._worker is not None:
            self._worker.join(STOP_TIMEOUT_S)
            if self._worker.is_alive():
                log.error("the worker did not finish within %.0f s", STOP_TIMEOUT_S)
                self.exit_code, self.worker_stuck = self.exit_code or 1, True

    # --- the worker thread ------------------------------------------------------------------------
    def _work(self) -> None:
        try:
            self._work_loop()
        except Exception:
            log.exception("the worker failed")
            self.stop(1)
        finally:
            self.source.close()

    def _sleep(self, seconds: float) -> bool:
        """Wait (pinging the watchdog); True if the worker should stop."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self.notifier.watchdog()
            if self._worker_stop.wait(min(left, 1.0)):
                return True
        return self._worker_stop.is_set()

    def _open_source(self) -> bool:
        """Open the source, retrying with back-off while it fails; False if told to stop meanwhile."""
        ac = self.config.audio
        delay = ac.retry_min
        while not self._worker_stop.is_set():
            self.notifier.watchdog()
            try:
                self.source.open()
                return True
            except SourceError as exc:
                if self.source.finite:
                    log.error("%s", exc)
                    self.stop(1)
                    return False
                if not self.source_lost:
                    self.source_lost = True
                    self._error(SOURCE_LOST, f"audio source unavailable: {exc}; retrying")
                else:
                    log.info("audio source still unavailable (%s); next try in %.1f s", exc, delay)
            if self._sleep(delay):
                return False
            delay = min(delay * 2.0, ac.retry_max)
        return False

    def _work_loop(self) -> None:
        ac = self.config.audio
        if self.config.server.wait_for_client:
            log.info("waiting for the first client before starting %s", self.source.description)
            while not self._client_seen.wait(WORKER_WAIT_S):
                self.notifier.watchdog()
                if self._worker_stop.is_set():
                    return
        while not self._worker_stop.is_set():
            if not self._open_source():
                return
            if self.source_lost:
                self.source_lost = False
                self.pipeline.restart()
                self._error(SOURCE_BACK, f"audio source back: {self.source.description}")
            reason = self._stream(Conditioner(self.source.rate, self.rate, self.source.description))
            if reason is None:
                return  # told to stop, or a finite source ended
            self.source_lost = True
            retrying = "" if self.source.finite else "; retrying"  # a file or stdin is not reopened
            self._error(SOURCE_LOST, f"audio source lost: {self.source.description}: {reason}{retrying}")
            self.source.close()  # after the loss is published: a frozen device may take DEVICE_CALL_TIMEOUT_S here
            if self.source.finite:
                self.stop(1)
                return
            if self._sleep(ac.retry_min):
                return

    def _stream(self, conditioner: Conditioner) -> str | None:
        """Process the open source until it fails (returns why) or ends / the daemon stops (None)."""
        source, ring = self.source, self.source.ring
        timeout = self.config.audio.no_data_timeout
        while True:
            self.notifier.watchdog()
            stopping = self._worker_stop.is_set()
            if stopping:
                source.close()  # no more writes; what is in the ring is still processed below
            ring.wait(WORKER_WAIT_S)
            finished = source.finished  # read before draining: every block it wrote is in the ring by now
            while (item := ring.read()) is not None:
                block, arrived = item
                self._process(conditioner.process(block), arrived)
                self.notifier.watchdog()  # rate-limited inside: a long drain still feeds the watchdog
                if not stopping and self._worker_stop.is_set():
                    break  # a fast reader refills the ring as it drains: close the source first (above)
            if self._worker_stop.is_set() and not stopping:
                continue  # told to stop while draining: the next pass closes the source and drains the rest
            if stopping:
                return None
            if finished:
                self._process(conditioner.flush(), time.monotonic())  # the resampler's tail
                log.info("%s ended", source.description)
                self.stop(0)
                return None
            reason = source.problem()
            if reason is None and not source.finite:
                silent = time.monotonic() - max(ring.last_write, source.opened_at)
                if silent > timeout:
                    reason = f"no audio for {silent:.1f} s"
            if reason is not None:
                return reason

    def _swap(self) -> None:
        """Search the reloaded index from the next segment on (worker thread, between two segments)."""
        with self._swap_lock:
            index, self._next_index = self._next_index, None
        if index is not None and self.pipeline.swap_index(index):  # never raises: a refused index is logged and not used
            self.searcher, self.labels = index, tuple(index.labels)

    def _process(self, block, arrived: float) -> None:
        """Mono model-rate samples -> segment and scene events."""
        if block.shape[0] == 0:
            return
        publish, outlets = self.publish, self.outlets
        if self._next_index is not None:
            self._swap()
        enrolments = self.enrolments
        if enrolments is not None:
            enrolments.on_block(block, self.pipeline.samples_in, self.pipeline.run_start)
        for seg, decision in self.pipeline.push(block, arrived):
            if enrolments is not None:
                enrolments.on_segment(seg.start, seg.embedding)
            outlets.on_segment(seg)
            if outlets.wants_segments or self.server.has_subscribers("segment"):
                publish(segment_event(seg, self.labels, self.rate))
            if decision is not None:
                publish(scene_event(decision, self.labels, self.rate))
