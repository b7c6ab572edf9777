"""A fixed length of audio from a live source (microphone, file, stdin), for ``edge-asc enroll --source``.

The source's blocks go through the same Conditioner as the daemon's (mono, the model's rate); ``progress``
is called with the seconds captured so far after each block.
"""

from __future__ import annotations

import logging
from typing import Callable

import numpy as np

from edge_asc.daemon.sources import Source, SourceError
from edge_asc.runtime.pipeline import Conditioner

log = logging.getLogger(__name__)

WAIT_S = 0.1  # longest wait for the next block
NO_DATA_TIMEOUT_S = 5.0  # a source that delivers nothing for this long has failed


def capture(source: Source, seconds: float, rate: int, progress: Callable[[float], None] | None = None) -> np.ndarray:
    """``seconds`` of mono float32 audio at ``rate`` from ``source`` (less if a file ends first); raises
    SourceError when the source cannot be opened or fails."""
    import time

    want = int(round(seconds * rate))
    parts: list[np.ndarray] = []
    have = 0
    source.open()
    try:
        conditioner = Conditioner(source.rate, rate, source.description)
        last = time.monotonic()
        while have < want:
            source.ring.wait(WAIT_S)
            finished = source.finished
            while have < want and (item := source.ring.read()) is not None:
                block = conditioner.process(item[0])
                parts.append(block)
                have += block.shape[0]
                last = time.monotonic()
                if progress is not None:
                    progress(min(have, want) / rate)
            if finished and source.ring.read() is None:
                break
            problem = source.problem()
            if problem is None and time.monotonic() - last > NO_DATA_TIMEOUT_S:
                problem = f"no audio for {NO_DATA_TIMEOUT_S:.0f} s"
            if problem is not None:
                raise SourceError(f"{source.description}: {problem}")
    finally:
        source.close()
    audio = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
    return audio[:want]
