"""Frozen value types shared by every layer.

The data flow of ``docs/architecture`` (see ``../shared/design/ARCHITECTURE.md``) passes these
between layers::

    transport --Frame--> storage --Frame--> devices.decode --SampleBlock--> detection --CrampEvent

Every time is timezone-aware (UTC inside the program; local time only when shown to a person).
Units are part of field names (``host_time_ns``, ``fs_hz``, ``duration_s``).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "ACC_UNIT",
    "ECG_UNIT",
    "EMG_UNIT",
    "EVENING_CUTOFF_HOUR",
    "G_MG",
    "MIN_ACC_FS_HZ",
    "MIN_EMG_FS_HZ",
    "PLACEMENTS",
    "VERTICAL_MG",
    "CoverageGap",
    "CrampEvent",
    "DeviceInfo",
    "EventKind",
    "Evidence",
    "Frame",
    "Leg",
    "MarkKind",
    "Night",
    "Placement",
    "SampleBlock",
    "Severity",
    "SleepSummary",
    "grade_severity",
    "night_label",
    "placement_leg",
]

Leg = Literal["left", "right"]
Placement = Literal["left-calf", "right-calf", "left-shin", "right-shin", "chest", "wrist", "other"]
PLACEMENTS: tuple[str, ...] = (
    "left-calf",
    "right-calf",
    "left-shin",
    "right-shin",
    "chest",
    "wrist",
    "other",
)

# --- vocabularies two layers exchange: defined here once, imported everywhere else -----------
#: Canonical unit of decoded EMG (and ECG) samples: microvolts. Every device decoder, the file
#: readers and the detector speak it; a stream in any other unit is not fed to the detector.
EMG_UNIT: Final = "uV"
ECG_UNIT: Final = "uV"
#: Canonical unit of decoded acceleration: milli-g (1 g = 9.80665 m/s², ISO 80000-3).
ACC_UNIT: Final = "mg"
#: One standard gravity in the canonical acceleration unit.
G_MG: Final = 1000.0
#: Slowest EMG rate accepted anywhere (Hz): AASM 2018's minimum for leg EMG; the detector's
#: 20 Hz to 0.45·fs band is too narrow below it.
MIN_EMG_FS_HZ: Final = 200.0
#: Slowest accelerometer rate accepted for posture, sleep and cramp evidence (Hz): walking
#: (1-2 Hz steps and harmonics) and the 5-25 Hz calf vibration band need at least 25 Hz;
#: consumer devices run at 25 Hz or more.
MIN_ACC_FS_HZ: Final = 25.0
#: Shank "vertical" when the along-shank axis carries more than this (mg): |x| > 0.7 g is a
#: shank within ~45 degrees of vertical (standing, walking); lying shanks stay below ~0.3 g.
VERTICAL_MG: Final = 700.0


class MarkKind(enum.StrEnum):
    """What a mark in a session log records; the transport writes them, the log stores them.

    The one list both sides use: the session writer refuses any other kind, and the transport
    can only name these.
    """

    #: A link came up (detail: the ATT MTU).
    CONNECTED = "connected"
    #: A link went down.
    DISCONNECTED = "disconnected"
    #: No notification within the watchdog period although streaming was started.
    STALL = "stall"
    #: A connection attempt failed (detail: the error).
    RECONNECT_FAILED = "reconnect-failed"
    #: The recorder started or stopped (whole session).
    STARTED = "started"
    STOPPED = "stopped"
    #: Free text from the recorder.
    NOTE = "note"
    #: The device's Device Information differs from what was paired (detail: what changed).
    DEVICE_CHANGED = "device-changed"
    #: The device stopped its stream on its own (Polar "measurement stopped"); restarted.
    DEVICE_STOPPED = "device-stopped"
    #: An unsolicited device message worth keeping (low battery, a status).
    DEVICE_EVENT = "device-event"
    #: The negotiated ATT MTU is below what the device needs (detail: both values).
    MTU_TOO_SMALL = "mtu-too-small"
    #: The link was paired (encrypted) after the device refused an unencrypted write.
    PAIRED = "paired"

EventKind = Literal["cramp", "possible_cramp"]
Evidence = Literal["emg", "acc", "emg+acc"]


def placement_leg(placement: str) -> Leg | None:
    """Return the leg a placement is on, or ``None`` for chest, wrist and other."""
    if placement.startswith("left-"):
        return "left"
    if placement.startswith("right-"):
        return "right"
    return None


class Severity(enum.IntEnum):
    """Cramp severity grade; ordered so that ``max()`` gives the worst."""

    MILD = 1
    MODERATE = 2
    SEVERE = 3

    def __str__(self) -> str:
        return self.name.lower()


#: A contraction lasting at least this long is graded severe whatever its amplitude (s).
#: Recalled night cramps last minutes; two minutes of sustained calf contraction is at the
#: painful end of what sufferers report (Hallegraeff et al., BMC Fam Pract 2017).
SEVERE_DURATION_S: Final = 120.0
#: Peak envelope at or above this multiple of the channel floor is graded severe. Overnight
#: recordings of real cramps rose to 2-8x baseline; 8x is the top of that range.
SEVERE_PEAK_REL: Final = 8.0
MODERATE_DURATION_S: Final = 30.0
MODERATE_PEAK_REL: Final = 4.0


def grade_severity(duration_s: float, peak_rel: float) -> Severity:
    """Grade a cramp from its duration and peak EMG level relative to the channel floor.

    Rule: *severe* if ``duration_s >= 120`` or ``peak_rel >= 8``; *moderate* if
    ``duration_s >= 30`` or ``peak_rel >= 4``; otherwise *mild*. A ``nan`` peak (no EMG,
    accelerometer-only evidence) grades on duration alone.

    Examples
    --------
    >>> str(grade_severity(130.0, 3.0))
    'severe'
    >>> str(grade_severity(20.0, 5.0))
    'moderate'
    >>> str(grade_severity(12.0, float("nan")))
    'mild'
    """
    peak_ok = not math.isnan(peak_rel)
    if duration_s >= SEVERE_DURATION_S or (peak_ok and peak_rel >= SEVERE_PEAK_REL):
        return Severity.SEVERE
    if duration_s >= MODERATE_DURATION_S or (peak_ok and peak_rel >= MODERATE_PEAK_REL):
        return Severity.MODERATE
    return Severity.MILD


@dataclass(frozen=True, slots=True)
class Frame:
    """One BLE notification exactly as it arrived.

    A frame from a firmware simulator and a frame from a real device are indistinguishable.

    Attributes
    ----------
    device_address : str
        Bluetooth address (or platform identifier) of the sender.
    characteristic_uuid : str
        Lower-case 128-bit UUID string of the notifying characteristic.
    payload : bytes
        The notification's value, byte for byte.
    host_time_ns : int
        Host wall-clock receive time, nanoseconds since the Unix epoch (UTC), from the clock
        passed to the transport. May jump (NTP, manual changes): never use it for intervals.
    host_monotonic_ns : int
        Host monotonic receive time in nanoseconds, from the same clock; use for intervals.
    """

    device_address: str
    characteristic_uuid: str
    payload: bytes
    host_time_ns: int
    host_monotonic_ns: int


@dataclass(frozen=True, slots=True, eq=False)
class SampleBlock:
    """Decoded samples of one stream from one frame (or a run of frames).

    Attributes
    ----------
    device_address : str
        Address of the device that produced the samples.
    stream : str
        Stream name: ``"emg"``, ``"acc"``, ``"hr"``, ``"rr"``, ``"status"``.
    channels : tuple of str
        Channel labels, one per row of ``values`` (e.g. ``("gm", "gl")`` or ``("x", "y", "z")``).
    unit : str
        Physical unit of ``values``: ``"uV"``, ``"mg"``, ``"bpm"``, ``"s"``, ``"percent"``.
    fs_hz : float or None
        Nominal sample rate; ``None`` for irregular streams (heart rate, RR).
    values : ndarray, shape (n_channels, n_samples)
        Samples in ``unit``.
    device_ticks : int or None
        The device's own timestamp of the first sample, as sent (it may wrap), or ``None``.
    sequence : int or None
        The packet's sequence number as sent (it may wrap), or ``None``.
    flags : int
        Device status bits carried with the packet (lead-off, saturation), device-specific.
    """

    device_address: str
    stream: str
    channels: tuple[str, ...]
    unit: str
    fs_hz: float | None
    values: npt.NDArray[np.float32]
    device_ticks: int | None = None
    sequence: int | None = None
    flags: int = 0

    @property
    def n_samples(self) -> int:
        return int(self.values.shape[1])


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """A wearable as the user paired it.

    Attributes
    ----------
    address : str
        Bluetooth address or platform identifier.
    name : str
        Advertised name.
    family : str
        Device family key (``"crampsense-band"``, ``"heart-rate"``, ...), naming a module in
        :mod:`crampsense.devices`.
    placement : str
        Where it is worn, one of :data:`PLACEMENTS`.
    firmware : str
        Firmware revision string, ``""`` when unknown.
    battery_percent : int or None
        Last battery level read.
    """

    address: str
    name: str
    family: str
    placement: str
    firmware: str = ""
    battery_percent: int | None = None


@dataclass(frozen=True, slots=True)
class CrampEvent:
    """One detected cramp (or possible cramp) on one leg.

    Attributes
    ----------
    onset, offset : datetime
        Timezone-aware start and end of the sustained contraction.
    leg : {"left", "right"}
    channels : tuple of str
        EMG channels (or ``("acc",)``) that carried the evidence.
    peak_rel, mean_rel : float
        Peak and mean EMG envelope over the event relative to the channel's own floor
        (dimensionless ratio; 1.0 = floor). For accelerometer-only events, ``nan``.
    severity : Severity
    confidence : float
        0–1; accelerometer-only events are capped lower than EMG events.
    kind : {"cramp", "possible_cramp"}
    evidence : {"emg", "acc", "emg+acc"}
    woke, got_up, stretched : bool
        What followed: a wake movement burst, the shank turning vertical (standing), a
        stretch burst at the end.
    """

    onset: datetime
    offset: datetime
    leg: Leg
    channels: tuple[str, ...]
    peak_rel: float
    mean_rel: float
    severity: Severity
    confidence: float
    kind: EventKind = "cramp"
    evidence: Evidence = "emg"
    woke: bool = False
    got_up: bool = False
    stretched: bool = False

    @property
    def duration_s(self) -> float:
        return (self.offset - self.onset).total_seconds()


@dataclass(frozen=True, slots=True)
class CoverageGap:
    """A span of the night in which a leg had no usable signal (never "no cramp")."""

    start: datetime
    end: datetime
    leg: Leg
    reason: str  # "disconnected", "lead-off", "saturated", "not-worn", "packet-loss"

    @property
    def duration_s(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True, slots=True)
class SleepSummary:
    """The sleep period one leg's accelerometer showed (HDCZA, see ``detection.sleep``).

    Attributes
    ----------
    leg : {"left", "right"}
    onset, offset : datetime or None
        Start and end of the sleep period; ``None`` when none was found.
    sleep_s : float
        Time asleep inside it (s).
    wake_bouts : int
        Wake bouts inside the sleep period.
    wake_s : float
        Their total length (s).
    """

    leg: Leg
    onset: datetime | None
    offset: datetime | None
    sleep_s: float
    wake_bouts: int
    wake_s: float


@dataclass(frozen=True, slots=True)
class Night:
    """One recorded night and what was found in it.

    Nights are labelled by the evening they start (``label_date``); ``wake_date`` is shown too.

    Attributes
    ----------
    start, end : datetime
        Timezone-aware recording span.
    devices : tuple of DeviceInfo
    events : tuple of CrampEvent
    gaps : tuple of CoverageGap
        Uncovered time per leg.
    legs : tuple of str
        Legs that were monitored at all.
    session_path : str
        The session log this night came from.
    sleep : tuple of SleepSummary
        Per leg with an accelerometer: the sleep period it showed.
    """

    start: datetime
    end: datetime
    devices: tuple[DeviceInfo, ...] = ()
    events: tuple[CrampEvent, ...] = ()
    gaps: tuple[CoverageGap, ...] = ()
    legs: tuple[Leg, ...] = ()
    session_path: str = ""
    lost_frames: int = 0
    extra: dict[str, float] = field(default_factory=dict)
    sleep: tuple[SleepSummary, ...] = ()

    @property
    def duration_s(self) -> float:
        return (self.end - self.start).total_seconds()

    @property
    def label_date(self) -> str:
        """The evening the night starts, local time, ``YYYY-MM-DD`` (before noon = previous day)."""
        return night_label(self.start).isoformat()

    @property
    def wake_date(self) -> str:
        return self.end.astimezone().date().isoformat()

    def covered_s(self, leg: Leg) -> float:
        """Seconds of the night in which ``leg`` had usable signal."""
        lost = sum(g.duration_s for g in self.gaps if g.leg == leg)
        return max(0.0, self.duration_s - lost)


#: A night that starts before this local hour belongs to the previous evening.
EVENING_CUTOFF_HOUR: Final = 12


def night_label(start: datetime, tz: tzinfo | None = None) -> date:
    """The night a recording starting at ``start`` belongs to: the evening it starts, in ``tz``
    (local time when ``None``); a start before :data:`EVENING_CUTOFF_HOUR` belongs to the
    previous evening."""
    local = start.astimezone(tz)
    return (local - timedelta(days=1)).date() if local.hour < EVENING_CUTOFF_HOUR else local.date()
