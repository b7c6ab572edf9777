"""The microphone source (sounddevice / PortAudio) and the input-device list.

The stream's callback only copies into the ring (RingBuffer.write) and counts PortAudio's input
overflow flags. sounddevice is imported when a device is listed or opened, so the rest of the daemon
loads without PortAudio.

A frozen sound server (PulseAudio stopped with SIGSTOP, a wedged driver) makes PortAudio's open, abort
and close block for as long as it stays frozen. Those calls therefore run on a thread of their own
(``_device_call``) and the worker waits at most DEVICE_CALL_TIMEOUT_S: it reports the loss, keeps
feeding the watchdog and retries; while an abandoned call is still blocked, no other PortAudio call is
made (``open`` fails at once, saying so), and a stream that such a call opens late is closed by it.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import numpy as np

from edge_asc.daemon.ring import RingBuffer
from edge_asc.dsp.audio_io import rate_problem
from edge_asc.daemon.sources import Source, SourceError

log = logging.getLogger(__name__)

DEVICE_CALL_TIMEOUT_S = 3.0  # longest wait for PortAudio to open or close a stream (a healthy one takes ms)
KEEPALIVE_S = 0.25  # while waiting for a device call, the source's keepalive (the watchdog) is called this often


@dataclass(frozen=True)
class InputDevice:
    index: int
    name: str
    channels: int
    default_rate: float
    hostapi: str
    is_default: bool


def _sd():
    import sounddevice

    return sounddevice


def _reinitialize_portaudio(sd) -> None:
    """Terminate and initialise PortAudio again, so that it enumerates the devices anew.

    PortAudio enumerates devices once, at initialisation: a device that came back (or a sound server that
    restarted) is only seen after re-initialising. Safe here: no stream of ours is open. PortAudio is only
    terminated while sounddevice counts it initialised (its private ``_initialized``; a failed
    initialisation leaves it at 0), and initialising is always tried, so one failure does not lock the
    microphone out: the next open tries again. Raises SourceError when PortAudio cannot be initialised.
    """
    if getattr(sd, "_initialized", 1) > 0:  # a sounddevice without the counter: assume initialised
        try:
            sd._terminate()
        except sd.PortAudioError as exc:
            log.warning("re-initialising PortAudio: terminating it failed (%s); initialising anyway", exc)
    try:
        sd._initialize()
    except sd.PortAudioError as exc:
        raise SourceError(f"cannot initialise PortAudio to look for input devices: {exc}") from exc


def list_input_devices(rescan: bool = False) -> list[InputDevice]:
    """The input-capable devices PortAudio sees (``rescan`` re-initialises PortAudio to see changes)."""
    sd = _sd()
    if rescan:
        _reinitialize_portaudio(sd)
    try:
        default_in = int(sd.query_devices(kind="input")["index"])  # sounddevice's (or PortAudio's) default input
    except (sd.PortAudioError, ValueError):
        default_in = -1  # no default input device
    apis = [a["name"] for a in sd.query_hostapis()]
    out = []
    for d in sd.query_devices():
        if d["max_input_channels"] > 0:
            out.append(
                InputDevice(
                    index=int(d["index"]),
                    name=str(d["name"]),
                    channels=int(d["max_input_channels"]),
                    default_rate=float(d["default_samplerate"]),
                    hostapi=apis[d["hostapi"]] if d["hostapi"] < len(apis) else str(d["hostapi"]),
                    is_default=int(d["index"]) == default_in,
                )
            )
    return out


def find_input_device(devices: list[InputDevice], spec: str | None) -> InputDevice:
    """The device named by ``spec``: None (the default input), an index, or a case-insensitive name substring."""
    names = "; ".join(f"{d.index}: {d.name}" for d in devices) or "none"
    if not devices:
        raise SourceError("no audio input device found (edge-asc devices lists them)")
    if spec is None:
        for d in devices:
            if d.is_default:
                return d
        return devices[0]
    if spec.strip().isdigit():
        wanted = int(spec)
        for d in devices:
            if d.index == wanted:
                return d
        raise SourceError(f"no input device with index {wanted}; input devices: {names}")
    exact = [d for d in devices if d.name.lower() == spec.lower()]
    if exact:
        return exact[0]
    matches = [d for d in devices if spec.lower() in d.name.lower()]
    if not matches:
        raise SourceError(f"no input device matches {spec!r}; input devices: {names}")
    if len(matches) > 1:
        raise SourceError(
            f"{len(matches)} input devices match {spec!r} ({'; '.join(f'{d.index}: {d.name}' for d in matches)}); "
            "give its index or a longer part of its name"
        )
    return matches[0]


class MicSource(Source):
    """A sounddevice InputStream at a rate the device supports (the model's if it can), float32."""

    kind = "mic"

    def __init__(
        self,
        device: str | None,
        model_rate: int,
        samplerate: int | None = None,
        channels: int = 1,
        blocksize: int = 512,
        latency: str = "low",
        ring_seconds: float = 4.0,
    ) -> None:
        super().__init__(ring_seconds)
        self.device_spec = device
        self.model_rate = model_rate
        self.requested_rate = samplerate
        self.requested_channels = channels
        self.blocksize = blocksize
        self.latency = latency
        self.device: InputDevice | None = None
        self._stream = None
        self._opens = 0
        self._stuck: threading.Thread | None = None  # a device call that did not return in time
        self._stuck_since = 0.0

    @property
    def stuck(self) -> bool:
        """A PortAudio call of ours is still blocked (the sound server is frozen)."""
        return self._stuck is not None and self._stuck.is_alive()

    def _device_call(self, fn, what: str):
        """``fn()`` on its own thread, waited for at most DEVICE_CALL_TIMEOUT_S: its result, or its
        exception, or SourceError when it did not return in time (the call is abandoned, still running)."""
        if self.stuck:
            raise SourceError(f"the audio device has not answered for {time.monotonic() - self._stuck_since:.0f} s "
                              f"(sound server frozen?); not {what} until it does")
        box: dict = {}
        done, abandoned = threading.Event(), threading.Event()

        def call() -> None:
            try:
                box["result"] = fn(abandoned)
            except BaseException as exc:  # handed to the waiting caller
                box["error"] = exc
            finally:
                done.set()

        thread = threading.Thread(target=call, name=f"edge-asc-mic-{what.split()[0]}", daemon=True)
        thread.start()
        deadline = time.monotonic() + DEVICE_CALL_TIMEOUT_S
        while not done.wait(min(KEEPALIVE_S, max(0.0, deadline - time.monotonic()))) and time.monotonic() < deadline:
            self.keepalive()  # the daemon's watchdog ping: waiting here is not hanging
        if not done.is_set():
            abandoned.set()
            self._stuck, self._stuck_since = thread, time.monotonic()
            raise SourceError(f"the audio device did not answer within {DEVICE_CALL_TIMEOUT_S:g} s while {what} (sound server frozen?)")
        if "error" in box:
            raise box["error"]
        return box.get("result")

    @property
    def description(self) -> str:
        name = self.device.name if self.device else (self.device_spec or "default input")
        return f"mic:{name}" + (f" @ {self.rate} Hz x{self.channels}" if self.rate else "")

    def _pick_rate(self, sd, device: InputDevice, channels: int) -> int:
        candidates = [self.requested_rate] if self.requested_rate else [self.model_rate, int(device.default_rate)]
        errors = []
        for rate in dict.fromkeys(candidates):
            if rate_problem(int(rate)):  # a device's odd default rate: never handed to the resampler
                errors.append(f"{rate} Hz: {rate_problem(int(rate))}")
                continue
            try:
                sd.check_input_settings(device=device.index, channels=channels, dtype="float32", samplerate=rate)
                return int(rate)
            except sd.PortAudioError as exc:
                errors.append(f"{rate} Hz: {exc}")
        raise SourceError(f"input device {device.index} ({device.name}) takes none of the rates tried ({'; '.join(errors)})")

    def open(self) -> None:
        try:
            sd = _sd()
        except OSError as exc:  # sounddevice raises OSError when the PortAudio library is missing
            raise SourceError(f"cannot load PortAudio ({exc}); install it (apt install libportaudio2)") from exc
        self.close()
        try:
            self._stream = self._device_call(lambda done: self._open_stream(sd, done), "opening the input stream")
        finally:
            self._opens += 1
        self.opened_at = time.monotonic()
        log.info("capturing from %s", self.description)

    def _open_stream(self, sd, abandoned: threading.Event):
        """Find the device, open and start its stream (on the device-call thread); returns the stream.
        If the worker stopped waiting meanwhile (``abandoned``), the late stream is closed here."""
        stream = None
        try:
            devices = list_input_devices(rescan=self._opens > 0)
            device = find_input_device(devices, self.device_spec)
            if self.requested_channels > device.channels:
                raise SourceError(
                    f"input device {device.index} ({device.name}) has {device.channels} input channels, "
                    f"{self.requested_channels} asked for (audio.channels)"
                )
            self.channels = self.requested_channels
            self.rate = self._pick_rate(sd, device, self.channels)
            self.device = device
            ring = self._make_ring()
            stream = sd.InputStream(
                device=device.index,
                samplerate=self.rate,
                channels=self.channels,
                dtype="float32",
                blocksize=self.blocksize,
                latency=self.latency,
                callback=self._callback(ring),
            )
            stream.start()
        except sd.PortAudioError as exc:
            if stream is not None:
                _close_stream(stream)
            raise SourceError(f"cannot open input device {self.device_spec or 'default'}: {exc}") from exc
        if abandoned.is_set():  # abandoned meanwhile: nobody will use or close this stream
            _close_stream(stream)
        return stream

    def _callback(self, ring: RingBuffer):
        """The PortAudio callback: copy into the ring, count overflow flags. Nothing else."""

        def callback(indata: np.ndarray, frames: int, time_info, status) -> None:
            if status and status.input_overflow:
                self.input_overflows += 1
            ring.write(indata)

        return callback

    def problem(self) -> str | None:
        s = self._stream
        if s is None:
            return "not open"
        if not s.active:
            return "the input stream stopped (device gone or sound server lost)"
        return None

    def close(self) -> None:
        """Stop the stream (waiting at most DEVICE_CALL_TIMEOUT_S for PortAudio) and close the ring."""
        s, self._stream = self._stream, None
        if self.ring is not None:
            self.ring.close()
        if s is not None:
            try:
                self._device_call(lambda done: _close_stream(s), "closing the input stream")
            except SourceError as exc:
                log.warning("%s; the stream is abandoned", exc)


def _close_stream(stream) -> None:
    """Abort and close a stream; a stream whose device vanished may refuse either (logged, not raised)."""
    sd = _sd()
    for step in (stream.abort, stream.close):
        try:
            step()
        except sd.PortAudioError as exc:
            log.debug("%s of the input stream: %s", step.__name__, exc)
