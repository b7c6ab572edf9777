"""Counter-based random streams of training: every random choice is a pure function of (seed, what, counters).

A stream is ``np.random.default_rng([seed, STREAM, counter, ...])`` (a SeedSequence over the list), so epoch
e's augmentation, its mixing partners, its batches on rank r and its triplet mining can be drawn in any
order, in any process, and again after a resume, without saving a generator's state.
"""

from __future__ import annotations

import numpy as np

AUGMENT_STREAM = 1  # draw d of one scene: [seed, AUGMENT_STREAM, d, scene_key]
PARTNER_STREAM = 2  # mixing partners of draw d over the training scenes: [seed, PARTNER_STREAM, d]
BATCH_STREAM = 3  # batches of epoch e on rank r: [seed, BATCH_STREAM, e, r]
MINING_STREAM = 4  # triplet mining of epoch e on rank r (a torch.Generator seeded from it)
DROPOUT_STREAM = 5  # dropout of epoch e on rank r (torch's global generator, reseeded each epoch)


def stream_rng(seed: int, stream: int, *counters: int) -> np.random.Generator:
    """The numpy Generator of ``stream`` at ``counters`` (non-negative ints of any size)."""
    return np.random.default_rng([int(seed), int(stream), *(int(c) for c in counters)])


def stream_seed(seed: int, stream: int, *counters: int) -> int:
    """A 63-bit integer seed for other generators (torch.Generator.manual_seed) from the same counters."""
    state = np.random.SeedSequence([int(seed), int(stream), *(int(c) for c in counters)]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])
