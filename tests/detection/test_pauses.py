"""Pauses inside one weak contraction are bridged; returns to rest, a raised tone and the
decay after a strong contraction are not (``rules._bridge_pauses``)."""

from __future__ import annotations

import numpy as np
import pytest

from crampsense.detection.emg import hysteresis_spans
from crampsense.detection.rules import PAUSE_BRIDGE_S, _bridge_pauses

HOP_S = 0.1


def _trace(*parts: tuple[float, float]) -> np.ndarray:
    """Piecewise-constant ratio trace from (level, seconds) parts with 10 % jitter."""
    rng = np.random.default_rng(3)
    x = np.concatenate([np.full(round(s / HOP_S), lvl) for lvl, s in parts])
    return x * rng.uniform(0.95, 1.05, x.size)


def _spans(ratio: np.ndarray) -> np.ndarray:
    spans = hysteresis_spans(ratio, on=2.4, off=2.0, merge_gap_n=30)
    return _bridge_pauses(ratio, spans, hop=HOP_S, level=1.4)


def test_a_weak_cramp_that_wanes_for_20_s_is_one_span() -> None:
    ratio = _trace((1.0, 120), (2.6, 40), (1.6, 20), (2.6, 40), (1.7, 15), (2.6, 30),
                   (1.0, 60))
    spans = _spans(ratio)
    assert spans.shape[0] == 1
    assert spans[0, 0] * HOP_S == pytest.approx(120, abs=1)
    assert spans[0, 1] * HOP_S == pytest.approx(265, abs=1)


@pytest.mark.parametrize("parts", [
    # the muscle goes back to rest between bursts
    ((1.0, 120), (2.6, 40), (1.05, 20), (2.6, 40), (1.0, 60)),
    # bursts on a raised tone: the tone between them is the level before the first burst
    ((1.0, 60), (1.8, 120), (2.8, 20), (1.8, 20), (2.8, 20), (1.8, 60)),
    # the decay and residual firing after a strong contraction, then a movement burst
    ((1.0, 120), (12.0, 40), (1.8, 20), (3.0, 10), (1.0, 60)),
    # a pause longer than PAUSE_BRIDGE_S
    ((1.0, 120), (2.6, 40), (1.7, PAUSE_BRIDGE_S + 10), (2.6, 40), (1.0, 60)),
])
def test_pauses_that_are_not_one_contraction_stay_apart(
        parts: tuple[tuple[float, float], ...]) -> None:
    spans = _spans(_trace(*parts))
    assert spans.shape[0] == 2


def test_a_gap_of_missing_data_is_not_bridged() -> None:
    ratio = _trace((1.0, 120), (2.6, 40), (1.6, 20), (2.6, 40), (1.0, 60))
    ratio[round(165 / HOP_S):round(175 / HOP_S)] = np.nan
    assert _spans(ratio).shape[0] == 2
