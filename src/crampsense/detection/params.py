"""Tunable parameters of the cramp detector, each with a unit and a reason.

Every number the detector uses to decide is a field of :class:`DetectionParams`; the defaults
are the named ``Final`` constants below, each with the reason for its value. The defaults were
chosen on generated nights with seeds 1-20 only (see ``docs/detection.md``); the tests score the
detector on seeds from 1000 up, which were never used for tuning.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from crampsense.errors import ConfigError
from crampsense.models import VERTICAL_MG

__all__ = ["DetectionParams"]

# --- signal conditioning -------------------------------------------------------------------
#: Surface EMG analysis band starts at 20 Hz: removes motion artefact, baseline wander and most
#: ECG energy while keeping the motor-unit spectrum (DETECTION.md; AASM 2018 leg EMG filters).
BAND_LOW_HZ: Final = 20.0
#: Upper band edge; capped at 0.45 x fs so the filter stays below Nyquist at 200 Hz.
BAND_HIGH_HZ: Final = 450.0
#: Butterworth order of each band edge (an order-4 band-pass = 4 second-order sections):
#: 24 dB/octave is plenty to reject wander and keeps the cost at four biquads per sample.
FILTER_ORDER: Final = 4
#: A spectral line must stand this many times above the median of its neighbouring bins in
#: some sampled segment before a notch is added (mains hum is "measured", not assumed). An
#: exponential periodogram bin of pure noise exceeds 30x its median with p ~ 1e-9.
HUM_PEAK_RATIO: Final = 30.0
#: Quality factor of the mains notch: -3 dB width 50/10 = 5 Hz still attenuates a line that is
#: 0.05 Hz off nominal by ~40 dB (mains drifts), and removes ~1 % of a 20-450 Hz EMG band.
NOTCH_Q: Final = 10.0
# --- envelope and floor --------------------------------------------------------------------
#: Envelope output step: 10 Hz is fine enough for onset within a fraction of a second and keeps
#: an 8-h night at 288 000 values per channel.
HOP_S: Final = 0.1
#: RMS window. Computed as the median of the 0.1-s mean squares inside the window, which gates
#: pops, jerks, fasciculations and QRS spikes that cover less than half of the window.
ENVELOPE_WINDOW_S: Final = 1.0
#: Floor window (centred). Cramps last up to 15 min, so the window must be at least twice as
#: long for a low quantile to still see quiet time in the middle of the longest cramp; 30 min
#: still follows slow drifts of electrode impedance over the night.
FLOOR_WINDOW_S: Final = 1800.0
#: The floor is a quantile of the medians of blocks of this length (robust and cheap).
FLOOR_BLOCK_S: Final = 10.0
#: Low quantile of block medians: a fifth of the window may be active without moving the floor.
FLOOR_QUANTILE: Final = 0.2
# --- hysteresis ----------------------------------------------------------------------------
#: Event opens when the envelope reaches this multiple of the floor. Night cramps rose to
#: 2-8x baseline (DETECTION.md): a 3x threshold lost the cramps of the low third of that range
#: (plateaus of 2.3-3x, measured ~10 % lower by the median envelope). The floor's own 1-s
#: fluctuations stay below ~1.3x; weak look-alikes that now pass are the decision model's job.
ON_RATIO: Final = 2.4
#: Event closes below this multiple: real cramps stayed near 2x after the painful phase, so the
#: painful plateau ends where the envelope falls under 2x.
OFF_RATIO: Final = 2.0
#: Onset is moved back along the rising ramp to where the envelope last stood below this
#: multiple of the floor: cramp EMG ramps up over tens of seconds before the plateau.
ONSET_RATIO: Final = 1.4
#: How far back the onset may move (s): the longest reported ramp is about 45 s.
ONSET_LOOKBACK_S: Final = 60.0
#: The event's core (whose median is the plateau level) ends at the last step at or above this
#: fraction of the median over the whole span: the plateau wobbles by at most +-15 %, so 0.7
#: keeps all of it and cuts most of the slow decay. The offset itself is then placed at the
#: knee of the falling edge (a change-point fit, see ``detector._plateau_end``) and is never
#: later than the core's end.
OFFSET_PLATEAU_FRACTION: Final = 0.7
#: Shortest event (s). WASM limb movements end at 10 s; together with the periodicity rule
#: this keeps PLM bursts out while the shortest recalled cramps (~10 s) stay in.
MIN_DURATION_S: Final = 8.0
#: Gaps below off_ratio shorter than this are bridged (s); shorter than the 5 s quiet between
#: the tightest PLM bursts, longer than the dips of an irregular plateau.
MERGE_GAP_S: Final = 3.0
# --- rejection rules -----------------------------------------------------------------------
#: PLM criteria of WASM 2016 (Ferri et al.): bursts 0.5-10 s, 4 or more in a row with 10-90 s
#: between onsets. Events no longer than PLM_MAX_BURST_S that belong to such a train are PLMs.
PLM_MIN_BURST_S: Final = 0.5
PLM_MAX_BURST_S: Final = 15.0  # 10 s unilateral, 15 s bilateral (WASM 2016)
PLM_MIN_INTERVAL_S: Final = 10.0
PLM_MAX_INTERVAL_S: Final = 90.0
PLM_MIN_COUNT: Final = 4
#: A plateau is tonic: in a cramp almost every 0.1-s step carries interference-pattern EMG.
#: Phasic activity (ALMA, tremor, walking, PLM clusters) leaves many steps near the floor;
#: events with more than this fraction of 0.1-s steps below QUIET_RATIO are rejected.
PHASIC_MAX_QUIET_FRACTION: Final = 0.15
QUIET_RATIO: Final = 1.6
#: A step also counts as a dip below this fraction of the running 5-s median: the 0.1-s RMS of
#: a tonic interference pattern varies by 10-20 %, bursts with pauses drop to the floor.
PHASIC_DIP_REL: Final = 0.4
#: Window around the onset (s) in which movement of both legs / the other leg's EMG marks the
#: event as a body movement (roll-over), not a cramp. Cramps start in a still leg: the
#: painful awakening and its movement come tens of seconds after the EMG onset.
ONSET_WINDOW_S: Final = 5.0
#: Per-second accelerometer variability (sqrt of the summed axis variances, mg) above this is a
#: movement; a still limb shows a few mg of sensor noise.
MOVE_MG: Final = 40.0
#: An orientation change of the shank by more than this (degrees, over 4 s) is a movement.
TURN_DEG: Final = 20.0
#: Standing must last this long to count as getting up (s).
GOT_UP_MIN_S: Final = 10.0
#: Getting up counts if it starts within the event or up to this long after it (s).
GOT_UP_AFTER_S: Final = 120.0
#: A movement burst this soon after onset (or during the event) means the person woke (s).
WOKE_AFTER_S: Final = 30.0
#: Stretching: the 2-s RMS of the envelope in the last STRETCH_WINDOW_S of the event (or 5 s
#: after) reaches STRETCH_RATIO x the plateau median before that window. A forced stretch adds
#: a third or more to the plateau; the plateau's own wobble over 2 s stays within ~15 %.
STRETCH_WINDOW_S: Final = 15.0
STRETCH_RATIO: Final = 1.3
#: Samples this close to an invalid span are invalid too (filter transients, s).
INVALID_MARGIN_S: Final = 0.5

_CONSTRAINTS: Final[dict[str, tuple[float, float]]] = {
    "band_low_hz": (1.0, 200.0),
    "band_high_hz": (20.0, 1000.0),
    "filter_order": (1.0, 8.0),
    "hum_peak_ratio": (2.0, 1e6),
    "notch_q": (1.0, 200.0),
    "hop_s": (0.01, 0.5),
    "envelope_window_s": (0.05, 10.0),
    "floor_window_s": (30.0, 14400.0),
    "floor_block_s": (1.0, 120.0),
    "floor_quantile": (0.01, 0.5),
    "on_ratio": (1.2, 50.0),
    "off_ratio": (1.05, 50.0),
    "onset_ratio": (1.0, 50.0),
    "onset_lookback_s": (0.0, 300.0),
    "offset_plateau_fraction": (0.0, 1.0),
    "min_duration_s": (0.1, 600.0),
    "merge_gap_s": (0.0, 60.0),
    "plm_min_burst_s": (0.0, 10.0),
    "plm_max_burst_s": (0.5, 60.0),
    "plm_min_interval_s": (1.0, 60.0),
    "plm_max_interval_s": (5.0, 600.0),
    "plm_min_count": (2.0, 20.0),
    "phasic_max_quiet_fraction": (0.0, 1.0),
    "quiet_ratio": (1.0, 50.0),
    "phasic_dip_rel": (0.0, 1.0),
    "onset_window_s": (0.5, 60.0),
    "move_mg": (1.0, 2000.0),
    "turn_deg": (1.0, 180.0),
    "vertical_mg": (100.0, 1000.0),
    "got_up_min_s": (1.0, 600.0),
    "got_up_after_s": (0.0, 3600.0),
    "woke_after_s": (0.0, 600.0),
    "stretch_window_s": (1.0, 120.0),
    "stretch_ratio": (1.0, 10.0),
    "invalid_margin_s": (0.0, 10.0),
}


@dataclass(frozen=True, slots=True)
class DetectionParams:
    """All parameters of :func:`~crampsense.detection.detect_cramps`, with units in the names.

    Each default is a module constant in :mod:`crampsense.detection.params` whose comment gives
    the reason for its value. Invalid values raise :class:`~crampsense.errors.ConfigError`
    naming the field.

    Attributes
    ----------
    band_low_hz, band_high_hz : float
        EMG analysis band (Hz); the upper edge is capped at ``0.45 * fs`` when applied.
    filter_order : int
        Butterworth order per band edge.
    hum_peak_ratio, notch_q : float
        Mains-hum test (peak over neighbouring bins) and the notch quality factor.
    hop_s, envelope_window_s : float
        Envelope output step and RMS window (s).
    floor_window_s, floor_block_s, floor_quantile : float
        Adaptive floor: centred window, block length (s) and the low quantile of block medians.
    on_ratio, off_ratio, onset_ratio : float
        Hysteresis thresholds and the onset walk-back level, as multiples of the floor.
    onset_lookback_s, min_duration_s, merge_gap_s : float
        Onset walk-back limit, shortest event and longest bridged gap (s).
    offset_plateau_fraction : float
        The event's core (plateau level = its median) ends at the last step at or above
        this fraction of the span's median; the offset is the knee of the falling edge and
        never later than the core's end.
    plm_min_burst_s, plm_max_burst_s, plm_min_interval_s, plm_max_interval_s : float
        WASM 2016 periodic-limb-movement burst and interval limits (s).
    plm_min_count : int
        Bursts in a row that make a PLM train.
    phasic_max_quiet_fraction, quiet_ratio, phasic_dip_rel : float
        Phasic-activity rejection: largest allowed fraction of 0.1-s steps inside an event
        that dip below ``quiet_ratio`` x floor or below ``phasic_dip_rel`` x their running
        5-s median.
    onset_window_s : float
        Body-movement rule: both legs starting, or both legs moving, this close to the onset
        (s).
    move_mg, turn_deg, vertical_mg : float
        Accelerometer movement (mg), orientation change (degrees) and standing (mg) thresholds.
    got_up_min_s, got_up_after_s, woke_after_s : float
        Context-flag windows (s).
    stretch_window_s, stretch_ratio : float
        Stretch-burst window (s) and level (x the event's median envelope).
    invalid_margin_s : float
        Margin added around invalid spans (s).
    """

    band_low_hz: float = BAND_LOW_HZ
    band_high_hz: float = BAND_HIGH_HZ
    filter_order: int = FILTER_ORDER
    hum_peak_ratio: float = HUM_PEAK_RATIO
    notch_q: float = NOTCH_Q
    hop_s: float = HOP_S
    envelope_window_s: float = ENVELOPE_WINDOW_S
    floor_window_s: float = FLOOR_WINDOW_S
    floor_block_s: float = FLOOR_BLOCK_S
    floor_quantile: float = FLOOR_QUANTILE
    on_ratio: float = ON_RATIO
    off_ratio: float = OFF_RATIO
    onset_ratio: float = ONSET_RATIO
    onset_lookback_s: float = ONSET_LOOKBACK_S
    offset_plateau_fraction: float = OFFSET_PLATEAU_FRACTION
    min_duration_s: float = MIN_DURATION_S
    merge_gap_s: float = MERGE_GAP_S
    plm_min_burst_s: float = PLM_MIN_BURST_S
    plm_max_burst_s: float = PLM_MAX_BURST_S
    plm_min_interval_s: float = PLM_MIN_INTERVAL_S
    plm_max_interval_s: float = PLM_MAX_INTERVAL_S
    plm_min_count: int = PLM_MIN_COUNT
    phasic_max_quiet_fraction: float = PHASIC_MAX_QUIET_FRACTION
    quiet_ratio: float = QUIET_RATIO
    phasic_dip_rel: float = PHASIC_DIP_REL
    onset_window_s: float = ONSET_WINDOW_S
    move_mg: float = MOVE_MG
    turn_deg: float = TURN_DEG
    vertical_mg: float = VERTICAL_MG
    got_up_min_s: float = GOT_UP_MIN_S
    got_up_after_s: float = GOT_UP_AFTER_S
    woke_after_s: float = WOKE_AFTER_S
    stretch_window_s: float = STRETCH_WINDOW_S
    stretch_ratio: float = STRETCH_RATIO
    invalid_margin_s: float = INVALID_MARGIN_S

    def __post_init__(self) -> None:
        for name, (low, high) in _CONSTRAINTS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(
                    f"detection parameter {name!r} must be a number, got {value!r}; "
                    f"use a value from {low:g} to {high:g}",
                    key=f"detection.{name}",
                )
            if math.isnan(value) or not low <= value <= high:
                raise ConfigError(
                    f"detection parameter {name!r} = {value!r} is out of range; "
                    f"use a value from {low:g} to {high:g}",
                    key=f"detection.{name}",
                )
        for name in ("filter_order", "plm_min_count"):
            if int(getattr(self, name)) != getattr(self, name):
                raise ConfigError(
                    f"detection parameter {name!r} = {getattr(self, name)!r} must be a whole "
                    "number; use an integer",
                    key=f"detection.{name}",
                )
        _order("off_ratio", self.off_ratio, "on_ratio", self.on_ratio)
        _order("onset_ratio", self.onset_ratio, "off_ratio", self.off_ratio)
        _order("band_low_hz", self.band_low_hz * 1.5, "band_high_hz", self.band_high_hz,
               what="x 1.5")
        _order("hop_s", self.hop_s, "envelope_window_s", self.envelope_window_s)
        _order("envelope_window_s", self.envelope_window_s, "floor_block_s",
               self.floor_block_s)
        _order("floor_block_s", self.floor_block_s * 3, "floor_window_s", self.floor_window_s,
               what="x 3")
        _order("plm_min_interval_s", self.plm_min_interval_s, "plm_max_interval_s",
               self.plm_max_interval_s)

    @classmethod
    def from_mapping(cls, values: Mapping[str, float]) -> DetectionParams:
        """Build parameters from a mapping such as ``Config.section("detection")``.

        Keys may carry the ``detection.`` prefix. Unknown keys, non-numbers and out-of-range
        values raise :class:`~crampsense.errors.ConfigError` naming the key.

        Examples
        --------
        >>> DetectionParams.from_mapping({"min_duration_s": 10}).min_duration_s
        10.0
        """
        known = {f.name: f for f in dataclasses.fields(cls)}
        kwargs: dict[str, float | int] = {}
        for raw_key, value in values.items():
            key = raw_key.removeprefix("detection.")
            if key not in known:
                raise ConfigError(
                    f"unknown detection parameter {raw_key!r}; known: {', '.join(sorted(known))}",
                    key=f"detection.{key}",
                )
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(
                    f"detection parameter {key!r} must be a number, got {value!r}",
                    key=f"detection.{key}",
                )
            if known[key].type in (int, "int"):
                kwargs[key] = int(value) if float(value).is_integer() else value
            else:
                kwargs[key] = float(value)
        return cls(**kwargs)  # type: ignore[arg-type]


def _order(low_name: str, low: float, high_name: str, high: float, what: str = "") -> None:
    if low > high:
        suffix = f" {what}" if what else ""
        raise ConfigError(
            f"detection parameter {low_name!r}{suffix} ({low:g}) must not exceed "
            f"{high_name!r} ({high:g}); change one of them",
            key=f"detection.{low_name}",
        )
