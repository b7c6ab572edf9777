"""The ring buffer between a source and the worker: order, times, drops, waiting."""

from __future__ import annotations

import threading

import numpy as np

from edge_asc.daemon.ring import RingBuffer

# --- ring buffer ------------------------------------------------------------------------------------


def test_ring_returns_blocks_in_order_with_times_across_the_wrap():
    ring = RingBuffer(capacity=10, channels=2)
    rng = np.random.default_rng(0)
    sent = []
    for i in range(7):  # 7 blocks of 3 frames through a 10-frame ring: wraps several times
        block = rng.standard_normal((3, 2)).astype(np.float32)
        assert ring.write(block, now=100.0 + i)
        got, t = ring.read()
        assert t == 100.0 + i
        np.testing.assert_array_equal(got, block)
        sent.append(block)
    assert ring.read() is None
    s = ring.stats()
    assert (s.written_frames, s.read_frames, s.overflows, s.fill_frames) == (21, 21, 0, 0)


def test_ring_drops_and_counts_a_write_that_would_overwrite_unread_audio():
    ring = RingBuffer(capacity=8, channels=1)
    assert ring.write(np.arange(5, dtype=np.float32))
    assert not ring.write(np.arange(4, dtype=np.float32))  # only 3 frames free
    assert ring.overflows == 1 and ring.dropped_frames == 4
    assert ring.write(np.full(3, 7.0, dtype=np.float32))  # fits exactly
    first, _ = ring.read()
    np.testing.assert_array_equal(first[:, 0], np.arange(5))  # the unread audio was not overwritten
    second, _ = ring.read()
    np.testing.assert_array_equal(second[:, 0], [7.0, 7.0, 7.0])
    assert ring.stats().dropped_frames == 4


def test_ring_write_wait_waits_for_the_reader_and_wakes_it():
    ring = RingBuffer(capacity=4, channels=1)
    assert ring.write(np.ones(4, dtype=np.float32))
    done = threading.Event()

    def writer():
        ring.write_wait(np.full(4, 2.0, dtype=np.float32))  # must wait: the ring is full
        done.set()

    t = threading.Thread(target=writer)
    t.start()
    assert not done.wait(0.2)
    assert ring.wait(0.1)
    np.testing.assert_array_equal(ring.read()[0][:, 0], np.ones(4))
    assert done.wait(2.0)
    assert ring.wait(1.0)
    np.testing.assert_array_equal(ring.read()[0][:, 0], np.full(4, 2.0))
    t.join()
    ring.close()
    assert not ring.write_wait(np.ones(1, dtype=np.float32))  # closed: returns at once
    assert ring.overflows == 0


def test_ring_records_suffice_for_a_full_ring_of_small_blocks():
    ring = RingBuffer(capacity=200_000, channels=1)  # more 32-frame blocks than the old 4096 records
    block = np.ones(32, dtype=np.float32)
    assert all(ring.write(block) for _ in range(200_000 // 32))
    assert ring.overflows == 0 and ring.stats().fill_frames == 200_000 // 32 * 32
    assert not ring.write(block) and ring.overflows == 1  # the frames are what runs out
    assert ring.wait(0.0) and ring._wake.is_set()  # a write left the consumer woken
