"""The microphone source (sounddevice / PortAudio) and the input-device list.

The stream's callback only copies into the ring (RingBuffer.write) and counts PortAudio's input
overflow flags. sounddevice is imported when a device is listed or opened, so the rest of the daemon
loads without PortAudio.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from edge_asc.daemon.ring import RingBuffer
from edge_asc.dsp.audio_io import rate_problem
from edge_asc.daemon.sources import Source, SourceError

log = logging.getLogger(__name__)


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
            self._stream = sd.InputStream(
                device=device.index,
                samplerate=self.rate,
                channels=self.channels,
                dtype="float32",
                blocksize=self.blocksize,
                latency=self.latency,
                callback=self._callback(ring),
            )
            self._stream.start()
        except sd.PortAudioError as exc:
            self.close()
            raise SourceError(f"cannot open input device {self.device_spec or 'default'}: {exc}") from exc
        finally:
            self._opens += 1
        self.opened_at = time.monotonic()
        log.info("capturing from %s", self.description)

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
        s, self._stream = self._stream, None
        if s is not None:
            try:
                s.abort()
            except _sd().PortAudioError as exc:  # a stream whose device vanished may refuse to stop
                log.debug("aborting the input stream: %s", exc)
            try:
                s.close()
            except _sd().PortAudioError as exc:
                log.debug("closing the input stream: %s", exc)
        if self.ring is not None:
            self.ring.close()
