"""The detector on real public EMG recordings (read in place, never copied into the repo).

Data: ``../shared/data`` beside the checkout (``/work/shared/data`` for ``/work/main``); see its
README for sources and licences. Every test skips with a reason when the folder is absent
(e.g. a fresh clone in CI). The checks are the ones ``crampsense evaluate --real`` prints
(:mod:`crampsense.cli.evaluate_corpus`):

- ``lowerlimb_semg_elderly`` (Silva et al., Biomed Signal Process Control 2024, CC0): 10-s
  sustained isometric shin (tibialis anterior, raw EMG) and calf (gastrocnemius, an envelope at
  source: tested as white noise x envelope) holds, padded with 60 s of floor at 1/5 of the
  hold's level. Each must be one sustained activation whose onset lies within 0.5 s of the
  load-cell force onset (or of the file start when the file begins mid-rise).
- ``physionet_emgdb`` (needle, ODC-By 1.0) and ``biosppy_examples/emg_1.txt`` (surface,
  BSD-3): short bursts, which must never become cramps.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from crampsense.cli.evaluate_corpus import (
    ONSET_TOLERANCE_S,
    burst_checks,
    find_data_dir,
    hold_checks,
)
from crampsense.detection import LegSignals, detect_cramps

DATA = find_data_dir()
pytestmark = pytest.mark.skipif(
    DATA is None or not (DATA / "lowerlimb_semg_elderly").is_dir(),
    reason="real recordings are absent (expected at <repo>/../shared/data)")
#: Holds whose tibialis EMG is already active at about half the hold level for 0.9-1.3 s
#: before the load-cell force rises (pre-activation in the recording itself): the activation
#: onset is correctly early, but not within 0.5 s of the force onset. Kept visible, strict.
EMG_BEFORE_FORCE = {("subject_05", "shin TA"), ("subject_09", "shin TA")}


@pytest.fixture(scope="module")
def holds() -> list[dict[str, Any]]:
    assert DATA is not None
    return hold_checks(DATA)


def test_every_hold_is_one_sustained_activation(holds: list[dict[str, Any]]) -> None:
    assert len(holds) == 20  # 10 subjects x (shin, calf)
    bad = [(h["subject"], h["muscle"], h["spans"], h["covered_s"]) for h in holds
           if not h["sustained"]]
    assert not bad


def test_activation_onset_is_within_half_a_second_of_the_force_onset(
        holds: list[dict[str, Any]]) -> None:
    with_force = [h for h in holds if h["reference"] == "force"]
    assert len(with_force) >= 5  # the files that start at rest
    late = {(h["subject"], h["muscle"]): round(h["onset_error_s"], 2) for h in holds
            if abs(h["onset_error_s"]) > ONSET_TOLERANCE_S}
    # only the two holds with EMG before force miss it; they are early, never late
    assert set(late) == EMG_BEFORE_FORCE, late
    assert all(err < 0 for err in late.values())


def test_a_hold_through_the_detector_is_one_candidate_whatever_the_gain(
        holds: list[dict[str, Any]]) -> None:
    # 10 s of sustained hold passes the 8-s minimum and is weighed as one candidate; a step
    # without a ramp in a file without accelerometer is weighed as voluntary-like, so at most
    # one event (the first detector reported every hold: EMG alone cannot tell intent).
    assert all(h["detector_events"] <= 1 for h in holds)
    assert DATA is not None
    with np.load(DATA / "lowerlimb_semg_elderly" / "subject_07.npz") as d:
        x = d["emg_ta"][:, 2].astype(np.float64)
    rng = np.random.default_rng(7)
    pad = rng.standard_normal(120_000) * float(np.std(x)) / 5.0
    sig = np.concatenate([pad, x - x.mean(), pad]).astype(np.float32)[None, :]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    a = detect_cramps([LegSignals("left", sig, 2000.0)], start=start)
    b = detect_cramps([LegSignals("left", sig * 0.25, 2000.0)], start=start)
    assert a.candidates.height == b.candidates.height == 1
    assert b.candidates["onset_s"][0] == pytest.approx(a.candidates["onset_s"][0], abs=0.2)
    assert b.candidates["probability"][0] == pytest.approx(a.candidates["probability"][0],
                                                           abs=1e-6)
    assert a.events.height == b.events.height


@pytest.mark.skipif(DATA is None or not (DATA / "physionet_emgdb").is_dir(),
                    reason="../shared/data/physionet_emgdb is absent")
def test_short_needle_and_surface_bursts_are_never_cramps() -> None:
    assert DATA is not None
    rows = {r["recording"]: r for r in burst_checks(DATA)}
    assert len(rows) == 4
    assert all(r["cramps"] == 0 for r in rows.values()), rows
    # ...though the 7-s needle bursts over the recording's own floor are seen as activity
    assert rows["emgdb neuropathy (needle)"]["bursts_seen"] >= 2
