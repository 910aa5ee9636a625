"""Where things happen: sleep onset, event placement without overlap, postures, truth rows."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Final

import numpy as np

from crampsense.errors import ConfigError
from crampsense.models import grade_severity

from . import events
from .components import F64, AccComponent, EmgComponent, PostureOp, Tilt
from .events import Ctx, EventPlan
from .spec import LEGS, NightSpec

__all__ = ["LegModel", "Schedule", "make_schedule", "rng_for"]

logger = logging.getLogger(__name__)

#: Sleep onset drawn 10-30 min after the start (s): typical sleep latency in bed.
SLEEP_ONSET_S: Final = (600.0, 1800.0)
#: ... but at most this share of the night, so short test nights have room after it.
SLEEP_ONSET_MAX_FRACTION: Final = 0.15
#: Events "during sleep" start at least this long after sleep onset (s).
AFTER_ONSET_S: Final = 60.0
#: Hypnic jerks happen within this window around sleep onset (s before, s after).
JERK_WINDOW_S: Final = (60.0, 180.0)
#: Nothing ends within this much of the end of the night (s, or 2 % of a short night).
END_MARGIN_S: Final = 300.0
END_MARGIN_FRACTION: Final = 0.02
#: Body roll about the shank axis (deg): supine 0, right side down +90, left side down -90,
#: prone 180. Weights: people sleep mostly on their sides and back, seldom prone.
BODY_POSTURES_DEG: Final = (0.0, 90.0, -90.0, 180.0)
BODY_POSTURE_WEIGHTS: Final = (0.35, 0.3, 0.3, 0.05)
#: Lying shank pitch (deg, + = knee higher than ankle): legs lie nearly flat, knees a bit bent.
LYING_PITCH_DEG: Final = (-5.0, 10.0)
#: Standing shank pitch (deg): vertical within a few degrees.
STANDING_PITCH_DEG: Final = (85.0, 90.0)
#: Sensor mounting error about the shank axis (deg): straps sit a little rotated.
MOUNT_ROLL_DEG: Final = (-15.0, 15.0)
#: Accelerometer zero-g offset per axis (mg): typical for MEMS parts after soldering.
ACC_BIAS_MG: Final = (-15.0, 15.0)
#: Resting EMG floor per channel (µV RMS in the analysis band): amplifier plus background.
FLOOR_UV: Final = (2.0, 4.0)
#: Slow floor drift: three sinusoids with periods 20 min-4 h, each up to 3 % (<= +-9 % in all;
#: skin-electrode impedance settles over the night).
DRIFT_PERIOD_S: Final = (1200.0, 14400.0)
DRIFT_AMPLITUDE: Final = 0.03
#: Order in which random events are placed: narrow windows and cramps first, then long
#: look-alikes so they still find room.
PLACEMENT_ORDER: Final = (
    "hypnic_jerk",
    "cramp",
    "mains_hum",
    "ecg_crosstalk",
    "lead_off",
    "plm_train",
    "walk",
    "baseline_wander",
    "fasciculation",
    "roll_over",
    "alma",
    "electrode_pop",
    "electrode_detach",
    "reposition",
    "tone_change",
    "restless_wake",
    "bed_partner",
    "strap_slip",
)
#: Attempts to redraw a random cramp that did not fit before giving up.
CRAMP_PLACEMENT_TRIES: Final = 8
#: Spawn-key tag of the schedule's random stream (noise streams use the leg index first).
SCHEDULE_STREAM: Final = 1000

Interval = tuple[float, float]


def rng_for(seed: int, *key: int) -> np.random.Generator:
    """Independent generator for ``(seed, *key)`` (``SeedSequence`` spawn keys)."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


@dataclass
class LegModel:
    """Everything needed to render one leg (absolute night seconds).

    ``psi_*``: body roll keyframes (deg); ``up_*``: "vertical" fraction keyframes (0 lying,
    1 standing).
    """

    leg: str
    leg_index: int
    floor_uv: F64  # (n_ch,)
    drift_amp: F64  # (n_ch, 3)
    drift_period_s: F64  # (n_ch, 3)
    drift_phase: F64  # (n_ch, 3)
    emg: list[EmgComponent] = field(default_factory=list)
    acc: list[AccComponent] = field(default_factory=list)
    psi_t: F64 = field(default_factory=lambda: np.zeros(1))
    psi_deg: F64 = field(default_factory=lambda: np.zeros(1))
    up_t: F64 = field(default_factory=lambda: np.zeros(1))
    up_frac: F64 = field(default_factory=lambda: np.zeros(1))
    roll_sign: float = 1.0
    mount_roll_deg: float = 0.0
    lying_pitch_deg: float = 0.0
    standing_pitch_deg: float = 90.0
    acc_bias_mg: F64 = field(default_factory=lambda: np.zeros(3))
    tilts: list[Tilt] = field(default_factory=list)

    def tilt_deg(self, t_s: F64) -> F64 | float:
        """Extra roll of this leg's sensor (deg) at times ``t_s``: the sum of its tilts."""
        if not self.tilts:
            return 0.0
        t0 = np.array([k.t0_s for k in self.tilts])
        t1 = np.array([k.t1_s for k in self.tilts])
        d = np.array([k.roll_deg for k in self.tilts])
        u = np.clip((t_s[None, :] - t0[:, None]) / np.maximum(t1 - t0, 1e-3)[:, None], 0.0, 1.0)
        out: F64 = d @ u
        return out

    def drift(self, t_s: float) -> F64:
        """Floor multiplier per channel at ``t_s`` (1.0 = nominal)."""
        d: F64 = 1.0 + (
            self.drift_amp * np.sin(2 * np.pi * t_s / self.drift_period_s + self.drift_phase)
        ).sum(axis=1)
        return d


@dataclass
class Schedule:
    sleep_onset_s: float
    rows: list[dict[str, object]]
    legs: dict[str, LegModel]


def _free(occupied: list[Interval], lo: float, hi: float) -> list[Interval]:
    """``[lo, hi]`` minus the occupied intervals."""
    out: list[Interval] = []
    cur = lo
    for a, b in sorted(occupied):
        if a > cur:
            out.append((cur, min(a, hi)))
        cur = max(cur, b)
        if cur >= hi:
            break
    if cur < hi:
        out.append((cur, hi))
    return [(a, b) for a, b in out if b > a]


def _intersect(xs: list[Interval], ys: list[Interval]) -> list[Interval]:
    out: list[Interval] = []
    for a0, a1 in xs:
        for b0, b1 in ys:
            lo, hi = max(a0, b0), min(a1, b1)
            if hi >= lo:
                out.append((lo, hi))
    return out


class _Timeline:
    def __init__(self, legs: tuple[str, ...], night_s: float) -> None:
        self.night_s = night_s
        self.occupied: dict[str, list[Interval]] = {leg: [] for leg in legs}

    def feasible(self, plan: EventPlan, window: Interval) -> list[Interval]:
        """Onsets at which ``plan`` fits on all its legs, inside ``window``."""
        out = [window]
        for leg in plan.parts:
            fp_lo, fp_hi = plan.footprint(leg)
            segs = [
                (a - fp_lo, b - fp_hi)
                for a, b in _free(self.occupied[leg], 0.0, self.night_s)
                if b - fp_hi >= a - fp_lo
            ]
            out = _intersect(out, segs)
        return out

    def fits(self, plan: EventPlan, onset_s: float) -> bool:
        return any(a <= onset_s <= b for a, b in self.feasible(plan, (onset_s, onset_s)))

    def take(self, plan: EventPlan, onset_s: float) -> None:
        for leg in plan.parts:
            fp_lo, fp_hi = plan.footprint(leg)
            self.occupied[leg].append((onset_s + fp_lo, onset_s + fp_hi))


def _sample(rng: np.random.Generator, segs: list[Interval]) -> float | None:
    if not segs:
        return None
    lengths = np.array([b - a for a, b in segs])
    total = float(lengths.sum())
    if total <= 0:
        return segs[int(rng.integers(len(segs)))][0]
    u = float(rng.uniform(0.0, total))
    cum = np.cumsum(lengths)
    i = min(int(np.searchsorted(cum, u, side="right")), len(segs) - 1)
    prev = float(cum[i - 1]) if i else 0.0
    return segs[i][0] + (u - prev)


def _window(kind: str, sleep_onset_s: float, night_s: float) -> Interval:
    end = night_s - min(END_MARGIN_S, END_MARGIN_FRACTION * night_s)
    where = events.PLACEMENT_WINDOW[kind]
    if where == "onset":
        return max(0.0, sleep_onset_s - JERK_WINDOW_S[0]), min(
            end, sleep_onset_s + JERK_WINDOW_S[1]
        )
    if where == "sleep":
        return sleep_onset_s + AFTER_ONSET_S, end
    return 0.0, end


def make_schedule(spec: NightSpec) -> Schedule:
    """Draw and place every event of ``spec``; build the truth rows and per-leg models."""
    rng = rng_for(spec.seed, SCHEDULE_STREAM)
    night_s = spec.duration_s
    n_ch = len(spec.emg_channels)
    ctx = Ctx(rng, spec.legs, n_ch, night_s, spec.cramp_min_duration_s, spec.cramp_max_duration_s,
              spec.world)
    world = spec.world is not None
    if spec.sleep_onset_s is not None:
        sleep_onset = spec.sleep_onset_s
    else:
        sleep_onset = min(ctx.u(SLEEP_ONSET_S), SLEEP_ONSET_MAX_FRACTION * night_s)
    timeline = _Timeline(spec.legs, night_s)
    placed: list[tuple[float, EventPlan]] = []

    # 1. scripted events, exactly where asked
    for ev in sorted(spec.scripted, key=lambda e: e.onset_s):
        plan = events.build(ctx, ev.kind, ev.legs, ev)
        if not timeline.fits(plan, ev.onset_s):
            raise ConfigError(
                f"scripted {ev.kind} at {ev.onset_s:.0f} s on {ev.legs} overlaps another event "
                "or the night's edges (events keep 15-60 s of quiet around them); move it"
            )
        timeline.take(plan, ev.onset_s)
        placed.append((ev.onset_s, plan))

    # 2. random look-alikes of every requested kind that has no scripted event (hypnic jerks
    #    first: their window at sleep onset is narrow; cramps go before the other kinds)
    scripted_kinds = {ev.kind for ev in spec.scripted}
    wanted = [k for k in dict.fromkeys(spec.lookalikes) if k not in scripted_kinds]
    scale = night_s / (8 * 3600.0)
    counts: dict[str, int] = {}
    table = events.COUNT_PER_8H if spec.world is None else spec.world.counts_per_8h
    for kind in wanted:
        lo, hi = table[kind]
        counts[kind] = max(1, round(int(rng.integers(lo, hi + 1)) * scale))
    for kind in PLACEMENT_ORDER:
        if kind == "cramp":
            _place_cramps(spec, ctx, timeline, placed, sleep_onset)
            continue
        for _ in range(counts.get(kind, 0)):
            plan = events.build(ctx, kind, None, None)
            window = _window(kind, sleep_onset, night_s)
            if world:
                plan.guard_before_s = plan.guard_after_s = 0.0
            if world and kind not in events.EXCLUSIVE_KINDS:
                # World nights: look-alikes overlap anything, as in real nights.
                span = max(plan.footprint(leg)[1] for leg in plan.parts)
                onset = _sample(rng, [(window[0], window[1] - span)]
                                if window[1] - span > window[0] else [])
            else:
                onset = _sample(rng, timeline.feasible(plan, window))
            if onset is None:
                logger.info("night seed %d: no room for a %s; skipped", spec.seed, kind)
                continue
            timeline.take(plan, onset)
            placed.append((onset, plan))

    placed.sort(key=lambda p: p[0])
    rows = _truth_rows(placed)
    legs = _leg_models(spec, rng, placed)
    return Schedule(sleep_onset, rows, legs)


def _place_cramps(
    spec: NightSpec,
    ctx: Ctx,
    timeline: _Timeline,
    placed: list[tuple[float, EventPlan]],
    sleep_onset: float,
) -> None:
    """Draw and place the random cramps (explicit counts must fit, drawn ones may not)."""
    rng = ctx.rng
    night_s = spec.duration_s
    n_scripted = sum(ev.kind == "cramp" for ev in spec.scripted)
    explicit = spec.n_cramps is not None
    n_total = (
        spec.n_cramps if spec.n_cramps is not None else max(n_scripted, int(rng.integers(0, 4)))
    )
    for i in range(n_total - n_scripted):
        for _ in range(CRAMP_PLACEMENT_TRIES):
            plan = events.build(ctx, "cramp", None, None)
            onset = _sample(rng, timeline.feasible(plan, _window("cramp", sleep_onset, night_s)))
            if onset is not None:
                timeline.take(plan, onset)
                placed.append((onset, plan))
                break
        else:
            if explicit:
                raise ConfigError(
                    f"could not fit cramp {n_scripted + i + 1} of {n_total} into a "
                    f"{night_s:.0f}-s night; lengthen duration_s or lower n_cramps"
                )
            logger.info("night seed %d: no room for a drawn cramp; skipped", spec.seed)


def _truth_rows(placed: list[tuple[float, EventPlan]]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for onset, plan in placed:
        for leg, part in plan.parts.items():
            if part.truth is None:
                continue
            t0, t1 = onset + part.truth[0], onset + part.truth[1]
            cramp = plan.cramp
            row: dict[str, object] = {
                "kind": plan.kind,
                "leg": leg,
                "onset_s": t0,
                "offset_s": t1,
                "severity": None,
                "peak_rel": None,
                "woke": False,
                "got_up": False,
                "stretched": False,
            }
            if cramp is not None:
                row["severity"] = str(grade_severity(t1 - t0, cramp.peak_rel))
                row["peak_rel"] = cramp.peak_rel
                row["woke"] = cramp.woke
                row["got_up"] = cramp.got_up
                row["stretched"] = cramp.stretched
            rows.append(row)
    rows.sort(key=lambda r: (float(r["onset_s"]), LEGS.index(str(r["leg"]))))  # type: ignore[arg-type]
    return rows


def _wrap_deg(angle: float) -> float:
    """Angle in [-180, 180)."""
    return (angle + 180.0) % 360.0 - 180.0


def _posture_keyframes(rng: np.random.Generator, ops: list[PostureOp]) -> tuple[F64, F64, F64, F64]:
    """Body roll and "vertical" keyframes from the night's posture operations."""
    psi = float(rng.choice(BODY_POSTURES_DEG, p=BODY_POSTURE_WEIGHTS))
    psi_t, psi_v = [0.0], [psi]
    up_t, up_v = [0.0], [0.0]
    for op in sorted(ops, key=lambda o: o.t0_s):
        if op.kind == "roll":
            options = [p for p in BODY_POSTURES_DEG if _wrap_deg(p) != _wrap_deg(psi)]
            target = options[min(int(op.choice * len(options)), len(options) - 1)]
            new = psi + _wrap_deg(target - psi)  # roll the short way; keep psi continuous
            psi_t += [op.t0_s, op.t1_s]
            psi_v += [psi, new]
            psi = new
        else:
            up_t += [op.t0_s, op.t1_s, op.t2_s, op.t3_s]
            up_v += [0.0, 1.0, 1.0, 0.0]
    return np.array(psi_t), np.array(psi_v), np.array(up_t), np.array(up_v)


def _leg_models(
    spec: NightSpec, rng: np.random.Generator, placed: list[tuple[float, EventPlan]]
) -> dict[str, LegModel]:
    n_ch = len(spec.emg_channels)
    ops = [op.shifted(onset) for onset, plan in placed for op in plan.posture]
    psi_t, psi_v, up_t, up_v = _posture_keyframes(rng, ops)
    models: dict[str, LegModel] = {}
    for leg in spec.legs:
        model = LegModel(
            leg=leg,
            leg_index=LEGS.index(leg),
            floor_uv=rng.uniform(*FLOOR_UV, n_ch),
            drift_amp=rng.uniform(0.0, DRIFT_AMPLITUDE if spec.world is None
                                  else spec.world.prior("floor_drift_amplitude")[1], (n_ch, 3)),
            drift_period_s=rng.uniform(*DRIFT_PERIOD_S, (n_ch, 3)),
            drift_phase=rng.uniform(0.0, 2 * np.pi, (n_ch, 3)),
            psi_t=psi_t,
            psi_deg=psi_v,
            up_t=up_t,
            up_frac=up_v,
            # y points laterally (away from the midline): the same body roll shows with
            # opposite signs on the two legs.
            roll_sign=1.0 if leg == "left" else -1.0,
            mount_roll_deg=float(rng.uniform(*MOUNT_ROLL_DEG)),
            lying_pitch_deg=float(rng.uniform(*LYING_PITCH_DEG)),
            standing_pitch_deg=float(rng.uniform(*STANDING_PITCH_DEG)),
            acc_bias_mg=rng.uniform(*ACC_BIAS_MG, 3),
        )
        for onset, plan in placed:
            part = plan.parts.get(leg)
            if part is None:
                continue
            model.emg.extend(c.shifted(onset) for c in part.emg)
            model.acc.extend(c.shifted(onset) for c in part.acc)
            model.tilts.extend(k.shifted(onset) for k in part.tilt)
        models[leg] = model
    return models
