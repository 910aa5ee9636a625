"""Per-kind event builders: cramps and every look-alike, in event-relative time.

Each builder draws its parameters from the schedule's generator and returns an
:class:`EventPlan` whose times start at the truth onset (t = 0). The scheduler then places it
and shifts every component to absolute night time.

The numbers come from ``DETECTION.md`` (crampsense design notes) and the sources it cites:
Minetto et al., J Neurophysiol 2009 (motor-unit firing during cramps); Khan & Burne 2007
(activity confined to part of a muscle); the overnight cramp recordings it summarises (ramp of
about 41 s to 2-8x baseline, about 2x afterwards); WASM 2016 scoring rules for periodic limb
movements; AASM 2018 for leg EMG sampling.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import numpy as np

from .components import (
    F64,
    LEAD_OFF_MODES,
    AccComponent,
    Bumps,
    EmgComponent,
    Envelope,
    LeadOff,
    Pop,
    PostureOp,
    Sines,
    Spikes,
    Tilt,
    WhiteNoise,
)
from .spec import ScriptedEvent
from .world import World

# --- cramps -------------------------------------------------------------------------------
#: Median cramp duration (s): DETECTION.md suggests a log-normal with median 1-2 min.
CRAMP_MEDIAN_S: Final = 90.0
#: Log-normal shape: 95 % of cramps between ~19 s and ~7 min, inside the consensus range of
#: seconds to about 10 min.
CRAMP_LOG_SIGMA: Final = 0.8
#: Onset ramp (s): overnight cramps rose over about 41 s; 10-45 s brackets that.
CRAMP_RAMP_S: Final = (10.0, 45.0)
#: The ramp takes at most this share of the cramp, so the second half is always plateau.
CRAMP_RAMP_MAX_FRACTION: Final = 0.5
#: Plateau level (total in-band RMS / floor RMS) drawn when not scripted: inside 3-8x.
CRAMP_PLATEAU_REL: Final = (3.6, 7.0)
#: The plateau never dips below this (the brief's "3-8x floor").
CRAMP_PLATEAU_MIN_REL: Final = 3.0
#: Irregular fluctuation of the plateau: relative SD and smoothing (s). Motor units fire
#: irregularly; the envelope wanders by ~10 % over seconds.
CRAMP_FLUCT_SD: Final = 0.10
CRAMP_FLUCT_LIMIT: Final = 0.15
CRAMP_FLUCT_SMOOTH_S: Final = 1.0
#: Control-point spacing of cramp envelopes (s): fine enough for the fastest edges used.
ENVELOPE_STEP_S: Final = 0.1
#: Level reached at the end of the post-cramp decay (x floor): recordings stayed ~2x after the
#: cramp; the brief asks for ~1.5x.
CRAMP_RESIDUAL_REL: Final = 1.5
#: Time to decay from the plateau to the residual level (s): "tens of seconds".
CRAMP_DECAY_S: Final = (20.0, 60.0)
#: Then from the residual back to the floor (s).
CRAMP_RESIDUAL_S: Final = (60.0, 180.0)
#: Second channel factor: its excess amplitude relative to the primary channel. With
#: probability CRAMP_WEAK_CHANNEL_P it barely rises (activity confined to one head).
CRAMP_SECOND_CHANNEL: Final = (0.4, 1.0)
CRAMP_WEAK_CHANNEL: Final = (0.05, 0.25)
CRAMP_WEAK_CHANNEL_P: Final = 0.3
#: Context probabilities: a painful cramp usually wakes; about half stand up; most stretch.
CRAMP_WOKE_P: Final = 0.8
CRAMP_GOT_UP_P: Final = 0.4
CRAMP_STRETCHED_P: Final = 0.6
#: Wake movement: starts at min(0.6 x ramp, 10 s) after onset ("within ~10 s"), lasts 2-6 s.
WAKE_MAX_DELAY_S: Final = 10.0
WAKE_DURATION_S: Final = (2.0, 6.0)
WAKE_ACC_MG: Final = (100.0, 400.0)
#: Forced stretch at the end of the cramp: 2-5 s, 1.3-1.6x the plateau, inside the cramp.
STRETCH_S: Final = (2.0, 5.0)
STRETCH_GAIN: Final = (1.3, 1.6)
#: Getting up after a cramp: walking 1-3 min, starting near the cramp's end.
GOT_UP_WALK_S: Final = (60.0, 180.0)
#: Quiet time kept before a cramp's ramp (s), so a detector sees a clean baseline.
CRAMP_GUARD_BEFORE_S: Final = 60.0

# --- generic ------------------------------------------------------------------------------
#: Quiet time kept around every event on its legs (s): longer than a 10-s analysis window.
GUARD_S: Final = 15.0
#: Rise/fall of phasic bursts (s): surface EMG bursts switch on within tens of ms.
BURST_EDGE_S: Final = 0.05

# --- look-alikes --------------------------------------------------------------------------
#: PLM (WASM 2016): bursts 0.5-10 s, >= 4 in a row at 10-90 s intervals. Here 0.5-5 s bursts,
#: base period 15-40 s (typical PLM periodicity 20-40 s), each interval jittered +-20 %.
PLM_BURSTS: Final = (4, 40)
PLM_PERIOD_S: Final = (15.0, 40.0)
PLM_INTERVAL_S: Final = (10.0, 90.0)
PLM_BURST_S: Final = (0.5, 5.0)
#: PLM amplitude: onset +8 µV over a 2-4 µV floor is ~3x; strong ones reach cramp levels.
PLM_LEVEL_REL: Final = (2.5, 10.0)
PLM_BILATERAL_P: Final = 0.3
PLM_ACC_MG: Final = (10.0, 50.0)
#: Rolling over: 3-20 s of EMG at 1-6x plus motion artefact and an orientation change.
ROLL_S: Final = (3.0, 20.0)
ROLL_LEVEL_REL: Final = (1.0, 6.0)
ROLL_ARTEFACT_UV: Final = (50.0, 400.0)
ROLL_ACC_MG: Final = (100.0, 500.0)
ROLL_TURN_S: Final = (1.0, 3.0)
#: Walking to the bathroom: out 20-60 s, standing 30-120 s, back 20-60 s.
WALK_LEG_S: Final = (20.0, 60.0)
WALK_PAUSE_S: Final = (30.0, 120.0)
#: Standing up / lying down takes about 3 s.
STAND_TRANSITION_S: Final = 3.0
#: Stride frequency (Hz): slow night-time walking at about one step per leg per second.
CADENCE_HZ: Final = (0.85, 1.1)
#: Calf push-off bursts while walking: 0.3-0.5 s at 4-10x floor.
GAIT_BURST_S: Final = (0.3, 0.5)
GAIT_LEVEL_REL: Final = (4.0, 10.0)
#: Tonic calf activity while standing still (excess amplitude, x floor).
STANDING_TONIC_REL: Final = (0.8, 1.5)
#: Hypnic jerk: one 75-250 ms burst at sleep onset, strong (5-15x), with a limb jerk.
JERK_S: Final = (0.075, 0.25)
JERK_LEVEL_REL: Final = (5.0, 15.0)
JERK_ACC_MG: Final = (100.0, 400.0)
#: ALMA / foot tremor: 0.1-0.7 s bursts at 0.5-3 Hz in runs of 5-20 s.
ALMA_RUN_S: Final = (5.0, 20.0)
ALMA_RATE_HZ: Final = (0.5, 3.0)
ALMA_LEVEL_REL: Final = (3.0, 8.0)
ALMA_ACC_MG: Final = (5.0, 30.0)
#: Fasciculations: isolated motor-unit potentials, 0.3-2 per second, 10-40 µV, 1-2 ms wide
#: (peak frequency 110-280 Hz), in episodes of 1-10 min. 1-s RMS barely rises.
FASC_EPISODE_S: Final = (60.0, 600.0)
FASC_RATE_HZ: Final = (0.3, 2.0)
FASC_UV: Final = (10.0, 40.0)
FASC_SIGMA_S: Final = (0.0008, 0.002)
#: ECG crosstalk: QRS-like potentials (Ricker width 7-12 ms, peak 19-32 Hz) at 50-80/min,
#: 15-60 µV, with 3 % beat-to-beat variability; episodes of 10-60 min.
ECG_EPISODE_S: Final = (600.0, 3600.0)
ECG_HR_BPM: Final = (50.0, 80.0)
ECG_UV: Final = (15.0, 60.0)
ECG_SIGMA_S: Final = (0.007, 0.012)
ECG_RR_VARIABILITY: Final = 0.03
#: Electrode pop: a step of 200-3000 µV decaying with tau 30-200 ms (gone within 0.15-1 s).
POP_UV: Final = (200.0, 3000.0)
POP_TAU_S: Final = (0.03, 0.2)
#: Truth offset of a pop: after this many time constants the step is below 1 %.
POP_TRUTH_TAUS: Final = 5.0
#: Mains hum: 50 Hz at 10-100 µV, 1-2.5 h, with a 150 Hz harmonic at 10 %.
HUM_S: Final = (3600.0, 9000.0)
HUM_UV: Final = (10.0, 100.0)
HUM_FREQ_HZ: Final = 50.0
HUM_FREQ_ERROR_HZ: Final = 0.02
HUM_HARMONIC_REL: Final = 0.1
HUM_FADE_S: Final = 5.0
#: Baseline wander: 3-6 sinusoids at 0.05-2 Hz, 100-1500 µV in all, for 2-20 min.
WANDER_S: Final = (120.0, 1200.0)
WANDER_FREQ_HZ: Final = (0.05, 2.0)
WANDER_UV: Final = (100.0, 1500.0)
#: Lead-off: 2-20 min of flat line, rail, or huge noise.
LEAD_OFF_S: Final = (120.0, 1200.0)
#: Amplifier rail (µV): far outside surface EMG (which stays below ~5 mV) and beyond the
#: reference band's ±8191.75 µV full scale, so a simulated band clips and flags it.
LEAD_OFF_RAIL_UV: Final = 10000.0
LEAD_OFF_NOISE_UV: Final = (200.0, 2000.0)
LEAD_OFF_HUM_UV: Final = (100.0, 1000.0)
#: Share of the night an event of a long kind may take, so short test nights still fit all.
MAX_NIGHT_FRACTION: Final[dict[str, float]] = {
    "cramp": 0.25,
    "plm_train": 0.15,
    "walk": 0.1,
    "fasciculation": 0.05,
    "ecg_crosstalk": 0.1,
    "mains_hum": 0.2,
    "baseline_wander": 0.05,
    "lead_off": 0.08,
    "tone_change": 0.25,
    "electrode_detach": 0.1,
    "restless_wake": 0.15,
}
#: Random events per 8-h night (inclusive range), scaled to the night length, at least one.
COUNT_PER_8H: Final[dict[str, tuple[int, int]]] = {
    "plm_train": (1, 3),
    "roll_over": (4, 10),
    "walk": (1, 2),
    "hypnic_jerk": (1, 2),
    "alma": (1, 3),
    "fasciculation": (1, 3),
    "ecg_crosstalk": (1, 1),
    "electrode_pop": (2, 6),
    "mains_hum": (1, 1),
    "baseline_wander": (1, 2),
    "lead_off": (1, 1),
}
#: Where an event may be placed: during sleep, near sleep onset, or anywhere in the night.
PLACEMENT_WINDOW: Final[dict[str, str]] = {
    "cramp": "sleep",
    "plm_train": "sleep",
    "roll_over": "sleep",
    "walk": "sleep",
    "alma": "sleep",
    "hypnic_jerk": "onset",
    "fasciculation": "any",
    "ecg_crosstalk": "any",
    "electrode_pop": "any",
    "mains_hum": "any",
    "baseline_wander": "any",
    "lead_off": "any",
    "reposition": "sleep",
    "tone_change": "any",
    "electrode_detach": "any",
    "restless_wake": "sleep",
    "bed_partner": "any",
    "strap_slip": "any",
}
#: World nights: kinds that never overlap one another on a leg (they change the posture, take
#: the signal away, or are the events scored); every other kind may overlap anything.
EXCLUSIVE_KINDS: Final = frozenset({"cramp", "walk", "roll_over", "lead_off",
                                    "electrode_detach"})
#: Kinds that always involve every simulated leg.
BILATERAL_KINDS: Final = frozenset({"roll_over", "walk", "hypnic_jerk"})


@dataclass
class LegPart:
    """What an event does on one leg (event-relative seconds)."""

    emg: list[EmgComponent] = field(default_factory=list)
    acc: list[AccComponent] = field(default_factory=list)
    truth: tuple[float, float] | None = None  # None: context only, no truth row
    tilt: list[Tilt] = field(default_factory=list)  # changes of this leg's own roll


@dataclass
class CrampInfo:
    leg: str
    peak_rel: float
    woke: bool
    got_up: bool
    stretched: bool


@dataclass
class EventPlan:
    """A built event before placement (times relative to its truth onset)."""

    kind: str
    parts: dict[str, LegPart]
    posture: list[PostureOp] = field(default_factory=list)
    cramp: CrampInfo | None = None
    guard_before_s: float = GUARD_S
    guard_after_s: float = GUARD_S

    def footprint(self, leg: str) -> tuple[float, float]:
        """Span (relative, guards included) that no other event may touch on ``leg``."""
        part = self.parts[leg]
        los: list[float] = [c.lo_s for c in part.emg] + [c.lo_s for c in part.acc]
        his: list[float] = [c.hi_s for c in part.emg] + [c.hi_s for c in part.acc]
        if part.truth is not None:
            los.append(part.truth[0])
            his.append(part.truth[1])
        for op in self.posture:
            los.append(op.t0_s)
            his.append(max(op.t1_s, op.t3_s))
        return min(los) - self.guard_before_s, max(his) + self.guard_after_s


@dataclass
class Ctx:
    """What builders need besides the scripted overrides."""

    rng: np.random.Generator
    legs: tuple[str, ...]
    n_ch: int
    night_s: float
    cramp_min_s: float
    cramp_max_s: float
    world: World | None = None

    def w(self, key: str, legacy: tuple[float, float]) -> tuple[float, float]:
        """The world's range for ``key``, or the legacy catalogue's ``legacy`` range."""
        return legacy if self.world is None else self.world.prior(key)

    def prob(self, key: str, legacy: float) -> float:
        """The world's probability ``key``, or the legacy catalogue's."""
        return legacy if self.world is None else self.world.probs[key]

    def u(self, bounds: tuple[float, float]) -> float:
        return float(self.rng.uniform(bounds[0], bounds[1]))

    def capped(self, kind: str, bounds: tuple[float, float]) -> tuple[float, float]:
        """``bounds`` shrunk to at most the kind's share of the night."""
        cap = MAX_NIGHT_FRACTION.get(kind, 1.0) * self.night_s
        hi = min(bounds[1], cap)
        return min(bounds[0], hi), hi

    def channel_factors(self, lo: float, hi: float) -> F64:
        """One random primary channel at 1.0, the others U(lo, hi)."""
        f = self.rng.uniform(lo, hi, self.n_ch)
        f[int(self.rng.integers(self.n_ch))] = 1.0
        return f


def bursts_envelope(starts: F64, durs: F64, levels: F64, edge_s: float = BURST_EDGE_S) -> Envelope:
    """Trapezoidal bursts as one :class:`Envelope`.

    Parameters
    ----------
    starts, durs : ndarray, shape (m,)
        Burst start times and durations (s); bursts must not overlap.
    levels : ndarray, shape (n_ch, m)
        Excess amplitude of each burst per channel (× floor).
    """
    order = np.argsort(starts)
    starts, durs, levels = starts[order], durs[order], levels[:, order]
    if starts.size > 1:  # keep a gap so control times stay strictly increasing
        gap_limit = np.append(np.diff(starts) - 1e-3, np.inf)
        durs = np.minimum(durs, gap_limit)
    edge = np.minimum(edge_s, durs / 3.0)
    t = np.stack([starts, starts + edge, starts + durs - edge, starts + durs], axis=1).ravel()
    zero = np.zeros_like(levels)
    amp = np.stack([zero, levels, levels, zero], axis=2).reshape(levels.shape[0], -1)
    return Envelope(t_s=t, amp=amp)


def _smooth_noise(rng: np.random.Generator, n: int, smooth_pts: float) -> F64:
    """Unit-SD Gaussian-smoothed noise of length ``n``."""
    half = max(1, int(3 * smooth_pts))
    raw = rng.standard_normal(n + 2 * half)
    k = np.exp(-0.5 * (np.arange(-half, half + 1) / max(smooth_pts, 1e-9)) ** 2)
    sm = np.convolve(raw, k / k.sum(), mode="valid")
    sd = float(sm.std())
    out: F64 = (sm - sm.mean()) / (sd if sd > 0 else 1.0)
    return out


def _gait(ctx: Ctx, t0_s: float, t1_s: float) -> dict[str, tuple[Envelope, Sines]]:
    """Alternating calf bursts and step accelerations on every leg over ``[t0_s, t1_s]``."""
    cadence = ctx.u(CADENCE_HZ)
    out: dict[str, tuple[Envelope, Sines]] = {}
    n_steps = max(1, int((t1_s - t0_s - 0.6) * cadence))
    harmonics = np.array([1.0, 2.0, 3.0]) * cadence
    for j, leg in enumerate(ctx.legs):
        cycle_offset = 0.5 * j  # legs in antiphase
        k = np.arange(n_steps)
        starts = t0_s + (k + cycle_offset) / cadence + ctx.rng.uniform(-0.02, 0.02, n_steps)
        keep = starts + GAIT_BURST_S[1] < t1_s
        starts = starts[keep]
        durs = ctx.rng.uniform(*GAIT_BURST_S, starts.size)
        level = ctx.rng.uniform(*GAIT_LEVEL_REL, starts.size)
        factors = ctx.channel_factors(0.6, 1.0)
        env = bursts_envelope(starts, durs, factors[:, None] * level[None, :])
        amp = np.array(
            [
                [ctx.u((150.0, 300.0)), ctx.u((80.0, 200.0)), ctx.u((30.0, 80.0))],
                [ctx.u((50.0, 150.0)), ctx.u((20.0, 80.0)), ctx.u((10.0, 40.0))],
                [ctx.u((100.0, 250.0)), ctx.u((50.0, 150.0)), ctx.u((20.0, 60.0))],
            ]
        )
        phase = ctx.rng.uniform(0, 2 * np.pi, (3, 3)) - 2 * np.pi * np.array([1.0, 2.0, 3.0]) * (
            cycle_offset + t0_s * cadence
        )
        acc = Sines(t0_s, t1_s, 1.0, harmonics, amp, phase)
        out[leg] = (env, acc)
    return out


def _movement(
    ctx: Ctx,
    t0_s: float,
    t1_s: float,
    n: int,
    *,
    amp_mg: tuple[float, float],
    sigma_s: tuple[float, float],
) -> Bumps:
    """Random limb movement: ``n`` Gaussian bumps per axis inside ``[t0_s, t1_s]`` (mg).

    An event squeezed into a very short night can leave an empty span (``t1_s < t0_s``); the
    bumps then sit at ``t0_s``.
    """
    centres = np.sort(ctx.rng.uniform(t0_s, max(t0_s, t1_s), n))
    sig = ctx.rng.uniform(sigma_s[0], sigma_s[1], n)
    amp = ctx.rng.uniform(*amp_mg, (3, n)) * ctx.rng.choice([-1.0, 1.0], (3, n))
    return Bumps(centres, sig, amp)


def draw_cramp_duration(ctx: Ctx) -> float:
    """Log-normal (median 90 s) duration truncated to the spec's bounds (and the night)."""
    lo = ctx.cramp_min_s
    hi = max(lo, min(ctx.cramp_max_s, MAX_NIGHT_FRACTION["cramp"] * ctx.night_s))
    draws = np.exp(math.log(CRAMP_MEDIAN_S) + CRAMP_LOG_SIGMA * ctx.rng.standard_normal(64))
    inside = draws[(draws >= lo) & (draws <= hi)]
    return float(inside[0]) if inside.size else float(np.clip(CRAMP_MEDIAN_S, lo, hi))


def build_cramp(ctx: Ctx, leg: str, ev: ScriptedEvent | None) -> EventPlan:
    """A cramp on ``leg``: ramp, fluctuating plateau, optional stretch, decay; context."""
    rng = ctx.rng
    dur = (
        ev.duration_s
        if ev is not None and ev.duration_s is not None
        else (draw_cramp_duration(ctx))
    )
    level = (
        ev.plateau_rel
        if ev is not None and ev.plateau_rel is not None
        else (ctx.u(ctx.w("cramp_plateau_rel", CRAMP_PLATEAU_REL)))
    )
    world = ctx.world is not None

    def flag(value: bool | None, p: float) -> bool:
        drawn = bool(rng.random() < p)
        return drawn if value is None else value

    woke = flag(None if ev is None else ev.woke, ctx.prob("cramp_woke", CRAMP_WOKE_P))
    got_up = flag(None if ev is None else ev.got_up, ctx.prob("cramp_got_up", CRAMP_GOT_UP_P))
    stretched = flag(None if ev is None else ev.stretched,
                     ctx.prob("cramp_stretched", CRAMP_STRETCHED_P))
    ramp = min(ctx.u(ctx.w("cramp_ramp_s", CRAMP_RAMP_S)), CRAMP_RAMP_MAX_FRACTION * dur)
    decay_s = ctx.u(ctx.w("cramp_decay_s", CRAMP_DECAY_S))
    resid_s = ctx.u(ctx.w("cramp_residual_s", CRAMP_RESIDUAL_S))
    # (legacy nights draw nothing here: their random stream stays as it was)
    fluct_sd = ctx.u(ctx.w("cramp_fluct_sd", (0.0, 0.0))) if world else CRAMP_FLUCT_SD
    resid_rel = (ctx.u(ctx.w("cramp_residual_rel", (0.0, 0.0))) if world
                 else CRAMP_RESIDUAL_REL)

    # Total in-band level e(t) (x floor) on a fine grid from onset to the end of the residual.
    step = ENVELOPE_STEP_S
    n_in = round(dur / step) + 1
    t_in = np.linspace(0.0, dur, n_in)
    limit = CRAMP_FLUCT_LIMIT if not world else 1.5 * fluct_sd
    fluct = 1.0 + np.clip(
        fluct_sd * _smooth_noise(rng, n_in, CRAMP_FLUCT_SMOOTH_S / step), -limit, limit
    )
    plateau = np.maximum(level * fluct, CRAMP_PLATEAU_MIN_REL if not world else 1.2)
    u = np.clip(t_in / ramp, 0.0, 1.0)
    e_in = 1.0 + (plateau - 1.0) * (u * u * (3.0 - 2.0 * u))  # smoothstep ramp
    if stretched:
        st_s = min(ctx.u(ctx.w("cramp_stretch_s", STRETCH_S)), 0.3 * dur)
        st_gain = ctx.u(ctx.w("cramp_stretch_gain", STRETCH_GAIN))
        edge = min(0.3, st_s / 3)
        w = np.clip(np.minimum(t_in - (dur - st_s), dur - t_in + edge) / edge, 0.0, 1.0)
        e_in *= 1.0 + (st_gain - 1.0) * w
    t_dec = np.arange(step, decay_s + step / 2, step)
    tau = decay_s / 4.0
    e_end = float(e_in[-1])
    resid_rel = min(resid_rel, e_end)
    e_dec = resid_rel + (e_end - resid_rel) * np.exp(-t_dec / tau)
    t_res = np.array([decay_s + resid_s])
    t_all = np.concatenate([t_in, dur + t_dec, dur + t_res])
    e_all = np.concatenate([e_in, e_dec, [1.0]])
    excess = np.sqrt(np.maximum(e_all * e_all - 1.0, 0.0))
    weak_p = ctx.prob("cramp_weak_channel", CRAMP_WEAK_CHANNEL_P)
    second = CRAMP_WEAK_CHANNEL if rng.random() < weak_p else CRAMP_SECOND_CHANNEL
    factors = ctx.channel_factors(*second)
    env = Envelope(t_s=t_all, amp=factors[:, None] * excess[None, :])
    # peak_rel: the largest 1-s moving RMS of the designed level over [onset, offset].
    win = max(1, round(1.0 / step))
    ms = np.convolve(e_in * e_in, np.ones(win) / win, mode="valid")
    peak_rel = float(np.sqrt(ms.max())) if ms.size else float(e_in.max())

    parts: dict[str, LegPart] = {leg: LegPart(emg=[env], truth=(0.0, dur))}
    if woke:
        if world:  # the painful awakening comes with or after the ramp (DETECTION.md)
            t_w = min(max(0.5, ramp * ctx.u(ctx.w("cramp_wake_delay_of_ramp", (0.6, 0.6)))),
                      0.8 * dur)
        else:
            t_w = min(0.6 * ramp, WAKE_MAX_DELAY_S)
        parts[leg].acc.append(
            _movement(
                ctx, t_w, t_w + ctx.u(WAKE_DURATION_S), 6,
                amp_mg=ctx.w("cramp_wake_mg", WAKE_ACC_MG), sigma_s=(0.15, 0.6)
            )
        )
    posture: list[PostureOp] = []
    if got_up:
        walk_s = ctx.u(GOT_UP_WALK_S)
        up0, up1 = dur - 1.0, dur - 1.0 + STAND_TRANSITION_S
        w0, w1 = up1, up1 + walk_s
        posture.append(PostureOp("stand", up0, up1, w1, w1 + STAND_TRANSITION_S))
        for lg, (genv, gacc) in _gait(ctx, w0, w1).items():
            part = parts.setdefault(lg, LegPart())
            part.emg.append(genv)
            part.acc.append(gacc)
    return EventPlan(
        kind="cramp",
        parts=parts,
        posture=posture,
        cramp=CrampInfo(leg, peak_rel, woke, got_up, stretched),
        guard_before_s=CRAMP_GUARD_BEFORE_S if not world else 0.0,
        guard_after_s=GUARD_S if not world else 0.0,
    )


def build_plm(ctx: Ctx, legs: tuple[str, ...], ev: ScriptedEvent | None) -> EventPlan:
    rng = ctx.rng
    period = ctx.u(ctx.w("plm_period_s", PLM_PERIOD_S))
    if ev is not None and ev.n_bursts is not None:
        n = ev.n_bursts
    else:
        cap_s = ctx.capped("plm_train", (0.0, math.inf))[1]
        n_max = max(PLM_BURSTS[0], min(PLM_BURSTS[1], int(cap_s / (1.2 * period)) + 1))
        n = int(rng.integers(PLM_BURSTS[0], n_max + 1))
    intervals = np.clip(period * rng.uniform(0.8, 1.2, n - 1), *PLM_INTERVAL_S)
    starts = np.concatenate([[0.0], np.cumsum(intervals)])
    durs = rng.uniform(*ctx.w("plm_burst_s", PLM_BURST_S), n)
    if ctx.world is not None and len(legs) > 1:  # WASM 2016: bilateral bursts up to 15 s
        durs = np.minimum(durs * rng.uniform(1.0, 1.5, n), 15.0)
    durs = np.minimum(durs, np.append(intervals, np.inf) - 2.0)
    train_level = ctx.u(ctx.w("plm_level_rel", PLM_LEVEL_REL))
    parts: dict[str, LegPart] = {}
    for j, leg in enumerate(legs):
        s = starts if j == 0 else np.maximum(starts + rng.uniform(-0.3, 0.3, n), 0.0)
        d = durs if j == 0 else durs * rng.uniform(0.8, 1.2, n)
        d = np.minimum(d, np.append(np.diff(s), np.inf) - 1.0)
        levels = train_level * rng.uniform(0.75, 1.25, n)
        env = bursts_envelope(s, d, ctx.channel_factors(0.4, 1.0)[:, None] * levels[None, :])
        centres = s + d / 2
        sig = np.clip(d / 4, 0.1, 0.5)
        amp = rng.uniform(*ctx.w("plm_acc_mg", PLM_ACC_MG), (3, n)) * rng.choice([-1.0, 1.0],
                                                                                 (3, n))
        amp[1] *= 0.3  # dorsiflexion moves the shank mostly in its sagittal plane
        parts[leg] = LegPart(
            emg=[env], acc=[Bumps(centres, sig, amp)], truth=(float(s[0]), float((s + d)[-1]))
        )
    return EventPlan("plm_train", parts)


def build_roll(ctx: Ctx, ev: ScriptedEvent | None) -> EventPlan:
    rng = ctx.rng
    dur = (ev.duration_s if ev is not None and ev.duration_s is not None
           else ctx.u(ctx.w("roll_s", ROLL_S)))
    parts: dict[str, LegPart] = {}
    n_pts = max(3, int(dur / 0.25) + 1)
    t = np.linspace(0.0, dur, n_pts)
    for leg in ctx.legs:
        lv = rng.uniform(*ctx.w("roll_level_rel", ROLL_LEVEL_REL), n_pts)
        lv[0] = lv[-1] = 0.0
        env = Envelope(t, ctx.channel_factors(0.5, 1.0)[:, None] * lv[None, :])
        m = int(rng.integers(3, 11))
        sig = rng.uniform(0.05, min(0.5, dur / 8), m)
        common = rng.uniform(*ROLL_ARTEFACT_UV, m) * rng.choice([-1.0, 1.0], m)
        art = Bumps(
            np.sort(rng.uniform(0.2 * dur, 0.8 * dur, m)),
            sig,
            ctx.channel_factors(0.3, 1.0)[:, None] * common[None, :],
        )
        move = _movement(
            ctx,
            0.2 * dur,
            0.8 * dur,
            int(rng.integers(3, 9)),
            amp_mg=ROLL_ACC_MG,
            sigma_s=(0.15, min(1.0, dur / 8)),
        )
        parts[leg] = LegPart(emg=[env, art], acc=[move], truth=(0.0, dur))
    turn = min(ctx.u(ROLL_TURN_S), 0.5 * dur)
    posture = [
        PostureOp("roll", dur / 2 - turn / 2, dur / 2 + turn / 2, choice=float(rng.random()))
    ]
    return EventPlan("roll_over", parts, posture)


def build_walk(ctx: Ctx, ev: ScriptedEvent | None) -> EventPlan:
    w1, pause, w2 = ctx.u(WALK_LEG_S), ctx.u(WALK_PAUSE_S), ctx.u(WALK_LEG_S)
    total = 2 * STAND_TRANSITION_S + w1 + pause + w2
    hi = ctx.capped("walk", (0.0, total))[1]
    target = ev.duration_s if ev is not None and ev.duration_s is not None else min(total, hi)
    scale = max(target - 2 * STAND_TRANSITION_S, 10.0) / (w1 + pause + w2)
    w1, pause, w2 = w1 * scale, pause * scale, w2 * scale
    dur = 2 * STAND_TRANSITION_S + w1 + pause + w2
    a0 = STAND_TRANSITION_S
    g1 = _gait(ctx, a0, a0 + w1)
    g2 = _gait(ctx, a0 + w1 + pause, a0 + w1 + pause + w2)
    parts: dict[str, LegPart] = {}
    for leg in ctx.legs:
        tonic = ctx.u(STANDING_TONIC_REL)
        p0, p1 = a0 + w1, a0 + w1 + pause
        # calves work while standing up, hold a low tone while standing, work lying down
        lv = np.array([0.0, 3.0, 0.0, 0.0, tonic, tonic, 0.0, 0.0, 3.0, 0.0])
        tt = np.array(
            [
                0.0,
                1.0,
                a0 - 0.2,
                p0 - 0.3,
                p0 + 0.3,
                p1 - 0.3,
                p1 + 0.3,
                dur - a0 + 0.2,
                dur - 1.0,
                dur,
            ]
        )
        tonic_env = Envelope(tt, ctx.channel_factors(0.5, 1.0)[:, None] * lv[None, :])
        sway = _movement(ctx, p0 + 2.0, p1 - 2.0, 4, amp_mg=(10.0, 30.0), sigma_s=(0.5, 1.5))
        ups = _movement(ctx, 0.5, a0 - 0.5, 3, amp_mg=(150.0, 400.0), sigma_s=(0.2, 0.5))
        downs = _movement(
            ctx, dur - a0 + 0.5, dur - 0.5, 3, amp_mg=(150.0, 400.0), sigma_s=(0.2, 0.5)
        )
        parts[leg] = LegPart(
            emg=[tonic_env, g1[leg][0], g2[leg][0]],
            acc=[g1[leg][1], g2[leg][1], sway, ups, downs],
            truth=(0.0, dur),
        )
    return EventPlan("walk", parts, [PostureOp("stand", 0.0, a0, dur - a0, dur)])


def build_jerk(ctx: Ctx, ev: ScriptedEvent | None) -> EventPlan:
    del ev
    rng = ctx.rng
    base = ctx.u(JERK_S)
    level = ctx.u(JERK_LEVEL_REL)
    parts: dict[str, LegPart] = {}
    for j, leg in enumerate(ctx.legs):
        s = 0.0 if j == 0 else float(rng.uniform(0.0, 0.03))
        d = base * float(rng.uniform(0.85, 1.15)) if j else base
        d = float(np.clip(d, *JERK_S))
        lv = level * float(rng.uniform(0.8, 1.2))
        env = bursts_envelope(
            np.array([s]), np.array([d]), ctx.channel_factors(0.5, 1.0)[:, None] * lv, 0.015
        )
        move = _movement(ctx, s + d / 2, s + d / 2, 1, amp_mg=JERK_ACC_MG, sigma_s=(0.05, 0.12))
        parts[leg] = LegPart(emg=[env], acc=[move], truth=(s, s + d))
    return EventPlan("hypnic_jerk", parts)


def build_alma(ctx: Ctx, leg: str, ev: ScriptedEvent | None) -> EventPlan:
    rng = ctx.rng
    run = (ev.duration_s if ev is not None and ev.duration_s is not None
           else ctx.u(ctx.w("alma_run_s", ALMA_RUN_S)))
    rate = ctx.u(ALMA_RATE_HZ)
    n = max(2, int(run * rate))
    starts = np.arange(n) / rate + rng.uniform(-0.05, 0.05, n) / rate
    starts -= starts[0]
    durs = rng.uniform(0.1, min(0.7, 0.6 / rate), n)
    level = ctx.u(ctx.w("alma_level_rel", ALMA_LEVEL_REL)) * rng.uniform(0.8, 1.2, n)
    env = bursts_envelope(starts, durs, ctx.channel_factors(0.4, 1.0)[:, None] * level[None, :])
    amp = rng.uniform(*ALMA_ACC_MG, (3, n)) * rng.choice([-1.0, 1.0], (3, n))
    move = Bumps(starts + durs / 2, np.clip(durs / 3, 0.04, 0.2), amp)
    return EventPlan(
        "alma", {leg: LegPart(emg=[env], acc=[move], truth=(0.0, float((starts + durs)[-1])))}
    )


def build_fasciculation(ctx: Ctx, leg: str, ev: ScriptedEvent | None) -> EventPlan:
    rng = ctx.rng
    dur = _duration(ctx, "fasciculation", FASC_EPISODE_S, ev)
    n = max(4, int(rng.poisson(ctx.u(FASC_RATE_HZ) * dur)))
    times = np.sort(rng.uniform(0.0, dur, n))
    amp = np.tile(rng.uniform(*FASC_UV, n) * rng.choice([-1.0, 1.0], n), (ctx.n_ch, 1))
    spill = rng.uniform(0.0, 0.3, (ctx.n_ch, n))
    primary = rng.integers(ctx.n_ch, size=n)
    spill[primary, np.arange(n)] = 1.0
    spikes = Spikes(times, rng.uniform(*FASC_SIGMA_S, n), amp * spill)
    return EventPlan("fasciculation", {leg: LegPart(emg=[spikes], truth=(0.0, dur))})


def build_ecg(ctx: Ctx, leg: str, ev: ScriptedEvent | None) -> EventPlan:
    rng = ctx.rng
    dur = _duration(ctx, "ecg_crosstalk", ECG_EPISODE_S, ev)
    rr0 = 60.0 / ctx.u(ECG_HR_BPM)
    n = int(dur / rr0) + 2
    ar = np.cumsum(rng.standard_normal(n)) * 0.2
    ar = ar - np.linspace(ar[0], ar[-1], n)  # bounded wander of the beat interval
    rr = rr0 * (1.0 + ECG_RR_VARIABILITY * np.clip(ar, -3, 3) / 3 + 0.01 * rng.standard_normal(n))
    times = ctx.u((0.0, rr0)) + np.concatenate([[0.0], np.cumsum(rr[:-1])])
    times = times[times < dur]
    m = times.size
    chan = rng.uniform(*ECG_UV, ctx.n_ch) * rng.choice([-1.0, 1.0], ctx.n_ch)
    amp = chan[:, None] * rng.uniform(0.9, 1.1, m)[None, :]
    spikes = Spikes(times, np.full(m, ctx.u(ECG_SIGMA_S)), amp)
    return EventPlan("ecg_crosstalk", {leg: LegPart(emg=[spikes], truth=(0.0, dur))})


def build_pop(ctx: Ctx, leg: str, ev: ScriptedEvent | None) -> EventPlan:
    del ev
    rng = ctx.rng
    tau = ctx.u(POP_TAU_S)
    amp = ctx.u(POP_UV) * float(rng.choice([-1.0, 1.0])) * ctx.channel_factors(0.0, 0.2)
    return EventPlan(
        "electrode_pop", {leg: LegPart(emg=[Pop(0.0, tau, amp)], truth=(0.0, POP_TRUTH_TAUS * tau))}
    )


def build_hum(ctx: Ctx, leg: str, ev: ScriptedEvent | None) -> EventPlan:
    rng = ctx.rng
    dur = _duration(ctx, "mains_hum", HUM_S, ev)
    f0 = HUM_FREQ_HZ + ctx.u((-HUM_FREQ_ERROR_HZ, HUM_FREQ_ERROR_HZ))
    a = ctx.u(HUM_UV) * ctx.channel_factors(0.5, 1.0)
    amp = np.stack([a, HUM_HARMONIC_REL * a], axis=1)
    ph = rng.uniform(0, 2 * np.pi, 2)[None, :] + rng.uniform(-0.3, 0.3, (ctx.n_ch, 2))
    hum = Sines(0.0, dur, min(HUM_FADE_S, dur / 4), np.array([f0, 3 * f0]), amp, ph)
    return EventPlan("mains_hum", {leg: LegPart(emg=[hum], truth=(0.0, dur))})


def build_wander(ctx: Ctx, leg: str, ev: ScriptedEvent | None) -> EventPlan:
    rng = ctx.rng
    dur = _duration(ctx, "baseline_wander", WANDER_S, ev)
    k = int(rng.integers(3, 7))
    freqs = np.exp(rng.uniform(math.log(WANDER_FREQ_HZ[0]), math.log(WANDER_FREQ_HZ[1]), k))
    weights = rng.dirichlet(np.ones(k))
    total = ctx.u(WANDER_UV)
    amp = ctx.channel_factors(0.5, 1.0)[:, None] * (total * weights)[None, :]
    ph = rng.uniform(0, 2 * np.pi, (ctx.n_ch, k))
    wander = Sines(0.0, dur, min(10.0, 0.1 * dur), freqs, amp, ph)
    return EventPlan("baseline_wander", {leg: LegPart(emg=[wander], truth=(0.0, dur))})


def build_lead_off(ctx: Ctx, leg: str, ev: ScriptedEvent | None) -> EventPlan:
    rng = ctx.rng
    dur = _duration(ctx, "lead_off", LEAD_OFF_S, ev)
    mode = LEAD_OFF_MODES[int(rng.integers(len(LEAD_OFF_MODES)))]
    hum = 0.0
    if mode == "flat":
        level = rng.uniform(-5.0, 5.0, ctx.n_ch)
    elif mode == "rail":
        level = LEAD_OFF_RAIL_UV * rng.choice([-1.0, 1.0], ctx.n_ch)
    else:
        level = np.full(ctx.n_ch, ctx.u(LEAD_OFF_NOISE_UV))
        hum = ctx.u(LEAD_OFF_HUM_UV)
    comp = LeadOff(0.0, dur, mode, level, hum)
    return EventPlan("lead_off", {leg: LegPart(emg=[comp], truth=(0.0, dur))})


def _duration(ctx: Ctx, kind: str, bounds: tuple[float, float], ev: ScriptedEvent | None) -> float:
    if ev is not None and ev.duration_s is not None:
        return ev.duration_s
    return ctx.u(ctx.capped(kind, bounds))


# --- world-only look-alikes (DETECTION.md, "What the first evaluation missed") --------------
#: Voluntary movements are not tonic: their level wanders by this much around the drawn level
#: (relative, uniform), on control points this far apart (s).
VOLUNTARY_WANDER: Final = (0.5, 1.2)
VOLUNTARY_STEP_S: Final = 0.3
#: A few pops inside a detachment besides the two at its ends (inclusive range).
DETACH_INNER_POPS: Final = (0, 5)


def _voluntary_env(ctx: Ctx, t0_s: float, dur_s: float, level: float, *, rise_s: float,
                   factors: F64) -> Envelope:
    """A voluntary contraction: quick rise, irregular level, quick fall (excess amplitude)."""
    rise = min(rise_s, dur_s / 3.0)
    n_mid = max(1, int((dur_s - 2 * rise) / VOLUNTARY_STEP_S))
    mid_t = np.linspace(t0_s + rise, t0_s + dur_s - rise, n_mid + 1)
    mid_a = level * ctx.rng.uniform(*VOLUNTARY_WANDER, mid_t.size)
    t = np.concatenate([[t0_s], mid_t, [t0_s + dur_s]])
    a = np.concatenate([[0.0], mid_a, [0.0]])
    t = np.maximum.accumulate(t + np.arange(t.size) * 1e-6)  # strictly increasing
    return Envelope(t, factors[:, None] * a[None, :])


def build_reposition(ctx: Ctx, leg: str, ev: ScriptedEvent | None) -> EventPlan:
    """Voluntary repositioning of one leg: a sustained unilateral contraction 3-45 s at 5-30x,
    movement of that leg from the first second, and a new resting roll of that leg."""
    dur = _duration(ctx, "reposition", ctx.w("reposition_s", (3.0, 45.0)), ev)
    level = ctx.u(ctx.w("reposition_level_rel", (5.0, 30.0)))
    env = _voluntary_env(ctx, 0.0, dur, level,
                         rise_s=ctx.u(ctx.w("reposition_rise_s", (0.1, 1.0))),
                         factors=ctx.channel_factors(0.4, 1.0))
    amp = ctx.w("reposition_acc_mg", (50.0, 400.0))
    n_move = max(2, int(dur / 2.0))
    move = _movement(ctx, 0.3, max(0.6, min(dur, 4.0)), 3, amp_mg=amp, sigma_s=(0.15, 0.6))
    more = _movement(ctx, 0.3, dur, n_move, amp_mg=(0.2 * amp[0], 0.6 * amp[1]),
                     sigma_s=(0.2, 1.0))
    roll = ctx.u(ctx.w("reposition_roll_deg", (10.0, 45.0))) * float(ctx.rng.choice([-1, 1]))
    turn = min(dur, ctx.u((0.5, 3.0)))
    tilt = Tilt(0.3, 0.3 + turn, roll)
    return EventPlan("reposition", {leg: LegPart(emg=[env], acc=[move, more], truth=(0.0, dur),
                                                 tilt=[tilt])})


def build_tone(ctx: Ctx, legs: tuple[str, ...], ev: ScriptedEvent | None) -> EventPlan:
    """A slow change of muscle tone: 1.5-3x for 10-60 min with ramps of about a minute."""
    dur = _duration(ctx, "tone_change", ctx.w("tone_s", (600.0, 3600.0)), ev)
    ramp = min(ctx.u(ctx.w("tone_ramp_s", (30.0, 120.0))), dur / 3.0)
    parts: dict[str, LegPart] = {}
    for leg in legs:
        total = ctx.u(ctx.w("tone_level_rel", (1.5, 3.0)))
        a = math.sqrt(max(total * total - 1.0, 0.0))
        n_pts = max(4, int(dur / 30.0))
        t = np.linspace(ramp, dur - ramp, n_pts)
        lv = a * (1.0 + 0.1 * _smooth_noise(ctx.rng, n_pts, 2.0))  # slow +-10 % wander
        tt = np.concatenate([[0.0], t, [dur]])
        aa = np.concatenate([[0.0], np.maximum(lv, 0.0), [0.0]])
        parts[leg] = LegPart(emg=[Envelope(tt, ctx.channel_factors(0.6, 1.0)[:, None]
                                           * aa[None, :])], truth=(0.0, dur))
    return EventPlan("tone_change", parts)


def build_detach(ctx: Ctx, leg: str, ev: ScriptedEvent | None) -> EventPlan:
    """Partial electrode detachment: broadband noise 50-300 µV for 1-10 min, pops at both
    ends and a few inside; the amplifier's lead-off flag stays low (contact is partial)."""
    rng = ctx.rng
    dur = _duration(ctx, "electrode_detach", ctx.w("detach_s", (60.0, 600.0)), ev)
    level = ctx.u(ctx.w("detach_noise_uv", (50.0, 300.0))) * ctx.channel_factors(0.0, 0.4)
    comps: list[EmgComponent] = [WhiteNoise(0.0, dur, min(1.0, dur / 10), level)]
    k = int(rng.integers(DETACH_INNER_POPS[0], DETACH_INNER_POPS[1] + 1))
    for t0 in [0.0, *np.sort(rng.uniform(0.0, dur, k)).tolist(), dur]:
        amp = ctx.u(ctx.w("detach_pop_uv", (200.0, 3000.0))) * float(rng.choice([-1.0, 1.0]))
        comps.append(Pop(float(t0), ctx.u(POP_TAU_S), amp * ctx.channel_factors(0.0, 0.3)))
    return EventPlan("electrode_detach", {leg: LegPart(emg=comps, truth=(0.0, dur))})


def build_restless(ctx: Ctx, legs: tuple[str, ...], ev: ScriptedEvent | None) -> EventPlan:
    """A restless wake period: voluntary movements of one or both legs every 10-60 s for
    5-20 min, each 2-15 s, with movement on the moving leg's accelerometer."""
    rng = ctx.rng
    dur = _duration(ctx, "restless_wake", ctx.w("restless_s", (300.0, 1200.0)), ev)
    parts: dict[str, LegPart] = {leg: LegPart(truth=(0.0, dur)) for leg in legs}
    t = 0.0
    while True:
        move_s = ctx.u(ctx.w("restless_move_s", (2.0, 15.0)))
        if t + move_s > dur:
            break
        who = legs if len(legs) == 1 or rng.random() < 0.5 else (legs[int(rng.integers(2))],)
        for leg in who:
            level = ctx.u(ctx.w("restless_level_rel", (3.0, 20.0)))
            parts[leg].emg.append(_voluntary_env(ctx, t, move_s, level,
                                                 rise_s=ctx.u((0.1, 1.0)),
                                                 factors=ctx.channel_factors(0.4, 1.0)))
            parts[leg].acc.append(_movement(ctx, t + 0.2, t + move_s, max(2, int(move_s)),
                                            amp_mg=ctx.w("restless_acc_mg", (30.0, 300.0)),
                                            sigma_s=(0.15, 0.8)))
            if rng.random() < 0.3:
                parts[leg].tilt.append(Tilt(t + 0.3, t + 0.3 + min(move_s, 2.0),
                                            ctx.u((-30.0, 30.0))))
        t += move_s + ctx.u(ctx.w("restless_interval_s", (10.0, 60.0)))
    return EventPlan("restless_wake", parts)


def build_partner(ctx: Ctx, ev: ScriptedEvent | None) -> EventPlan:
    """A bed partner moving: both legs' accelerometers move together, the calves stay quiet."""
    dur = _duration(ctx, "bed_partner", ctx.w("partner_s", (1.0, 20.0)), ev)
    n = max(1, int(dur / 1.5))
    centres = np.sort(ctx.rng.uniform(0.0, dur, n))
    sig = ctx.rng.uniform(0.3, 1.5, n)
    base = ctx.rng.uniform(*ctx.w("partner_acc_mg", (5.0, 80.0)), (3, n)) * ctx.rng.choice(
        [-1.0, 1.0], (3, n))
    parts: dict[str, LegPart] = {}
    for leg in ctx.legs:  # the mattress moves both shanks alike, a little differently
        amp = base * ctx.rng.uniform(0.6, 1.0, (3, n))
        parts[leg] = LegPart(acc=[Bumps(centres, sig, amp)], truth=(0.0, dur))
    return EventPlan("bed_partner", parts)


def build_slip(ctx: Ctx, leg: str, ev: ScriptedEvent | None) -> EventPlan:
    """A strap that slips or rotates: the sensor's roll about the shank jumps by 10-90° with
    a small jolt; the leg itself does not move and the calf stays quiet."""
    del ev
    slip_s = ctx.u(ctx.w("slip_s", (0.1, 1.0)))
    roll = ctx.u(ctx.w("slip_roll_deg", (10.0, 90.0))) * float(ctx.rng.choice([-1, 1]))
    jolt = _movement(ctx, 0.0, slip_s, 1, amp_mg=ctx.w("slip_jolt_mg", (5.0, 50.0)),
                     sigma_s=(0.05, 0.2))
    return EventPlan("strap_slip", {leg: LegPart(acc=[jolt], truth=(0.0, slip_s),
                                                 tilt=[Tilt(0.0, slip_s, roll)])})


OneLegBuilder = Callable[[Ctx, str, ScriptedEvent | None], EventPlan]
ONE_LEG_BUILDERS: Final[dict[str, OneLegBuilder]] = {
    "reposition": build_reposition,
    "electrode_detach": build_detach,
    "strap_slip": build_slip,
    "alma": build_alma,
    "fasciculation": build_fasciculation,
    "ecg_crosstalk": build_ecg,
    "electrode_pop": build_pop,
    "mains_hum": build_hum,
    "baseline_wander": build_wander,
    "lead_off": build_lead_off,
}


def build(ctx: Ctx, kind: str, legs: tuple[str, ...] | None, ev: ScriptedEvent | None) -> EventPlan:
    """Build one event of ``kind``; ``legs`` None lets the builder choose (random)."""
    if kind == "cramp":
        leg = legs[0] if legs else ctx.legs[int(ctx.rng.integers(len(ctx.legs)))]
        return build_cramp(ctx, leg, ev)
    if kind == "roll_over":
        return build_roll(ctx, ev)
    if kind == "walk":
        return build_walk(ctx, ev)
    if kind == "hypnic_jerk":
        return build_jerk(ctx, ev)
    if kind == "bed_partner":
        return build_partner(ctx, ev)
    if kind in ("plm_train", "tone_change", "restless_wake"):
        if legs is None:
            p = ctx.prob({"plm_train": "plm_bilateral", "tone_change": "tone_bilateral",
                          "restless_wake": "restless_bilateral"}[kind], PLM_BILATERAL_P)
            bilateral = len(ctx.legs) > 1 and ctx.rng.random() < p
            legs = ctx.legs if bilateral else (ctx.legs[int(ctx.rng.integers(len(ctx.legs)))],)
        if kind == "tone_change":
            return build_tone(ctx, legs, ev)
        if kind == "restless_wake":
            return build_restless(ctx, legs, ev)
        return build_plm(ctx, legs, ev)
    leg = legs[0] if legs else ctx.legs[int(ctx.rng.integers(len(ctx.legs)))]
    return ONE_LEG_BUILDERS[kind](ctx, leg, ev)
