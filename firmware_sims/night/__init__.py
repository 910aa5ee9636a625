"""Seeded synthetic nights of calf EMG and leg acceleration with ground truth.

A night is fully determined by its :class:`NightSpec` (above all ``seed``):
:func:`generate_night` draws a schedule of cramps and look-alikes and returns a
:class:`SyntheticNight` whose ``truth`` table lists them, and whose legs render samples on
demand, in any chunking, always the same numbers (:class:`SyntheticLeg` implements
:class:`firmware_sims.peripheral.SignalSource`).

Conventions
-----------
Time
    Seconds from ``spec.start``; EMG sample ``i`` is at ``i / emg_fs_hz``, accelerometer
    sample ``j`` at ``j / acc_fs_hz``. Reads past ``duration_s`` continue as quiet rest.
EMG (µV, shape ``(n_channels, n)``)
    Resting floor 2-4 µV RMS per channel with ±9 % slow drift. "Floor RMS" is the RMS of the
    resting signal after :func:`reference_bandpass_sos` (Butterworth, 20 Hz to
    ``min(450, 0.45·fs)``). Muscle activity is band-limited noise (25-250 Hz) whose in-band
    RMS is ``floor · level``; ``gain`` multiplies everything (not the accelerometer).
Accelerometer (milli-g, shape ``(3, n)``, gravity included)
    Axes of the sensor on the shank: **x** along the shank pointing to the knee, **y**
    lateral (away from the body's midline), **z** posterior → anterior (out of the shin).
    Lying on the back the shank is horizontal: ``x ≈ 0`` and ``z ≈ +1000`` (y and z share the
    1000 mg on the side); standing ``x ≈ +1000``. Rolling over rotates the reading about x.
    Noise ≈ 3 mg RMS, per-axis offsets up to ±15 mg.
Truth (``SyntheticNight.truth``)
    One row per event per leg, columns ``kind, leg, onset_s, offset_s, severity, peak_rel,
    woke, got_up, stretched``. A cramp's ``onset_s`` is the start of its ramp (the first
    instant its EMG exceeds the floor), ``offset_s`` the end of its plateau (its stretch
    burst, if any, is the last 2-5 s before it). ``peak_rel`` is the largest 1-s moving RMS
    of the cramp's designed level over ``[onset_s, offset_s]`` on its strongest channel,
    relative to the local floor RMS (both in the reference band); ``severity`` is
    :func:`crampsense.models.grade_severity` of ``(offset_s - onset_s, peak_rel)``. Walking
    after a cramp is its ``got_up`` context, not a separate ``walk`` row. On any leg at most
    one event is active at a time, with 15 s (60 s before a cramp) of quiet around each.

See ``docs/synthetic-nights.md`` for every parameter and its provenance.

Examples
--------
>>> night = generate_night(NightSpec(seed=1, duration_s=600.0, emg_fs_hz=500.0,
...                                  n_cramps=1, lookalikes=()))
>>> night.cramps().height
1
>>> leg = night.leg(night.cramps()["leg"][0])
>>> leg.emg_uv(1000, 250).shape
(2, 250)
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt
import polars as pl

from crampsense.errors import ConfigError

from .render import TILE_S, LegRenderer
from .schedule import Schedule, make_schedule
from .spec import (
    ALL_KINDS,
    LOOKALIKE_KINDS,
    NightSpec,
    ScriptedEvent,
    floor_band_hz,
    reference_bandpass_sos,
)
from .world import World, shifted_world, tuning_world

__all__ = [
    "ALL_KINDS",
    "LOOKALIKE_KINDS",
    "TILE_S",
    "TRUTH_SCHEMA",
    "NightSpec",
    "ScriptedEvent",
    "SyntheticLeg",
    "SyntheticNight",
    "World",
    "demo_spec",
    "floor_band_hz",
    "generate_night",
    "reference_bandpass_sos",
    "shifted_world",
    "tuning_world",
]

#: Column names and dtypes of :attr:`SyntheticNight.truth`.
TRUTH_SCHEMA: dict[str, pl.DataType] = {
    "kind": pl.String(),
    "leg": pl.String(),
    "onset_s": pl.Float64(),
    "offset_s": pl.Float64(),
    "severity": pl.String(),
    "peak_rel": pl.Float64(),
    "woke": pl.Boolean(),
    "got_up": pl.Boolean(),
    "stretched": pl.Boolean(),
}


class SyntheticLeg:
    """One leg's signals, read by sample index (a :class:`~firmware_sims.peripheral.SignalSource`).

    Reads of the same range give the same numbers however they are split; recently rendered
    10-s tiles are cached, so sequential small reads cost little and memory stays bounded.
    """

    def __init__(self, renderer: LegRenderer) -> None:
        self._r = renderer

    @property
    def leg(self) -> str:
        return self._r.model.leg

    @property
    def emg_fs_hz(self) -> float:
        return self._r.emg_fs

    @property
    def acc_fs_hz(self) -> float:
        return self._r.acc_fs

    @property
    def emg_channels(self) -> tuple[str, ...]:
        return self._r.spec.emg_channels

    @property
    def duration_s(self) -> float:
        return self._r.spec.duration_s

    @property
    def n_emg(self) -> int:
        """EMG samples in the night (``round(duration_s · emg_fs_hz)``)."""
        return self._r.n_emg

    @property
    def n_acc(self) -> int:
        """Accelerometer samples in the night."""
        return self._r.n_acc

    def floor_uv_at(self, t_s: float) -> npt.NDArray[np.float64]:
        """Local floor RMS per channel at ``t_s`` (µV in the reference band, before gain)."""
        return self._r.floor_uv_at(t_s)

    def emg_uv(self, start: int, n: int) -> npt.NDArray[np.float32]:
        """EMG samples ``start .. start+n-1`` in µV, shape (n_channels, n)."""
        _check_range(start, n)
        return self._r.emg_range(start, n)[0]

    def acc_mg(self, start: int, n: int) -> npt.NDArray[np.float32]:
        """Accelerometer samples ``start .. start+n-1`` in mg, shape (3, n), axes x, y, z."""
        _check_range(start, n)
        return self._r.acc_range(start, n)

    def lead_off(self, start: int, n: int) -> npt.NDArray[np.bool_]:
        """Per EMG sample ``start .. start+n-1``: electrodes off the skin, shape (n,)."""
        _check_range(start, n)
        return self._r.emg_range(start, n)[1]


def _check_range(start: int, n: int) -> None:
    if start < 0 or n < 0:
        raise ConfigError(f"sample range start={start}, n={n} is invalid; both must be >= 0")


class SyntheticNight:
    """A generated night: its spec, its truth table, and its legs.

    Attributes
    ----------
    spec : NightSpec
    truth : polars.DataFrame
        One row per event per leg, sorted by onset then leg; columns as in
        :data:`TRUTH_SCHEMA`: ``kind`` (``"cramp"`` or a look-alike kind), ``leg``,
        ``onset_s``, ``offset_s`` (s from ``spec.start``), ``severity`` (cramps only:
        ``"mild"``/``"moderate"``/``"severe"``), ``peak_rel`` (cramps only: plateau peak
        1-s RMS / floor RMS), ``woke``, ``got_up``, ``stretched`` (cramps only; else False).
    sleep_onset_s : float
        Sleep onset (s from start); hypnic jerks happen around it.
    """

    def __init__(self, spec: NightSpec, schedule: Schedule) -> None:
        self.spec = spec
        self.sleep_onset_s = schedule.sleep_onset_s
        self._schedule = schedule
        self.truth = (
            pl.DataFrame(schedule.rows, schema=TRUTH_SCHEMA, orient="row")
            if (schedule.rows)
            else pl.DataFrame(schema=TRUTH_SCHEMA)
        )
        self._legs: dict[str, SyntheticLeg] = {}

    def __repr__(self) -> str:
        return (
            f"SyntheticNight(seed={self.spec.seed}, duration_s={self.spec.duration_s}, "
            f"cramps={self.cramps().height}, events={self.truth.height})"
        )

    def cramps(self) -> pl.DataFrame:
        """Truth rows of cramps only, sorted by onset."""
        return self.truth.filter(pl.col("kind") == "cramp").sort("onset_s")

    def _model(self, leg: str) -> Schedule:
        if leg not in self._schedule.legs:
            raise ConfigError(
                f"leg {leg!r} is not simulated in this night; use one of {self.spec.legs}"
            )
        return self._schedule

    def leg(self, leg: str) -> SyntheticLeg:
        """The streaming view of ``leg`` (one shared instance per leg)."""
        model = self._model(leg).legs[leg]
        if leg not in self._legs:
            self._legs[leg] = SyntheticLeg(
                LegRenderer(self.spec, model, sleep_onset_s=self.sleep_onset_s)
            )
        return self._legs[leg]

    def render(
        self, leg: str
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
        """The whole night of ``leg``: ``emg_uv`` (n_ch, n_emg), ``acc_mg`` (3, n_acc),
        ``lead_off`` (n_emg,). Identical to reading the leg piecewise."""
        model = self._model(leg).legs[leg]
        return LegRenderer(self.spec, model, sleep_onset_s=self.sleep_onset_s).render_all()

    def floor_uv(self, leg: str) -> tuple[float, ...]:
        """Nominal floor RMS per channel of ``leg`` (µV, reference band, before gain)."""
        return tuple(float(x) for x in self._model(leg).legs[leg].floor_uv)

    def time_of(self, seconds: float) -> datetime:
        """The wall-clock ``datetime`` of ``seconds`` from the start."""
        return self.spec.start + timedelta(seconds=seconds)


def generate_night(spec: NightSpec) -> SyntheticNight:
    """Draw the night described by ``spec`` (deterministic for a given spec).

    Only the schedule is computed here (milliseconds); samples are rendered on demand.

    Raises
    ------
    crampsense.errors.ConfigError
        If scripted events overlap or an explicit ``n_cramps`` does not fit into the night.
    """
    return SyntheticNight(spec, make_schedule(spec))


def demo_spec(seed: int = 20261120) -> NightSpec:
    """The demo night that ``crampsense demo`` records: 8 h from 22:30 UTC, two legs.

    EMG 1000 Hz (gm, gl), accelerometer 50 Hz, exactly three cramps and every look-alike:

    ========  ==================  =====  ===================================================
    time      event               leg    notes
    ========  ==================  =====  ===================================================
    22:48:30  hypnic_jerk         both   sleep onset 22:48
    23:40     lead_off            right  7 min
    00:05     plm_train           both   24 bursts
    00:40     roll_over           both
    01:12     cramp               right  55 s, plateau 4x, woke + stretched: moderate
    01:40     alma                left   15 s run
    02:10     walk                both   3.5 min to the bathroom and back
    02:30     ecg_crosstalk       left   20 min
    03:04:10  cramp               left   2 min 10 s, woke + got up + stretched: severe
    03:40     roll_over           both
    04:00     mains_hum           left   1 h
    04:10     baseline_wander     right  6 min
    04:45     electrode_pop       right
    05:00     fasciculation       right  5 min
    05:30     cramp               right  15 s, plateau 3.2x, no context: mild
    ========  ==================  =====  ===================================================
    """
    both = ("left", "right")
    return NightSpec(
        seed=seed,
        n_cramps=3,
        sleep_onset_s=1080.0,
        scripted=(
            ScriptedEvent("hypnic_jerk", 1110.0, both),
            ScriptedEvent("lead_off", 4200.0, ("right",), duration_s=420.0),
            ScriptedEvent("plm_train", 5700.0, both, n_bursts=24),
            ScriptedEvent("roll_over", 7800.0, both, duration_s=8.0),
            ScriptedEvent(
                "cramp",
                9720.0,
                ("right",),
                duration_s=55.0,
                plateau_rel=4.0,
                woke=True,
                got_up=False,
                stretched=True,
            ),
            ScriptedEvent("alma", 11400.0, ("left",), duration_s=15.0),
            ScriptedEvent("walk", 13200.0, both, duration_s=210.0),
            ScriptedEvent("ecg_crosstalk", 14400.0, ("left",), duration_s=1200.0),
            ScriptedEvent(
                "cramp",
                16450.0,
                ("left",),
                duration_s=130.0,
                plateau_rel=5.5,
                woke=True,
                got_up=True,
                stretched=True,
            ),
            ScriptedEvent("roll_over", 18600.0, both, duration_s=12.0),
            ScriptedEvent("mains_hum", 19800.0, ("left",), duration_s=3600.0),
            ScriptedEvent("baseline_wander", 20400.0, ("right",), duration_s=360.0),
            ScriptedEvent("electrode_pop", 22500.0, ("right",)),
            ScriptedEvent("fasciculation", 23400.0, ("right",), duration_s=300.0),
            ScriptedEvent(
                "cramp",
                25200.0,
                ("right",),
                duration_s=15.0,
                plateau_rel=3.2,
                woke=False,
                got_up=False,
                stretched=False,
            ),
        ),
    )
