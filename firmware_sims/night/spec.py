"""What a synthetic night is asked to contain: :class:`NightSpec`, :class:`ScriptedEvent`.

Also the reference band-pass that defines "floor RMS" for every number in the truth table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy import signal

from crampsense.errors import ConfigError
from crampsense.models import MIN_ACC_FS_HZ, MIN_EMG_FS_HZ

from .world import NEW_KINDS, World

__all__ = [
    "ALL_KINDS",
    "LEGS",
    "LOOKALIKE_KINDS",
    "NightSpec",
    "ScriptedEvent",
    "floor_band_hz",
    "reference_bandpass_sos",
]

#: Every look-alike kind the generator knows (DETECTION.md, "What else moves a leg at night").
LOOKALIKE_KINDS: Final[tuple[str, ...]] = (
    "plm_train",
    "roll_over",
    "walk",
    "hypnic_jerk",
    "alma",
    "fasciculation",
    "ecg_crosstalk",
    "electrode_pop",
    "mains_hum",
    "baseline_wander",
    "lead_off",
)
#: Every look-alike kind of world nights (:class:`~firmware_sims.night.world.World`): the
#: catalogue above plus the kinds the first evaluation missed.
ALL_KINDS: Final[tuple[str, ...]] = LOOKALIKE_KINDS + NEW_KINDS
#: Legs in a fixed order; a leg's index seeds its noise streams, so it never depends on which
#: legs a spec asks for.
LEGS: Final[tuple[str, ...]] = ("left", "right")

#: Lower edge of the analysis band (Hz): DETECTION.md, "Analyse 20 Hz to min(450 Hz, 0.45·fs)".
FLOOR_BAND_LOW_HZ: Final = 20.0
#: Upper edge of the analysis band (Hz) at high sample rates (same source).
FLOOR_BAND_HIGH_HZ: Final = 450.0
#: Upper edge as a fraction of fs at low rates: keeps the edge clear of Nyquist (same source).
FLOOR_BAND_HIGH_FRACTION: Final = 0.45
#: Butterworth order of the reference band-pass (per edge): steep enough that white amplifier
#: noise outside the band contributes little, cheap enough for anyone to reproduce.
REFERENCE_BANDPASS_ORDER: Final = 4

#: Fastest EMG rate the generator supports (Hz): the fastest rate DETECTION.md asks detectors
#: to handle.
MAX_EMG_FS_HZ: Final = 2000.0


def floor_band_hz(fs_hz: float) -> tuple[float, float]:
    """Return the analysis band ``(low_hz, high_hz)`` = ``(20, min(450, 0.45·fs))``.

    Examples
    --------
    >>> floor_band_hz(1000.0)
    (20.0, 450.0)
    >>> floor_band_hz(200.0)
    (20.0, 90.0)
    """
    return FLOOR_BAND_LOW_HZ, min(FLOOR_BAND_HIGH_HZ, FLOOR_BAND_HIGH_FRACTION * fs_hz)


def reference_bandpass_sos(fs_hz: float) -> npt.NDArray[np.float64]:
    """Second-order sections of the reference band-pass that defines "floor RMS".

    A Butterworth band-pass of order 4 per edge over :func:`floor_band_hz`. The floor RMS of a
    channel is the RMS of its resting signal after this filter; every ``peak_rel`` in the truth
    table is relative to that number. The phase does not matter for RMS (``sosfilt`` or
    ``sosfiltfilt`` give the same level).

    Parameters
    ----------
    fs_hz : float
        EMG sample rate (Hz), 200-2000.

    Returns
    -------
    ndarray, shape (n_sections, 6)
    """
    low_hz, high_hz = floor_band_hz(fs_hz)
    sos: npt.NDArray[np.float64] = signal.butter(
        REFERENCE_BANDPASS_ORDER, [low_hz, high_hz], btype="bandpass", fs=fs_hz, output="sos"
    )
    return sos


@dataclass(frozen=True)
class ScriptedEvent:
    """An event placed by hand (used by :func:`~firmware_sims.night.demo_spec`).

    Anything left ``None`` is drawn from the kind's distribution with the night's seed.

    Attributes
    ----------
    kind : str
        ``"cramp"`` or one of :data:`LOOKALIKE_KINDS`.
    onset_s : float
        Truth onset in seconds from ``NightSpec.start`` (for a cramp: the start of its ramp).
    legs : tuple of str
        Legs it happens on. A cramp takes exactly one leg; ``roll_over``, ``walk`` and
        ``hypnic_jerk`` always involve every simulated leg whatever is given here.
    duration_s : float or None
        Truth duration (offset - onset). For ``plm_train`` use ``n_bursts`` instead.
    plateau_rel : float or None
        Cramp plateau level (total in-band RMS / floor RMS), 3-8.
    woke, got_up, stretched : bool or None
        Cramp context flags.
    n_bursts : int or None
        Number of bursts of a ``plm_train`` (>= 4).
    """

    kind: str
    onset_s: float
    legs: tuple[str, ...] = ("left",)
    duration_s: float | None = None
    plateau_rel: float | None = None
    woke: bool | None = None
    got_up: bool | None = None
    stretched: bool | None = None
    n_bursts: int | None = None


@dataclass(frozen=True)
class NightSpec:
    """Everything that determines a synthetic night; the same spec gives the same night.

    Attributes
    ----------
    seed : int
        Non-negative seed of every random draw (schedule and noise).
    duration_s : float
        Night length (s).
    emg_fs_hz : float
        EMG sample rate (Hz), 200-2000.
    acc_fs_hz : float
        Accelerometer sample rate (Hz), >= 25.
    start : datetime
        Timezone-aware start of the night; truth times are seconds from here.
    n_cramps : int or None
        ``None``: drawn uniformly from 0-3; otherwise exactly this many (scripted cramps count).
    lookalikes : tuple of str
        Which look-alike kinds to include (each at least once when it fits).
    gain : float
        Multiplies all EMG (an uncalibrated amplifier); never the accelerometer.
    legs : tuple of str
        Legs to simulate, from ``("left", "right")``.
    emg_channels : tuple of str
        EMG channel labels per leg (default gastrocnemius medial and lateral heads).
    cramp_min_duration_s, cramp_max_duration_s : float
        Truncation of the log-normal cramp duration (s).
    scripted : tuple of ScriptedEvent
        Hand-placed events. A kind with any scripted event gets no random extra events.
    sleep_onset_s : float or None
        Sleep onset (s from start); ``None``: drawn 10-30 min (at most 15 % of the night).
    acc_mmg : bool
        Add the calf's mechanomyogram (5-25 Hz vibration of contracting muscle, a few mg,
        proportional to the EMG activity of every muscle-activity envelope) to the
        accelerometer. Drawn from its own random streams: the schedule and every other
        sample are unchanged either way.
    acc_settling : bool
        Add in-bed wakefulness before sleep onset to the accelerometer: slow posture wander
        and fidgets on both legs (own random streams, as above).
    world : World or None
        ``None``: the original catalogue (every event alone on its legs, with quiet around it;
        kept for the device simulators, the demo and old fixtures). A
        :class:`~firmware_sims.night.world.World`: its priors and mix, no quiet guards,
        look-alikes overlapping anything, and the kinds of :data:`ALL_KINDS`.
    """

    seed: int
    duration_s: float = 8 * 3600.0
    emg_fs_hz: float = 1000.0
    acc_fs_hz: float = 50.0
    start: datetime = datetime(2026, 11, 20, 22, 30, tzinfo=UTC)
    n_cramps: int | None = None
    lookalikes: tuple[str, ...] = LOOKALIKE_KINDS
    gain: float = 1.0
    legs: tuple[str, ...] = ("left", "right")
    emg_channels: tuple[str, ...] = ("gm", "gl")
    cramp_min_duration_s: float = 10.0
    cramp_max_duration_s: float = 900.0
    scripted: tuple[ScriptedEvent, ...] = ()
    sleep_onset_s: float | None = None
    acc_mmg: bool = True
    acc_settling: bool = True
    world: World | None = None

    def __post_init__(self) -> None:
        _validate(self)


def _finite_positive(value: float) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def _validate(spec: NightSpec) -> None:
    if isinstance(spec.seed, bool) or not isinstance(spec.seed, int) or spec.seed < 0:
        raise ConfigError(f"NightSpec.seed must be a non-negative int, got {spec.seed!r}")
    if not _finite_positive(spec.duration_s):
        raise ConfigError(
            f"NightSpec.duration_s must be a positive number of seconds, got {spec.duration_s!r}"
        )
    if not (_finite_positive(spec.emg_fs_hz) and MIN_EMG_FS_HZ <= spec.emg_fs_hz <= MAX_EMG_FS_HZ):
        raise ConfigError(
            f"NightSpec.emg_fs_hz={spec.emg_fs_hz!r} is outside 200-2000 Hz; pick a rate in range"
        )
    if not (_finite_positive(spec.acc_fs_hz) and spec.acc_fs_hz >= MIN_ACC_FS_HZ):
        raise ConfigError(f"NightSpec.acc_fs_hz={spec.acc_fs_hz!r} must be at least 25 Hz")
    if spec.start.tzinfo is None:
        raise ConfigError(
            f"NightSpec.start={spec.start.isoformat()} is naive; give it a timezone (e.g. UTC)"
        )
    if spec.n_cramps is not None and (
        isinstance(spec.n_cramps, bool) or not isinstance(spec.n_cramps, int) or spec.n_cramps < 0
    ):
        raise ConfigError(f"NightSpec.n_cramps must be None or an int >= 0, got {spec.n_cramps!r}")
    known = LOOKALIKE_KINDS if spec.world is None else ALL_KINDS
    unknown = [k for k in spec.lookalikes if k not in known]
    if unknown:
        raise ConfigError(
            f"NightSpec.lookalikes has unknown kinds {unknown}; choose from {known} (the kinds "
            f"{NEW_KINDS} need a world: NightSpec(world=tuning_world()))"
        )
    if not _finite_positive(spec.gain):
        raise ConfigError(f"NightSpec.gain must be a positive finite number, got {spec.gain!r}")
    if not spec.legs or len(set(spec.legs)) != len(spec.legs) or set(spec.legs) - set(LEGS):
        raise ConfigError(
            f"NightSpec.legs={spec.legs!r} must be distinct values from {LEGS}, at least one"
        )
    if not spec.emg_channels or len(set(spec.emg_channels)) != len(spec.emg_channels):
        raise ConfigError(
            f"NightSpec.emg_channels={spec.emg_channels!r} must be distinct labels, at least one"
        )
    if not (
        _finite_positive(spec.cramp_min_duration_s)
        and _finite_positive(spec.cramp_max_duration_s)
        and spec.cramp_min_duration_s <= spec.cramp_max_duration_s
    ):
        raise ConfigError(
            "NightSpec cramp durations must satisfy 0 < cramp_min_duration_s <= "
            f"cramp_max_duration_s, got {spec.cramp_min_duration_s!r}, "
            f"{spec.cramp_max_duration_s!r}"
        )
    for name in ("acc_mmg", "acc_settling"):
        if not isinstance(getattr(spec, name), bool):
            raise ConfigError(
                f"NightSpec.{name}={getattr(spec, name)!r} must be True or False"
            )
    if spec.sleep_onset_s is not None and not (0.0 <= spec.sleep_onset_s < spec.duration_s):
        raise ConfigError(
            f"NightSpec.sleep_onset_s={spec.sleep_onset_s!r} must lie inside the night "
            f"(0-{spec.duration_s} s)"
        )
    n_scripted_cramps = 0
    for ev in spec.scripted:
        if ev.kind != "cramp" and ev.kind not in LOOKALIKE_KINDS:
            raise ConfigError(
                f"ScriptedEvent.kind={ev.kind!r} is unknown; use 'cramp' or one of "
                f"{LOOKALIKE_KINDS}"
            )
        if not ev.legs or set(ev.legs) - set(spec.legs):
            raise ConfigError(
                f"ScriptedEvent {ev.kind} at {ev.onset_s} s has legs {ev.legs!r}; use legs "
                f"from the spec's {spec.legs!r}"
            )
        if ev.kind == "cramp":
            n_scripted_cramps += 1
            if len(ev.legs) != 1:
                raise ConfigError(
                    f"a scripted cramp takes exactly one leg, got {ev.legs!r} at {ev.onset_s} s"
                )
            if ev.plateau_rel is not None and not 3.0 <= ev.plateau_rel <= 8.0:
                raise ConfigError(
                    f"ScriptedEvent.plateau_rel={ev.plateau_rel!r} must be 3-8 x floor"
                )
        if ev.duration_s is not None and not _finite_positive(ev.duration_s):
            raise ConfigError(f"ScriptedEvent.duration_s={ev.duration_s!r} must be positive (s)")
        if ev.n_bursts is not None and ev.n_bursts < 4:
            raise ConfigError(
                f"ScriptedEvent.n_bursts={ev.n_bursts!r}: a PLM train has at least 4 bursts"
            )
    if spec.n_cramps is not None and spec.n_cramps < n_scripted_cramps:
        raise ConfigError(
            f"NightSpec.n_cramps={spec.n_cramps} is fewer than the {n_scripted_cramps} "
            "scripted cramps; raise n_cramps or leave it None"
        )
