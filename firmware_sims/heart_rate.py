"""Firmware of a simulated chest strap exposing the standard Heart Rate Service.

GATT table (handles are assigned by the backend in this order)::

    Heart Rate 0x180D          0x2A37 Heart Rate Measurement   notify
                               0x2A38 Body Sensor Location     read   (chest)
                               0x2A39 Heart Rate Control Point write  (0x01 resets energy)
    Battery 0x180F             0x2A19 Battery Level            read, notify
    Device Information 0x180A  0x2A29 manufacturer, 0x2A24 model, 0x2A25 serial,
                               0x2A26 firmware, 0x2A28 software  read

Behaviour: advertises ``0x180D``; once per simulated second after a central subscribes it
notifies the heart rate and the RR intervals of the beats since the previous notification
(RR intervals that do not fit the MTU wait for the next one, as the spec asks); every
:data:`ENERGY_EVERY_N` notifications it adds the energy expended. Beats follow a seeded
sleeping heart-rate trace (see :func:`sleeping_hr_bpm`), the same for any tick size and across
reconnects: the heart keeps beating while nobody listens, only the notifications stop. The
battery drains linearly with simulated time and is notified when its whole percent changes.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

from crampsense.devices.gatt import (
    BATTERY_LEVEL_UUID,
    BATTERY_SERVICE_UUID,
    BODY_SENSOR_LOCATION_UUID,
    DEVICE_INFORMATION_SERVICE_UUID,
    DEVICE_INFORMATION_UUIDS,
    HEART_RATE_CONTROL_POINT_UUID,
    HEART_RATE_MEASUREMENT_UUID,
    HEART_RATE_SERVICE_UUID,
)
from crampsense.devices.heart_rate import (
    FLAG_CONTACT_DETECTED,
    FLAG_CONTACT_SUPPORTED,
    FLAG_ENERGY_PRESENT,
    FLAG_HR_U16,
    FLAG_RR_PRESENT,
    RR_TICKS_PER_S,
)
from crampsense.errors import DecodeError
from firmware_sims.peripheral import (
    ATT_HEADER_BYTES,
    ATT_READ_NOT_PERMITTED,
    ATT_WRITE_NOT_PERMITTED,
    Advertisement,
    AttError,
    CharDef,
    Link,
    ServiceDef,
    SimulatedPeripheral,
)

__all__ = [
    "ENERGY_EVERY_N",
    "NOTIFY_INTERVAL_S",
    "HeartRateStrap",
    "encode_heart_rate_measurement",
    "rr_ticks_from_s",
    "sleeping_hr_bpm",
]


#: Heart Rate Measurement notification period (s). Straps notify about once a second.
NOTIFY_INTERVAL_S: Final = 1.0
#: Include energy expended in every n-th notification; the Heart Rate Service spec suggests
#: including it about once every 10 measurements to save air time.
ENERGY_EVERY_N: Final = 10
#: Energy expended while asleep (kJ/min): a basal metabolic rate of ~7000 kJ/day.
SLEEP_ENERGY_KJ_PER_MIN: Final = 4.9
#: Sleeping heart rate range of a healthy adult (bpm); the trace stays inside it.
SLEEP_HR_MIN_BPM: Final = 50.0
SLEEP_HR_MAX_BPM: Final = 65.0
_SLEEP_HR_CENTRE_BPM: Final = (SLEEP_HR_MIN_BPM + SLEEP_HR_MAX_BPM) / 2
#: Periods of the slow heart-rate variation (s): sleep-cycle scale changes of 5-90 min.
_SLOW_PERIODS_S: Final = (300.0, 900.0, 2400.0, 5400.0)
#: Respiratory sinus arrhythmia: beat-to-beat modulation at ~15 breaths/min, ±3 % of RR.
_RSA_FREQ_HZ: Final = 0.25
_RSA_REL: Final = 0.03
#: ATT application error the control point answers for an unknown command (HRS 1.0 3.3.1).
_ATT_CONTROL_POINT_NOT_SUPPORTED: Final = 0x80
_NS_PER_S: Final = 1_000_000_000


# ------------------------------------------------------------------ the wire (firmware side)
# Written from the Heart Rate Service 1.0 (docs: PROTOCOLS.md section 4), not with the host's
# codec in crampsense.devices.heart_rate; only the flag bits and the RR resolution are shared.

_U8_MAX: Final = 0xFF
_U16_MAX: Final = 0xFFFF


def rr_ticks_from_s(rr_intervals_s: Sequence[float]) -> tuple[int, ...]:
    """RR intervals (s) in 1/1024 s ticks, rounded to nearest; each must fit a u16.

    Raises
    ------
    DecodeError
        An interval that is negative, not finite, or longer than 65535/1024 s.
    """
    ticks = []
    for i, rr_s in enumerate(rr_intervals_s):
        tick = round(rr_s * RR_TICKS_PER_S) if math.isfinite(rr_s) else -1
        if not 0 <= tick <= _U16_MAX:
            msg = (
                f"RR interval {rr_s!r} s cannot be encoded; allowed are 0 to "
                f"{_U16_MAX / RR_TICKS_PER_S:.3f} s"
            )
            raise DecodeError(msg, offset=i, field="rr_interval")
        ticks.append(tick)
    return tuple(ticks)


def encode_heart_rate_measurement(
    heart_rate_bpm: int,
    *,
    contact_detected: bool | None = None,
    energy_expended_kj: int | None = None,
    rr_intervals_s: Sequence[float] = (),
    rr_ticks: Sequence[int] | None = None,
    hr_u16: bool = False,
) -> bytes:
    """A Heart Rate Measurement (``0x2A37``) value: flags, rate, [energy], [RR intervals].

    ``contact_detected=None`` leaves contact sensing unsupported; a rate above 255 bpm (or
    ``hr_u16``) is sent as u16; ``rr_ticks`` (1/1024 s) wins over ``rr_intervals_s``. The
    caller keeps the value within ``mtu - 3`` bytes.

    Raises
    ------
    DecodeError
        A value that does not fit its field (``field`` names it).

    Examples
    --------
    The specification's example (72 bpm, contact, RR 1.054 s and 0.757 s):

    >>> encode_heart_rate_measurement(72, contact_detected=True, rr_ticks=[1079, 775]).hex()
    '164837040703'
    """
    if not 0 <= heart_rate_bpm <= _U16_MAX:
        msg = f"heart rate {heart_rate_bpm} bpm does not fit a u16; allowed are 0 to {_U16_MAX}"
        raise DecodeError(msg, offset=1, field="heart_rate")
    if energy_expended_kj is not None and not 0 <= energy_expended_kj <= _U16_MAX:
        msg = f"energy expended {energy_expended_kj} kJ does not fit a u16; allowed 0 to {_U16_MAX}"
        raise DecodeError(msg, offset=2, field="energy_expended")
    ticks = tuple(rr_ticks) if rr_ticks is not None else rr_ticks_from_s(rr_intervals_s)
    for i, tick in enumerate(ticks):
        if not 0 <= tick <= _U16_MAX:
            msg = f"RR interval {tick} ticks does not fit a u16; allowed are 0 to {_U16_MAX}"
            raise DecodeError(msg, offset=i, field="rr_interval")
    wide = hr_u16 or heart_rate_bpm > _U8_MAX
    flags = (
        (FLAG_HR_U16 if wide else 0)
        | (FLAG_CONTACT_SUPPORTED if contact_detected is not None else 0)
        | (FLAG_CONTACT_DETECTED if contact_detected else 0)
        | (FLAG_ENERGY_PRESENT if energy_expended_kj is not None else 0)
        | (FLAG_RR_PRESENT if ticks else 0)
    )
    out = bytes([flags]) + int(heart_rate_bpm).to_bytes(2 if wide else 1, "little")
    if energy_expended_kj is not None:
        out += int(energy_expended_kj).to_bytes(2, "little")
    return out + b"".join(int(t).to_bytes(2, "little") for t in ticks)


@functools.lru_cache(maxsize=64)
def _trace_params(seed: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Seeded amplitudes (bpm) and phases (rad) of the slow heart-rate sinusoids."""
    rng = np.random.default_rng(seed)
    half_range = (SLEEP_HR_MAX_BPM - SLEEP_HR_MIN_BPM) / 2
    weights = rng.dirichlet(np.ones(len(_SLOW_PERIODS_S)))
    amplitudes = half_range * weights * rng.uniform(0.6, 1.0)
    phases = rng.uniform(0.0, 2 * np.pi, len(_SLOW_PERIODS_S))
    return tuple(float(a) for a in amplitudes), tuple(float(p) for p in phases)


def sleeping_hr_bpm(t_s: npt.ArrayLike, seed: int) -> npt.NDArray[np.float64]:
    """A seeded, smooth sleeping heart-rate trace.

    Parameters
    ----------
    t_s : array_like
        Simulated monotonic times (s), any shape.
    seed : int
        Seed of the random amplitudes and phases.

    Returns
    -------
    ndarray of float64, same shape as ``t_s``
        Heart rate in bpm, within [``SLEEP_HR_MIN_BPM``, ``SLEEP_HR_MAX_BPM``]: a centre
        of 57.5 bpm plus four sinusoids with periods of 5-90 min and seeded amplitudes
        (summing to at most 7.5 bpm) and phases. A closed form, so any chunking of time
        gives the same numbers.
    """
    amplitudes, phases = _trace_params(seed)
    t = np.asarray(t_s, dtype=np.float64)
    periods = np.asarray(_SLOW_PERIODS_S)
    hr = _SLEEP_HR_CENTRE_BPM + np.sum(
        np.asarray(amplitudes) * np.sin(2 * np.pi * t[..., None] / periods + np.asarray(phases)),
        axis=-1,
    )
    out: npt.NDArray[np.float64] = np.clip(hr, SLEEP_HR_MIN_BPM, SLEEP_HR_MAX_BPM)
    return out


def _sleeping_hr_scalar(t_s: float, seed: int) -> float:
    """:func:`sleeping_hr_bpm` for one time, without numpy overhead (used once per beat)."""
    amplitudes, phases = _trace_params(seed)
    hr = _SLEEP_HR_CENTRE_BPM + sum(
        a * math.sin(2 * math.pi * t_s / period + phase)
        for a, period, phase in zip(amplitudes, _SLOW_PERIODS_S, phases, strict=True)
    )
    return min(SLEEP_HR_MAX_BPM, max(SLEEP_HR_MIN_BPM, hr))


class HeartRateStrap(SimulatedPeripheral):
    """A chest strap's firmware (Heart Rate, Battery and Device Information services).

    Parameters
    ----------
    address : str
        Bluetooth address.
    name : str
        Advertised local name.
    seed : int
        Seed of the heart-rate trace and beat jitter.
    duration_s : float or None
        Simulated monotonic time at which :meth:`finished` turns true (the night is over);
        ``None``: never.
    battery_percent : float
        Battery level at simulated time 0.
    battery_drain_percent_per_h : float
        Linear drain; a coin-cell strap lasts a few hundred hours, so 0.3 %/h by default.
    firmware : str
        Firmware revision string in Device Information.

    Attributes
    ----------
    contact : bool
        Skin contact. Without contact the strap still notifies, with the contact flag clear,
        a heart rate of 0 and no RR intervals.
    beats_s : list of float
        Times of every beat generated so far (s, simulated monotonic), for tests.
    """

    preferred_mtu = 23  # HRM values are short; many straps never ask for more than the default

    def __init__(
        self,
        address: str,
        name: str = "crampsense HR strap",
        *,
        seed: int = 0,
        duration_s: float | None = None,
        battery_percent: float = 100.0,
        battery_drain_percent_per_h: float = 0.3,
        firmware: str = "1.4.2",
    ) -> None:
        super().__init__(address, name)
        self.seed = seed
        self.duration_s = duration_s
        self.battery_start_percent = battery_percent
        self.battery_drain_percent_per_h = battery_drain_percent_per_h
        self.firmware = firmware
        self.contact = True
        self.beats_s: list[float] = []
        self._rng = np.random.default_rng([seed, 1])
        self._last_beat_s = 0.0
        self._pending_rr: list[int] = []
        self._pending_from_s = 0.0
        self._next_notify_ns = 0
        self._n_notified = 0
        self._energy_kj = 0.0
        self._now_ns = 0
        self._last_battery = self.battery_level(0)

    # --------------------------------------------------------------- GATT

    def gatt(self) -> tuple[ServiceDef, ...]:
        dis = tuple(
            CharDef(DEVICE_INFORMATION_UUIDS[k], ("read",), f"{k} string")
            for k in ("manufacturer", "model", "serial", "firmware", "software")
        )
        return (
            ServiceDef(
                HEART_RATE_SERVICE_UUID,
                (
                    CharDef(HEART_RATE_MEASUREMENT_UUID, ("notify",)),
                    CharDef(BODY_SENSOR_LOCATION_UUID, ("read",)),
                    CharDef(HEART_RATE_CONTROL_POINT_UUID, ("write",)),
                ),
            ),
            ServiceDef(BATTERY_SERVICE_UUID, (CharDef(BATTERY_LEVEL_UUID, ("read", "notify")),)),
            ServiceDef(DEVICE_INFORMATION_SERVICE_UUID, dis),
        )

    def advertisement(self) -> Advertisement:
        return Advertisement(local_name=self.name, service_uuids=(HEART_RATE_SERVICE_UUID,))

    def device_information(self) -> dict[str, str]:
        """The Device Information strings (field -> value)."""
        return {
            "manufacturer": "crampsense simulators",
            "model": "HRS-SIM-1",
            "serial": self.address.replace(":", "").upper(),
            "firmware": self.firmware,
            "software": "hr-strap-sim 1",
        }

    def read(self, char_uuid: str) -> bytes:
        if char_uuid == BODY_SENSOR_LOCATION_UUID:
            return bytes([1])  # chest
        if char_uuid == BATTERY_LEVEL_UUID:
            return bytes([self.battery_level(self._current_ns())])
        info = self.device_information()
        for field, uuid in DEVICE_INFORMATION_UUIDS.items():
            if char_uuid == uuid and field in info:
                return info[field].encode()
        raise AttError(ATT_READ_NOT_PERMITTED, f"{char_uuid} is not readable")

    def write(self, char_uuid: str, data: bytes, *, with_response: bool) -> None:
        if char_uuid != HEART_RATE_CONTROL_POINT_UUID:
            raise AttError(ATT_WRITE_NOT_PERMITTED, f"{char_uuid} is not writable")
        if data != b"\x01":
            raise AttError(_ATT_CONTROL_POINT_NOT_SUPPORTED, "control point value not supported")
        self._energy_kj = 0.0

    # --------------------------------------------------------------- behaviour

    def battery_level(self, now_ns: int) -> int:
        """Battery percent at simulated monotonic ``now_ns`` (linear drain, floored at 0)."""
        hours = now_ns / _NS_PER_S / 3600
        level = self.battery_start_percent - self.battery_drain_percent_per_h * hours
        return int(min(100.0, max(0.0, math.ceil(level))))

    def power_cycle(self, now_ns: int) -> None:
        """Reboot (called by ``SimulatedWorld.power_on``): the energy counter restarts at 0."""
        self._energy_kj = 0.0
        self._n_notified = 0
        self._now_ns = now_ns

    def on_connect(self, link: Link) -> None:
        super().on_connect(link)
        now_ns = link.now_ns()
        self._now_ns = now_ns
        self._generate_beats(now_ns / _NS_PER_S)
        self._pending_rr.clear()
        self._pending_from_s = now_ns / _NS_PER_S
        self._next_notify_ns = now_ns + round(NOTIFY_INTERVAL_S * _NS_PER_S)

    def tick(self, now_ns: int) -> None:
        self._now_ns = now_ns
        link = self.link
        if link is None:
            return
        while self._next_notify_ns <= now_ns:
            at_ns = self._next_notify_ns
            self._notify_measurement(link, at_ns)
            self._next_notify_ns += round(NOTIFY_INTERVAL_S * _NS_PER_S)
            level = self.battery_level(at_ns)  # checked at the measurement cadence
            if level != self._last_battery:
                self._last_battery = level
                if BATTERY_LEVEL_UUID in self.subscribed:
                    link.notify(BATTERY_LEVEL_UUID, bytes([level]))

    def finished(self) -> bool:
        return self.duration_s is not None and self._now_ns >= self.duration_s * _NS_PER_S

    def _current_ns(self) -> int:
        return self.link.now_ns() if self.link is not None else self._now_ns

    def _generate_beats(self, until_s: float) -> None:
        """Append beats up to ``until_s``; RR of each beat = 60/HR(t) with RSA and jitter."""
        new_rr: list[int] = []
        t = self._last_beat_s
        while True:
            hr = _sleeping_hr_scalar(t, self.seed)
            rsa = 1.0 + _RSA_REL * math.sin(2 * math.pi * _RSA_FREQ_HZ * t)
            rr_s = 60.0 / hr * rsa * (1.0 + 0.01 * float(self._rng.standard_normal()))
            if t + rr_s > until_s:
                break
            t += rr_s
            self.beats_s.append(t)
            if t > self._pending_from_s:
                new_rr.append(round(rr_s * RR_TICKS_PER_S))
        self._last_beat_s = t
        self._pending_rr.extend(new_rr)

    def _notify_measurement(self, link: Link, at_ns: int) -> None:
        at_s = at_ns / _NS_PER_S
        self._generate_beats(at_s)
        self._n_notified += 1
        self._energy_kj += SLEEP_ENERGY_KJ_PER_MIN * NOTIFY_INTERVAL_S / 60.0
        energy = (
            min(int(self._energy_kj), 0xFFFF) if self._n_notified % ENERGY_EVERY_N == 0 else None
        )
        if not self.contact:
            self._pending_rr.clear()
            payload = encode_heart_rate_measurement(
                0, contact_detected=False, energy_expended_kj=energy
            )
        else:
            hr_bpm = round(_sleeping_hr_scalar(at_s, self.seed))
            fixed = 2 + (2 if energy is not None else 0)  # flags + u8 HR (+ energy)
            room = max(0, (link.mtu - ATT_HEADER_BYTES - fixed) // 2)
            rr, self._pending_rr = self._pending_rr[:room], self._pending_rr[room:]
            payload = encode_heart_rate_measurement(
                hr_bpm, contact_detected=True, energy_expended_kj=energy, rr_ticks=rr
            )
        if HEART_RATE_MEASUREMENT_UUID in self.subscribed:
            link.notify(HEART_RATE_MEASUREMENT_UUID, payload)
