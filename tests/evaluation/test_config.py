"""EvalConfig refuses settings it cannot run, naming them."""

from __future__ import annotations

import pytest

from edge_asc.evaluation.config import EvalConfig


@pytest.mark.parametrize(
    ("settings", "named"),
    [({"variants": ("audio", "bogus")}, "variants"), ({"neighbours": (1, 1)}, "neighbours"), ({"class_sizes": (1,)}, "class_sizes"),
     ({"leaky_test_fraction": 1.0}, "leaky_test_fraction"), ({"epochs": 0}, "epochs")],
)
def test_a_setting_that_cannot_run_is_refused_naming_it(settings, named):
    with pytest.raises(ValueError, match=named):
        EvalConfig(**settings)
