"""The microphone source's device handling: lookup by index or name, PortAudio rescans."""

from __future__ import annotations

import pytest

from edge_asc.daemon.mic import InputDevice, find_input_device
from edge_asc.daemon.sources import SourceError


def test_portaudio_rescan_initialises_again_after_a_failed_initialisation():
    """The real PortAudio: a failed initialisation leaves sounddevice's counter at 0 (as a terminate does);
    terminating again would raise paNotInitialized forever, so the rescan must only initialise."""
    import sounddevice as sd

    from edge_asc.daemon.mic import _reinitialize_portaudio

    _reinitialize_portaudio(sd)  # initialised: terminate + initialise
    assert sd._initialized == 1
    sd._terminate()  # the state a failed Pa_Initialize leaves behind
    assert sd._initialized == 0
    try:
        _reinitialize_portaudio(sd)  # must not terminate an uninitialised PortAudio
        assert sd._initialized == 1
        sd.query_devices()  # PortAudio answers again
    finally:
        if sd._initialized == 0:
            sd._initialize()


def test_input_device_lookup_by_index_and_name():
    devices = [
        InputDevice(0, "HDA Intel PCH: ALC3246 Analog (hw:0,0)", 2, 44100.0, "ALSA", False),
        InputDevice(3, "USB Audio Device: Mic (hw:1,0)", 1, 48000.0, "ALSA", False),
        InputDevice(5, "pulse", 32, 44100.0, "ALSA", False),
        InputDevice(6, "default", 32, 44100.0, "ALSA", True),
    ]
    assert find_input_device(devices, None).index == 6
    assert find_input_device(devices, "3").name.startswith("USB")
    assert find_input_device(devices, "usb").index == 3
    assert find_input_device(devices, "pulse").index == 5
    with pytest.raises(SourceError, match="no input device with index 4"):
        find_input_device(devices, "4")
    with pytest.raises(SourceError, match=r"2 input devices match 'a'.*give its index"):
        find_input_device(devices[:2], "a")
    with pytest.raises(SourceError, match="no input device matches 'bluetooth'; input devices: 0: HDA"):
        find_input_device(devices, "bluetooth")
    with pytest.raises(SourceError, match="no audio input device"):
        find_input_device([], None)
