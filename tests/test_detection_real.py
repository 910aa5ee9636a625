"""The envelope/activation stage and the detector on real public EMG recordings.

Files are read from ``../shared/data`` beside the checkout (see its README; never copied into
this repository); every test skips cleanly when they are absent.

- ``lowerlimb_semg_elderly`` (Silva et al., Biomed Signal Process Control 2024, CC0): 10-s
  sustained isometric holds at 2000 Hz. A hold is shorter than a typical cramp, so the
  activation stage is tested with ``min_duration_s`` lowered, padded with 60 s of quiet
  synthetic floor on both sides.
- ``biosppy_examples/emg_1.txt`` (BioSPPy, BSD-3): 64 s at 1000 Hz of short voluntary bursts,
  which must not become cramps with default parameters.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from scipy import signal

from crampsense.detection import DetectionParams, LegSignals, detect_cramps, emg_activation

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
HOLDS = sorted((DATA / "lowerlimb_semg_elderly").glob("subject_*.npz"))
BURSTS = DATA / "biosppy_examples" / "emg_1.txt"
FS_HZ = 2000.0
PAD_S = 60.0
#: (array, column) of the muscle that holds: tibialis anterior (raw bipolar) during the
#: tibialis hold, gastrocnemius lateralis (rectified at source) during the calf hold.
HOLD_CHANNELS = (("emg_ta", 2), ("emg_lg", 3))


def _padded_hold(path: Path, array: str, column: int) -> np.ndarray:
    """The hold with 60 s of white floor (1/10 of the hold's in-band RMS) on each side."""
    with np.load(path) as data:
        x = data[array][:, column].astype(np.float64)
    x -= x.mean()
    sos = signal.butter(4, [20.0, 450.0], btype="bandpass", fs=FS_HZ, output="sos")
    rms = float(np.sqrt(np.mean(signal.sosfiltfilt(sos, x) ** 2)))
    rng = np.random.default_rng(column)
    pad_n = int(PAD_S * FS_HZ)
    # white noise keeps 430/1000 of its power in the 20-450 Hz band at 2000 Hz
    floor = rng.standard_normal(2 * pad_n) * (rms / 10.0) / np.sqrt(0.43)
    return np.concatenate([floor[:pad_n], x, floor[pad_n:]]).astype(np.float32)


@pytest.mark.skipif(not HOLDS, reason="../shared/data/lowerlimb_semg_elderly is absent")
@pytest.mark.parametrize("path", HOLDS, ids=lambda p: p.stem)
@pytest.mark.parametrize(("array", "column"), HOLD_CHANNELS)
def test_sustained_hold_is_one_activation(path: Path, array: str, column: int) -> None:
    x = _padded_hold(path, array, column)
    spans = emg_activation(x, FS_HZ, params=DetectionParams(min_duration_s=5.0))
    assert spans.height == 1, str(spans)
    span = spans.row(0, named=True)
    assert span["start_s"] == pytest.approx(PAD_S, abs=0.5)
    assert span["end_s"] == pytest.approx(PAD_S + 10.0, abs=0.5)
    assert span["mean_rel"] > 5.0


@pytest.mark.skipif(not HOLDS, reason="../shared/data/lowerlimb_semg_elderly is absent")
def test_hold_through_the_detector_is_one_event_whatever_the_gain() -> None:
    x = _padded_hold(HOLDS[0], "emg_ta", 2)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    res = detect_cramps([LegSignals("left", x[None, :], FS_HZ)], start=start)
    # 10 s of sustained hold passes the 8-s minimum: EMG alone cannot tell a voluntary hold
    # from a cramp, so it is one short event (a documented limit)
    assert res.events.height == 1
    ev = res.events.row(0, named=True)
    assert ev["onset_s"] == pytest.approx(PAD_S, abs=1.0)
    res2 = detect_cramps([LegSignals("left", x[None, :] * 0.25, FS_HZ)], start=start)
    assert res2.events["onset_s"].to_list() == pytest.approx(res.events["onset_s"].to_list(),
                                                             abs=0.2)


@pytest.mark.skipif(not BURSTS.exists(), reason="../shared/data/biosppy_examples is absent")
def test_short_voluntary_bursts_are_not_cramps() -> None:
    raw = np.loadtxt(BURSTS, comments="#")
    x = (raw[:, -1] if raw.ndim == 2 else raw).astype(np.float32)
    assert x.size > 60 * 1000
    spans = emg_activation(x, 1000.0, params=DetectionParams(min_duration_s=0.5))
    assert spans.height >= 1  # the bursts are seen as activity...
    res = detect_cramps([LegSignals("left", x[None, :], 1000.0)],
                        start=datetime(2026, 1, 1, tzinfo=UTC))
    assert res.events.height == 0  # ...but none is a cramp
