"""Median filters of the HPSS features: the comparator networks are exact; other kernels sort."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from edge_asc.dsp.features import FeatureConfig, FeatureExtractor
from edge_asc.dsp.median import MEDIAN_NETWORKS, median_of, median_plan


# --- median networks -----------------------------------------------------------------------------------


@pytest.mark.parametrize("k", sorted(MEDIAN_NETWORKS))
def test_median_networks_are_exact(k):
    """0/1 principle: a comparator network that selects the median of every 0/1 input does so for any input."""
    bits = np.array(list(itertools.product([0.0, 1.0], repeat=k)))
    plan = median_plan(k)
    np.testing.assert_array_equal(median_of([bits[:, c] for c in range(k)], plan), np.median(bits, axis=1))
    values = np.random.default_rng(k).random((1000, k))
    np.testing.assert_array_equal(median_of([values[:, c] for c in range(k)], plan), np.median(values, axis=1))


def test_kernels_without_a_network_fall_back_to_sorting():
    values = np.random.default_rng(0).random((500, 8))
    assert median_plan(8) is None
    np.testing.assert_array_equal(median_of([values[:, c] for c in range(8)], None), np.median(values, axis=1))
    odd = FeatureExtractor(FeatureConfig(harmonic_kernel=5, percussive_kernel=5))  # sort path, still causal
    noise = (np.random.default_rng(0).standard_normal(16000) * 0.1).astype(np.float32)  # 1 s
    assert odd.signal_features(noise).shape == (3, 20, 52)
