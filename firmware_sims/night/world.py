"""Worlds: the priors a night's events are drawn from, and how they are widened.

A :class:`World` holds, for every drawn quantity, the range it is drawn from (``priors``), how
many events of each kind an 8-h night holds (``counts_per_8h``) and a few probabilities
(``probs``). :func:`tuning_world` is the world a detector may be tuned on; :func:`shifted_world`
widens every range by half its width on both sides (clipped to :data:`LIMITS`, what physiology
or physics allows), uses another look-alike mix, and is meant to be run with seeds never used
in tuning. :meth:`World.widened` widens chosen priors only, for a sweep that shows which prior
hurts a detector.

Every range and its source is listed in ``docs/synthetic-nights.md`` ("Worlds").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Final

__all__ = ["LIMITS", "NEW_KINDS", "TUNING_PRIORS", "World", "shifted_world", "tuning_world"]

#: Look-alike kinds that only world nights hold (DETECTION.md, "What the first evaluation
#: missed"): voluntary repositioning of one leg, slow tone changes, partial electrode
#: detachment, restless wake periods, a bed partner's movement, a strap that slips or rotates.
NEW_KINDS: Final[tuple[str, ...]] = (
    "reposition",
    "tone_change",
    "electrode_detach",
    "restless_wake",
    "bed_partner",
    "strap_slip",
)

#: Tuning-world ranges (uniform draws unless a builder says otherwise). Units in the names.
TUNING_PRIORS: Final[Mapping[str, tuple[float, float]]] = ({
    # cramps (DETECTION.md: ramp ~41 s to 2-8x, ~2x afterwards; stretching raises EMG)
    "cramp_ramp_s": (5.0, 60.0),
    "cramp_plateau_rel": (2.0, 8.0),
    "cramp_fluct_sd": (0.05, 0.2),
    "cramp_decay_s": (10.0, 60.0),
    "cramp_residual_rel": (1.2, 2.0),
    "cramp_residual_s": (30.0, 180.0),
    "cramp_stretch_s": (1.0, 10.0),
    "cramp_stretch_gain": (1.0, 1.8),
    "cramp_wake_delay_of_ramp": (0.3, 1.5),
    "cramp_wake_mg": (50.0, 400.0),
    # periodic limb movements (WASM 2016: 0.5-10 s, <= 15 s bilateral, >= 4 at 10-90 s)
    "plm_burst_s": (0.5, 10.0),
    "plm_period_s": (15.0, 60.0),
    "plm_level_rel": (2.0, 20.0),
    "plm_acc_mg": (5.0, 80.0),
    # rolling over (DETECTION.md: 3-45 s), ALMA runs (0.1-0.7 s bursts in runs up to ~20 s)
    "roll_s": (3.0, 45.0),
    "roll_level_rel": (1.0, 6.0),
    "alma_run_s": (5.0, 20.0),
    "alma_level_rel": (3.0, 8.0),
    # voluntary repositioning of one leg (DETECTION.md table)
    "reposition_s": (3.0, 45.0),
    "reposition_level_rel": (5.0, 30.0),
    "reposition_rise_s": (0.1, 1.0),
    "reposition_acc_mg": (50.0, 400.0),
    "reposition_roll_deg": (10.0, 45.0),
    # slow tone changes (1.5-3x for 10-60 min, ramps of about a minute)
    "tone_level_rel": (1.5, 3.0),
    "tone_s": (600.0, 3600.0),
    "tone_ramp_s": (30.0, 120.0),
    # partial electrode detachment (broadband 50-300 µV for 1-10 min, pops at both ends)
    "detach_noise_uv": (50.0, 300.0),
    "detach_s": (60.0, 600.0),
    "detach_pop_uv": (200.0, 3000.0),
    # restless wake (movements every 10-60 s for 5-20 min, each 2-15 s)
    "restless_s": (300.0, 1200.0),
    "restless_interval_s": (10.0, 60.0),
    "restless_move_s": (2.0, 15.0),
    "restless_level_rel": (3.0, 20.0),
    "restless_acc_mg": (30.0, 300.0),
    # accelerometer-only confusions
    "partner_s": (1.0, 20.0),
    "partner_acc_mg": (5.0, 80.0),
    "slip_roll_deg": (10.0, 90.0),
    "slip_s": (0.1, 1.0),
    "slip_jolt_mg": (5.0, 50.0),
    # sensor coupling and contact
    "mmg_mg_per_excess": (0.02, 3.0),
    "floor_drift_amplitude": (0.0, 0.05),
})

#: What physiology or physics allows: a widened range is clipped to these bounds.
LIMITS: Final[Mapping[str, tuple[float, float]]] = ({
    "cramp_ramp_s": (3.0, 120.0),  # a ramp of tens of seconds; a few seconds at the least
    "cramp_plateau_rel": (2.0, 15.0),  # DETECTION.md: 2-8x; below 2x it is not a cramp
    "cramp_fluct_sd": (0.02, 0.3),
    "cramp_decay_s": (5.0, 120.0),
    "cramp_residual_rel": (1.0, 2.5),
    "cramp_residual_s": (10.0, 300.0),
    "cramp_stretch_s": (0.5, 15.0),
    "cramp_stretch_gain": (1.0, 2.5),  # stretching increases EMG
    "cramp_wake_delay_of_ramp": (0.0, 2.5),
    "cramp_wake_mg": (20.0, 800.0),
    "plm_burst_s": (0.5, 10.0),  # WASM 2016 limits (15 s bilateral, applied by the builder)
    "plm_period_s": (10.0, 90.0),  # WASM 2016 intervals
    "plm_level_rel": (1.5, 40.0),
    "plm_acc_mg": (1.0, 200.0),
    "roll_s": (1.0, 90.0),
    "roll_level_rel": (0.5, 15.0),
    "alma_run_s": (1.0, 40.0),
    "alma_level_rel": (1.5, 20.0),
    "reposition_s": (1.0, 90.0),
    "reposition_level_rel": (2.0, 60.0),
    "reposition_rise_s": (0.05, 2.0),
    "reposition_acc_mg": (20.0, 800.0),
    "reposition_roll_deg": (3.0, 90.0),
    "tone_level_rel": (1.2, 4.0),
    "tone_s": (300.0, 7200.0),
    "tone_ramp_s": (10.0, 300.0),
    "detach_noise_uv": (20.0, 600.0),
    "detach_s": (20.0, 1200.0),
    "detach_pop_uv": (50.0, 5000.0),
    "restless_s": (120.0, 2400.0),
    "restless_interval_s": (5.0, 120.0),
    "restless_move_s": (1.0, 30.0),
    "restless_level_rel": (1.5, 40.0),
    "restless_acc_mg": (10.0, 600.0),
    "partner_s": (0.5, 60.0),
    "partner_acc_mg": (1.0, 200.0),
    "slip_roll_deg": (3.0, 180.0),
    "slip_s": (0.05, 3.0),
    "slip_jolt_mg": (0.0, 150.0),
    "mmg_mg_per_excess": (0.005, 6.0),
    "floor_drift_amplitude": (0.0, 0.1),
})

#: Events per 8 h in the tuning world (inclusive ranges; at least one of each included kind).
TUNING_COUNTS: Final[Mapping[str, tuple[int, int]]] = ({
    "plm_train": (1, 4),
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
    "reposition": (3, 12),
    "tone_change": (1, 3),
    "electrode_detach": (1, 2),
    "restless_wake": (1, 2),
    "bed_partner": (2, 8),
    "strap_slip": (1, 3),
})

#: The shifted world's mix: more of what fooled the first detector, fewer roll-overs.
SHIFTED_COUNTS: Final[Mapping[str, tuple[int, int]]] = ({
    **TUNING_COUNTS,
    "plm_train": (2, 6),
    "roll_over": (2, 6),
    "reposition": (6, 20),
    "tone_change": (2, 4),
    "electrode_detach": (1, 3),
    "restless_wake": (1, 3),
    "bed_partner": (4, 12),
    "strap_slip": (2, 5),
})

TUNING_PROBS: Final[Mapping[str, float]] = ({
    "cramp_woke": 0.8,
    "cramp_got_up": 0.4,
    "cramp_stretched": 0.5,
    "cramp_weak_channel": 0.3,
    "plm_bilateral": 0.3,
    "tone_bilateral": 0.4,
    "restless_bilateral": 0.5,
})
SHIFTED_PROBS: Final[Mapping[str, float]] = ({
    **TUNING_PROBS,
    "cramp_woke": 0.7,
    "cramp_stretched": 0.6,
    "plm_bilateral": 0.5,
    "tone_bilateral": 0.6,
})
#: Widening of the shifted world: each range grows by this share of its width on each side.
SHIFT_WIDEN: Final = 0.5


@dataclass(frozen=True)
class World:
    """The priors, mix and probabilities that events are drawn from.

    Hashable and picklable (tuples of pairs); :attr:`priors`, :attr:`counts_per_8h` and
    :attr:`probs` give them as dicts.

    Attributes
    ----------
    name : str
    prior_items : tuple of (str, (float, float))
        Range of each drawn quantity (see :data:`TUNING_PRIORS` for the keys and units).
    count_items : tuple of (str, (int, int))
        Events per 8-h night per look-alike kind.
    prob_items : tuple of (str, float)
    """

    name: str
    prior_items: tuple[tuple[str, tuple[float, float]], ...] = tuple(TUNING_PRIORS.items())
    count_items: tuple[tuple[str, tuple[int, int]], ...] = tuple(TUNING_COUNTS.items())
    prob_items: tuple[tuple[str, float], ...] = tuple(TUNING_PROBS.items())

    @property
    def priors(self) -> dict[str, tuple[float, float]]:
        """Range of each drawn quantity (keys and units: :data:`TUNING_PRIORS`)."""
        return dict(self.prior_items)

    @property
    def counts_per_8h(self) -> dict[str, tuple[int, int]]:
        """Events per 8-h night per look-alike kind (scaled to the night, at least one)."""
        return dict(self.count_items)

    @property
    def probs(self) -> dict[str, float]:
        """Probabilities (cramp context flags, bilateral shares)."""
        return dict(self.prob_items)

    def prior(self, key: str) -> tuple[float, float]:
        """The range of ``key``."""
        return self.priors[key]

    def widened(self, keys: Iterable[str] | None = None, *, by: float = SHIFT_WIDEN,
                name: str | None = None) -> World:
        """This world with ``keys`` (all when None) widened by ``by`` x width on each side,
        clipped to :data:`LIMITS`."""
        chosen = set(self.priors) if keys is None else set(keys)
        unknown = chosen - set(self.priors)
        if unknown:
            raise KeyError(f"unknown priors {sorted(unknown)}; choose from {sorted(self.priors)}")
        out = dict(self.priors)
        for k in chosen:
            lo, hi = out[k]
            w = hi - lo
            lim_lo, lim_hi = LIMITS[k]
            out[k] = (max(lim_lo, lo - by * w), min(lim_hi, hi + by * w))
        return replace(self, name=name or f"{self.name}+wide({','.join(sorted(chosen))})",
                       prior_items=tuple(out.items()))


def tuning_world() -> World:
    """The world a detector may be fitted on (:data:`TUNING_PRIORS`, :data:`TUNING_COUNTS`)."""
    return World("tuning")


def shifted_world() -> World:
    """Every prior widened by half on both sides (within :data:`LIMITS`), another mix."""
    base = World("shifted", count_items=tuple(SHIFTED_COUNTS.items()),
                 prob_items=tuple(SHIFTED_PROBS.items()))
    return base.widened(by=SHIFT_WIDEN, name="shifted")
