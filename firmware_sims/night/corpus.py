"""The evaluation corpus: synthetic nights from :mod:`firmware_sims.night`, run through a detector.

Everything here returns data (plain dicts and lists, ready for JSON); scoring is
:mod:`crampsense.detection.scoring`, printing :mod:`crampsense.cli.evaluate`. The protocol
(``docs/evaluation.md``) follows the "Evaluating it" section of DETECTION.md:

- **Corpus.** Nights from :func:`firmware_sims.night.generate_night` with seeds from
  ``seed_base`` (10 000 by default) up; the detector was tuned on seeds below 1000 only. Each
  night is scored as a whole (split by night, never within a night): a night is one seed.
- **Sets.** Mixed nights (every look-alike kind plus cramps), one cramp-free stress set per
  look-alike kind, nights with no events at all, the same nights at 200/500/1000/2000 Hz and
  at gains x0.3, x0.5, x2 and x3, and the mixed nights again with the EMG removed
  (accelerometer only).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing import get_context
from typing import TYPE_CHECKING, Any, Final, Literal

import polars as pl

from crampsense.detection.scoring import (
    ACC_ONLY,
    EMG,
    ENVELOPE,
    GAIN_RATE_HZ,
    SWEEP_ON_RATIOS,
)
from crampsense.errors import UsageError

from .spec import ALL_KINDS, LOOKALIKE_KINDS, NightSpec
from .world import World, shifted_world, tuning_world

if TYPE_CHECKING:
    from crampsense.detection import DetectionParams, LegSignals

__all__ = [
    "DEFAULT_SEED_BASE",
    "GAINS",
    "RATES_HZ",
    "Detector",
    "EvalSet",
    "NightCase",
    "build_corpus",
    "run_corpus",
    "run_night",
]

logger = logging.getLogger(__name__)

#: Seeds below this were (or may be) used for tuning; the evaluation never uses them by default.
TUNING_SEED_LIMIT: Final = 1000
#: First seed of the fresh corpus: far above every seed used in tuning (< 1000) and in the
#: detector's own tests (1000-2999), so nothing here was ever looked at while tuning.
DEFAULT_SEED_BASE: Final = 10_000
#: Seeds of consecutive sets start this far apart, so no two sets share a night by accident
#: (the rate and gain sets share seeds on purpose: the same nights, rendered differently).
SEED_STRIDE: Final = 1000
#: Gains of the gain sets (x1 is the rate set at the same rate).
GAINS: Final[tuple[float, ...]] = (0.3, 0.5, 2.0, 3.0)
#: Sample rates of the rate sets (Hz): AASM minimum, clinical, and two faster front ends.
RATES_HZ: Final[tuple[float, ...]] = (200.0, 500.0, 1000.0, 2000.0)

SetKind = Literal["mixed", "lookalike", "none", "rate", "gain"]
Size = Literal["tiny", "quick", "medium", "full"]
WorldName = Literal["legacy", "tuning", "shifted"]
#: The envelope run's envelope: rectified EMG smoothed by a 2nd-order 5-Hz low-pass, sampled
#: at 50 Hz (a MyoWare-like analog front end).
ENVELOPE_FS_HZ: Final = 50.0
ENVELOPE_CUTOFF_HZ: Final = 5.0


def world_named(name: WorldName) -> World | None:
    """The world of a corpus: ``None`` for the legacy catalogue."""
    return {"legacy": None, "tuning": tuning_world(), "shifted": shifted_world()}[name]

#: A detector: (legs, start, params) -> events frame with at least onset_s, offset_s, leg, kind.
Detector = Callable[[Sequence["LegSignals"], datetime, "DetectionParams"], pl.DataFrame]

@dataclass(frozen=True)
class NightCase:
    """One night to run: its spec and what to run on it.

    Attributes
    ----------
    set_name : str
    spec : firmware_sims.night.NightSpec
    sweep : bool
        Also run every ``on_ratio`` of :data:`SWEEP_ON_RATIOS`.
    acc_only : bool
        Also run the same night with the EMG removed.
    """

    set_name: str
    spec: Any
    sweep: bool = False
    acc_only: bool = False
    envelope: bool = False


@dataclass(frozen=True)
class EvalSet:
    """A named set of nights with one purpose.

    Attributes
    ----------
    name : str
        e.g. ``"mixed-8h"``, ``"lookalike:plm_train"``, ``"rate-200"``, ``"gain-0.3"``.
    kind : {"mixed", "lookalike", "none", "rate", "gain"}
    description : str
    cases : tuple of NightCase
    """

    name: str
    kind: SetKind
    description: str
    cases: tuple[NightCase, ...] = field(default=())


@dataclass(frozen=True)
class _Plan:
    mixed: tuple[tuple[str, int, float, float, int | None], ...]  # name, n, hours, fs, cramps
    lookalike_nights: int
    lookalike_hours: float
    lookalike_kinds: tuple[str, ...]
    rate_nights: int
    rate_hours: float
    rate_cramps: int = 2


def _plan(size: Size) -> _Plan:
    if size == "full":
        # 60 cramp-free 8-h nights: zero false alarms then bounds the rate at 0.05 per night
        # (95 %, rule of three); 20 mixed 8-h nights at 1000 Hz plus 30 2-h nights with two
        # cramps each give ~90 cramps.
        return _Plan(mixed=(("mixed-8h", 20, 8.0, 1000.0, None), ("mixed-2h", 30, 2.0, 500.0, 2)),
                     lookalike_nights=5, lookalike_hours=8.0, lookalike_kinds=LOOKALIKE_KINDS,
                     rate_nights=8, rate_hours=2.0)
    if size == "medium":
        # 30 mixed 2-h nights with two cramps (60 cramps, half at 1000 Hz), 2 cramp-free 2-h
        # nights per look-alike kind (4 for the look-alike mix), rates and gains on 4 nights.
        return _Plan(mixed=(("mixed-2h-500", 15, 2.0, 500.0, 2),
                            ("mixed-2h-1000", 15, 2.0, 1000.0, 2)),
                     lookalike_nights=2, lookalike_hours=2.0, lookalike_kinds=LOOKALIKE_KINDS,
                     rate_nights=4, rate_hours=2.0)
    if size == "quick":
        return _Plan(mixed=(("mixed-1h", 10, 1.0, 500.0, 2),), lookalike_nights=1,
                     lookalike_hours=1.0, lookalike_kinds=LOOKALIKE_KINDS, rate_nights=2,
                     rate_hours=1.0)
    return _Plan(mixed=(("mixed-10min", 2, 1 / 6, 500.0, 1),), lookalike_nights=1,
                 lookalike_hours=1 / 6, lookalike_kinds=("plm_train",),
                 rate_nights=1, rate_hours=1 / 6, rate_cramps=1)


def build_corpus(size: Size = "quick", *, seed_base: int = DEFAULT_SEED_BASE,
                 world: WorldName = "legacy") -> list[EvalSet]:
    """The evaluation sets of one corpus size.

    Parameters
    ----------
    size : {"tiny", "quick", "full"}
        ``"full"``: 8-h nights where it matters (~170 nights, about 15-25 min on 2 cores);
        ``"quick"``: 1-h nights (~40 nights, about a minute); ``"tiny"``: 10-min nights, for
        tests.
    seed_base : int
        First seed; set ``k`` uses seeds ``seed_base + 1000 k`` onwards. Below 1000 the seeds
        overlap the tuning seeds (allowed, e.g. to look at the tuning set, but logged).
    world : {"legacy", "tuning", "shifted"}
        ``"shifted"``: nights of :func:`~firmware_sims.night.world.shifted_world` with every
        look-alike kind of :data:`~firmware_sims.night.spec.ALL_KINDS`, and a set of cramp-free
        nights holding every kind (``lookalike-mix``); ``"tuning"``: the same sets from the
        tuning world; ``"legacy"``: the original catalogue (events alone, quiet around them).

    Returns
    -------
    list of EvalSet
    """
    if seed_base < 0:
        raise UsageError(f"--seed-base {seed_base} is negative; use 10000 (the default) or more")
    if seed_base < TUNING_SEED_LIMIT:
        logger.warning("seed base %d overlaps the tuning seeds (< %d): this is not a held-out "
                       "evaluation", seed_base, TUNING_SEED_LIMIT)
    plan = _plan(size)
    w = world_named(world)
    kinds = LOOKALIKE_KINDS if w is None else ALL_KINDS
    if w is not None:
        plan = _Plan(mixed=plan.mixed, lookalike_nights=plan.lookalike_nights,
                     lookalike_hours=plan.lookalike_hours,
                     lookalike_kinds=kinds if size != "tiny" else plan.lookalike_kinds,
                     rate_nights=plan.rate_nights, rate_hours=plan.rate_hours,
                     rate_cramps=plan.rate_cramps)
    extra: dict[str, Any] = {} if w is None else {"world": w, "lookalikes": kinds}
    sets: list[EvalSet] = []
    k = 0

    def seeds(n: int) -> range:
        return range(seed_base + k * SEED_STRIDE, seed_base + k * SEED_STRIDE + n)

    for name, n, hours, fs, cramps in plan.mixed:
        cases = tuple(NightCase(name, NightSpec(seed=s, duration_s=hours * 3600.0,
                                                emg_fs_hz=fs, n_cramps=cramps, **extra),
                                sweep=w is None, acc_only=True, envelope=w is not None)
                      for s in seeds(n))
        what = "0-3 cramps (random)" if cramps is None else f"{cramps} cramps"
        sets.append(EvalSet(name, "mixed", f"{n} x {_hours(hours)} at {fs:g} Hz, every "
                            f"look-alike kind, {what} per night", cases))
        k += 1
    for kind in plan.lookalike_kinds:
        cases = tuple(NightCase(f"lookalike:{kind}", NightSpec(
            seed=s, duration_s=plan.lookalike_hours * 3600.0, emg_fs_hz=500.0, n_cramps=0,
            **{**extra, "lookalikes": (kind,)}), sweep=w is None, acc_only=w is not None)
            for s in seeds(plan.lookalike_nights))
        sets.append(EvalSet(f"lookalike:{kind}", "lookalike",
                            f"{plan.lookalike_nights} x {_hours(plan.lookalike_hours)} at 500 "
                            f"Hz, only {kind}, no cramps", cases))
        k += 1
    if w is not None:
        n_mix = 2 * plan.lookalike_nights
        cases = tuple(NightCase("lookalike-mix", NightSpec(
            seed=s, duration_s=plan.lookalike_hours * 3600.0, emg_fs_hz=500.0, n_cramps=0,
            **extra), acc_only=True) for s in seeds(n_mix))
        sets.append(EvalSet("lookalike-mix", "lookalike", f"{n_mix} x "
                            f"{_hours(plan.lookalike_hours)} at 500 Hz, every look-alike kind "
                            "(overlapping), no cramps", cases))
        k += 1
    cases = tuple(NightCase("no-events", NightSpec(
        seed=s, duration_s=plan.lookalike_hours * 3600.0, emg_fs_hz=500.0, n_cramps=0,
        **{**extra, "lookalikes": ()}), sweep=w is None) for s in seeds(plan.lookalike_nights))
    sets.append(EvalSet("no-events", "none", f"{plan.lookalike_nights} x "
                        f"{_hours(plan.lookalike_hours)} at 500 Hz, nothing but rest", cases))
    k += 1
    shared = seeds(plan.rate_nights)  # rate and gain sets: the same nights on purpose
    for fs in RATES_HZ:
        cases = tuple(NightCase(f"rate-{fs:g}", NightSpec(
            seed=s, duration_s=plan.rate_hours * 3600.0, emg_fs_hz=fs,
            n_cramps=plan.rate_cramps, **extra)) for s in shared)
        sets.append(EvalSet(f"rate-{fs:g}", "rate", f"{plan.rate_nights} x "
                            f"{_hours(plan.rate_hours)} at {fs:g} Hz, every look-alike, "
                            f"{plan.rate_cramps} cramps",
                            cases))
    for gain in GAINS:
        cases = tuple(NightCase(f"gain-{gain:g}", NightSpec(
            seed=s, duration_s=plan.rate_hours * 3600.0, emg_fs_hz=GAIN_RATE_HZ,
            n_cramps=plan.rate_cramps, gain=gain, **extra)) for s in shared)
        sets.append(EvalSet(f"gain-{gain:g}", "gain", f"the rate-{GAIN_RATE_HZ:g} nights with "
                            f"EMG x{gain:g}", cases))
    return sets


def _hours(hours: float) -> str:
    return f"{hours:g} h" if hours >= 1 else f"{hours * 60:g} min"


def default_detector(legs: Sequence[LegSignals], start: datetime,
                     params: DetectionParams) -> pl.DataFrame:
    """The shipped detector: :func:`crampsense.detection.detect_cramps` ``.events``."""
    from crampsense.detection import detect_cramps  # noqa: PLC0415

    return detect_cramps(legs, start=start, params=params).events


def sweep_params(on_ratio: float) -> DetectionParams:
    """Default parameters with ``on_ratio`` replaced (``off_ratio``/``onset_ratio`` capped)."""
    from crampsense.detection import DetectionParams  # noqa: PLC0415

    base = DetectionParams()
    off = min(base.off_ratio, on_ratio)
    return DetectionParams(on_ratio=on_ratio, off_ratio=off,
                           onset_ratio=min(base.onset_ratio, off))


def _rows(events: pl.DataFrame) -> list[tuple[str, float, float, str, float, str]]:
    """``(leg, onset_s, offset_s, kind, confidence, evidence)`` per detected event."""
    n = events.height
    kind = (events["kind"].cast(pl.String).to_list() if "kind" in events.columns
            else ["cramp"] * n)
    conf = (events["confidence"].cast(pl.Float64).to_list() if "confidence" in events.columns
            else [1.0] * n)
    evid = (events["evidence"].cast(pl.String).to_list() if "evidence" in events.columns
            else ["emg"] * n)
    return [(str(leg), float(a), float(b), str(k), float(c), str(e))
            for leg, a, b, k, c, e in zip(events["leg"].to_list(), events["onset_s"].to_list(),
                                           events["offset_s"].to_list(), kind, conf, evid,
                                           strict=True)]


def analog_envelope(emg_uv: Any, fs_hz: float) -> Any:
    """An analog front end's EMG envelope from raw EMG: rectified, 2nd-order low-pass at
    :data:`ENVELOPE_CUTOFF_HZ`, sampled at :data:`ENVELOPE_FS_HZ` (rows as channels)."""
    import numpy as np  # noqa: PLC0415
    from scipy import signal  # noqa: PLC0415

    hp = signal.butter(2, 20.0, btype="highpass", fs=fs_hz, output="sos")
    lp = signal.butter(2, ENVELOPE_CUTOFF_HZ, fs=fs_hz, output="sos")
    x = signal.sosfilt(hp, np.asarray(emg_uv, dtype=np.float64), axis=1)
    env = signal.sosfilt(lp, np.abs(x), axis=1)
    step = max(1, round(fs_hz / ENVELOPE_FS_HZ))
    return env[:, ::step].astype(np.float32), fs_hz / step


def run_night(case: NightCase, detector: Detector | None = None) -> dict[str, Any]:
    """Render one night, run the detector(s) on it and return a plain record.

    Returns
    -------
    dict
        ``set``, ``seed``, ``hours``, ``sleep_hours`` (from sleep onset to the end), ``fs_hz``,
        ``gain``, ``truth`` (list of ``[leg, onset_s, offset_s, woke]`` for each true cramp),
        ``lookalikes`` (kind -> count of truth rows), ``runs`` (run key -> list of
        ``[leg, onset_s, offset_s, kind]``; keys ``"emg"``, ``"on_ratio=2.5"`` ...,
        ``"acc_only"``, ``"envelope"``), ``lookalike_truth`` (list of
        ``[kind, leg, onset_s, offset_s]``), ``cpu_s``.
    """
    from crampsense.detection import DetectionParams, LegSignals  # noqa: PLC0415

    from . import generate_night  # noqa: PLC0415 - the package imports this module lazily

    detect = detector or default_detector
    t0 = time.process_time()
    spec = case.spec
    night = generate_night(spec)
    legs: list[LegSignals] = []
    for leg in spec.legs:
        emg, acc, lead_off = night.render(leg)
        legs.append(LegSignals(leg, emg, spec.emg_fs_hz, tuple(spec.emg_channels),
                               emg_valid=~lead_off, acc_mg=acc, acc_fs_hz=spec.acc_fs_hz))
    runs: dict[str, list[tuple[str, float, float, str, float, str]]] = {
        EMG: _rows(detect(legs, spec.start, DetectionParams()))}
    if case.sweep:
        default = DetectionParams().on_ratio
        for v in SWEEP_ON_RATIOS:
            if v != default:
                runs[f"on_ratio={v:g}"] = _rows(detect(legs, spec.start, sweep_params(v)))
    if case.envelope:
        env_legs = []
        for sg in legs:
            env, env_fs = analog_envelope(sg.emg_uv, spec.emg_fs_hz)
            step = max(1, round(spec.emg_fs_hz / ENVELOPE_FS_HZ))
            valid = None if sg.emg_valid is None else sg.emg_valid[::step][:env.shape[1]]
            env_legs.append(LegSignals(sg.leg, None, None, sg.emg_channels, emg_valid=valid,
                                       acc_mg=sg.acc_mg, acc_fs_hz=sg.acc_fs_hz,
                                       emg_envelope=env, envelope_fs_hz=env_fs))
        runs[ENVELOPE] = _rows(detect(env_legs, spec.start, DetectionParams()))
    if case.acc_only:
        acc_legs = [LegSignals(s.leg, None, None, acc_mg=s.acc_mg, acc_fs_hz=s.acc_fs_hz)
                    for s in legs]
        runs[ACC_ONLY] = _rows(detect(acc_legs, spec.start, DetectionParams()))
    cramps = night.cramps()
    truth = [(str(r["leg"]), float(r["onset_s"]), float(r["offset_s"]), bool(r["woke"]))
             for r in cramps.iter_rows(named=True)]
    look_rows = night.truth.filter(pl.col("kind") != "cramp")
    looks = look_rows.group_by("kind").len()
    return {
        "set": case.set_name, "seed": spec.seed, "hours": spec.duration_s / 3600.0,
        "world": None if spec.world is None else spec.world.name,
        "sleep_hours": (spec.duration_s - night.sleep_onset_s) / 3600.0,
        "fs_hz": spec.emg_fs_hz, "gain": spec.gain, "truth": truth,
        "lookalikes": dict(zip(looks["kind"].to_list(), looks["len"].to_list(), strict=True)),
        "lookalike_truth": [(str(r["kind"]), str(r["leg"]), float(r["onset_s"]),
                             float(r["offset_s"])) for r in look_rows.iter_rows(named=True)],
        "runs": runs, "cpu_s": time.process_time() - t0,
    }


def _run_one(args: tuple[NightCase, Detector | None]) -> dict[str, Any]:
    return run_night(*args)


def run_corpus(sets: Iterable[EvalSet], *, workers: int = 2, detector: Detector | None = None,
               on_done: Callable[[dict[str, Any]], None] | None = None,
               ) -> list[dict[str, Any]]:
    """Run every night of ``sets``, over ``workers`` processes (1: in this process).

    Longest nights are started first so the workers finish together. ``detector`` must be a
    module-level function when ``workers > 1`` (it is pickled). ``on_done`` is called with each
    record as it completes. Returns the records in corpus order.
    """
    cases = [c for s in sets for c in s.cases]
    if workers < 1:
        raise UsageError(f"--workers {workers} must be at least 1")
    order = sorted(range(len(cases)), key=lambda i: -_cost(cases[i]))
    out: list[dict[str, Any] | None] = [None] * len(cases)
    if workers == 1 or len(cases) <= 1:
        for i in order:
            rec = run_night(cases[i], detector)
            out[i] = rec
            if on_done:
                on_done(rec)
    else:
        # spawn, not fork: polars and BLAS threads do not survive a fork safely
        with ProcessPoolExecutor(max_workers=min(workers, os.cpu_count() or workers),
                                 mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(_run_one, (cases[i], detector)): i for i in order}
            for fut in as_completed(futures):
                rec = fut.result()
                out[futures[fut]] = rec
                if on_done:
                    on_done(rec)
    return [r for r in out if r is not None]


def _cost(case: NightCase) -> float:
    runs = 1 + (len(SWEEP_ON_RATIOS) - 1 if case.sweep else 0)
    spec = case.spec
    return float(spec.duration_s * (spec.emg_fs_hz * (1.5 + 0.5 * runs)))
