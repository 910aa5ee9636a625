"""Known signals and the device zoo's simulators that measure them.

A :class:`KnownSignal` is a closed-form signal every simulator can measure, so a recording
can be compared with what the devices were given. The ``known_*`` builders make one simulator
of each family measuring its own seeded known signal; :func:`firmware_sims.bedroom.device_zoo`
(``record --simulate --world zoo``) puts them on one clock starting at :data:`WALL0`, and the
family contract cases in the tests build the same simulators, so a test can check a replay
against the truth.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

import numpy as np
import numpy.typing as npt

from crampsense.clock import ns_from_datetime
from crampsense.devices.ganglion import FS_HZ as GANGLION_FS_HZ
from crampsense.devices.polar import MODELS
from crampsense.models import G_MG
from firmware_sims.ganglion import Ganglion
from firmware_sims.heart_rate import HeartRateStrap
from firmware_sims.movesense import Movesense, resource_of_path
from firmware_sims.peripheral import SimulatedPeripheral
from firmware_sims.polar import PolarSensor
from firmware_sims.reference_band import ReferenceBand

__all__ = [
    "BAND_EMG_FS_HZ",
    "BAND_IMU_FS_HZ",
    "HR_SEED",
    "MOVESENSE_RESOURCE",
    "WALL0",
    "WALL0_NS",
    "KnownSignal",
    "known_band",
    "known_ganglion",
    "known_hr_strap",
    "known_movesense",
    "known_polar",
]

#: Wall-clock time of simulated monotonic 0 in every known-signal run (a winter night, UTC).
WALL0: Final = datetime(2025, 1, 15, 22, 30, tzinfo=UTC)
WALL0_NS: Final = ns_from_datetime(WALL0)

#: Rates of the known-signal band (Hz): the recorder's default EMG rate for clinical leg EMG
#: and the band's default accelerometer rate.
BAND_EMG_FS_HZ: Final = 500
BAND_IMU_FS_HZ: Final = 50
#: The Movesense resource the known-signal sensor streams.
MOVESENSE_RESOURCE: Final = "/Meas/Acc/52"
#: The known-signal strap's trace seed.
HR_SEED: Final = 11


class KnownSignal:
    """A :class:`~firmware_sims.peripheral.SignalSource` with a closed-form, known signal.

    EMG channel ``c`` is a sum of three sines of seeded frequencies (10-45 Hz, below every
    family's Nyquist rate at 100 Hz and up) and amplitudes (15-40 µV: small enough that
    sample-to-sample steps fit the Ganglion's 18-bit deltas, large enough to be hundreds of
    counts on the reference band); the accelerometer is gravity along z plus slow seeded
    sines (±150 mg at 0.05-0.2 Hz: under 190 mg/s, so sensors that take the three axes a few
    ms apart, or the source sample before, still read it within a few mg). Incommensurate
    frequencies make every window of a few samples unique, so a decoded stretch can be
    located in the truth without ambiguity.

    Parameters
    ----------
    emg_fs_hz, acc_fs_hz : float
        Rates at which sample ``i`` is taken (at ``i / fs`` simulated seconds).
    duration_s : float
        Length of the recording.
    emg_channels : tuple of str
        EMG channel names (any number).
    seed : int
        Seed of the frequencies, amplitudes and phases.
    """

    def __init__(
        self,
        emg_fs_hz: float,
        acc_fs_hz: float,
        duration_s: float,
        *,
        emg_channels: tuple[str, ...] = ("gm", "gl"),
        seed: int = 0,
    ) -> None:
        self._emg_fs_hz = float(emg_fs_hz)
        self._acc_fs_hz = float(acc_fs_hz)
        self._duration_s = float(duration_s)
        self._channels = tuple(emg_channels)
        rng = np.random.default_rng([seed, 7])
        n_ch = len(self._channels)
        self._emg_f = rng.uniform(10.0, 45.0, (n_ch, 3))
        self._emg_a = rng.uniform(15.0, 40.0, (n_ch, 3))
        self._emg_p = rng.uniform(0.0, 2 * np.pi, (n_ch, 3))
        self._acc_f = rng.uniform(0.05, 0.2, (3, 2))
        self._acc_a = rng.uniform(40.0, 75.0, (3, 2))
        self._acc_p = rng.uniform(0.0, 2 * np.pi, (3, 2))

    @property
    def emg_fs_hz(self) -> float:
        return self._emg_fs_hz

    @property
    def acc_fs_hz(self) -> float:
        return self._acc_fs_hz

    @property
    def emg_channels(self) -> tuple[str, ...]:
        return self._channels

    @property
    def duration_s(self) -> float:
        return self._duration_s

    def emg_at(self, t_s: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """EMG (µV) at times ``t_s`` (s), shape (n_channels, n)."""
        t = np.asarray(t_s, dtype=np.float64).reshape(1, 1, -1)
        phase = 2 * np.pi * self._emg_f[..., None] * t + self._emg_p[..., None]
        out: npt.NDArray[np.float64] = np.sum(self._emg_a[..., None] * np.sin(phase), axis=1)
        return out

    def acc_at(self, t_s: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Acceleration (mg) at times ``t_s`` (s), shape (3, n): gravity on z plus sines."""
        t = np.asarray(t_s, dtype=np.float64).reshape(1, 1, -1)
        phase = 2 * np.pi * self._acc_f[..., None] * t + self._acc_p[..., None]
        out: npt.NDArray[np.float64] = np.sum(self._acc_a[..., None] * np.sin(phase), axis=1)
        out[2] += G_MG
        return out

    def emg_uv(self, start: int, n: int) -> npt.NDArray[np.float32]:
        idx = np.arange(start, start + n, dtype=np.float64)
        return self.emg_at(idx / self._emg_fs_hz).astype(np.float32)

    def acc_mg(self, start: int, n: int) -> npt.NDArray[np.float32]:
        idx = np.arange(start, start + n, dtype=np.float64)
        return self.acc_at(idx / self._acc_fs_hz).astype(np.float32)

    def lead_off(self, start: int, n: int) -> npt.NDArray[np.bool_]:
        del start
        return np.zeros(n, dtype=np.bool_)


def known_band(address: str, duration_s: float) -> SimulatedPeripheral:
    """A reference band measuring known signal seed 1 at 500/50 Hz, its tick counter 20 s
    before its u32 wrap (every run crosses it)."""
    source = KnownSignal(BAND_EMG_FS_HZ, BAND_IMU_FS_HZ, duration_s, seed=1)
    return ReferenceBand(address, source, clock_offset_us=2**32 - 20_000_000)


def known_polar(address: str, duration_s: float, *, model: str) -> SimulatedPeripheral:
    """A Polar sensor (``"h10"`` or ``"verity-sense"``) measuring known signal seed 2 at the
    model's default ACC rate; an H10's ECG is the synthetic trace of seed 3."""
    acc_fs = float(MODELS[model].acc_default_hz)
    source = KnownSignal(BAND_EMG_FS_HZ, acc_fs, duration_s, seed=2)
    return PolarSensor(address, source, model=model, ecg_seed=3)


def known_ganglion(address: str, duration_s: float, *, firmware: int) -> SimulatedPeripheral:
    """A Ganglion of ``firmware`` 2 or 3: channels 1-2 measure known signal seed 4, 3-4 seed 5."""
    left = KnownSignal(GANGLION_FS_HZ, GANGLION_FS_HZ, duration_s, seed=4)
    right = KnownSignal(GANGLION_FS_HZ, GANGLION_FS_HZ, duration_s, seed=5)
    return Ganglion(address, left, right, firmware=firmware)


def known_movesense(address: str, duration_s: float) -> SimulatedPeripheral:
    """A Movesense measuring known signal seed 6 at the rate of :data:`MOVESENSE_RESOURCE`."""
    resource = resource_of_path(MOVESENSE_RESOURCE)
    if resource is None:
        msg = f"{MOVESENSE_RESOURCE} is not a resource the simulated Movesense offers"
        raise ValueError(msg)
    fs = float(resource.rate_hz)
    return Movesense(address, KnownSignal(fs, fs, duration_s, seed=6))


def known_hr_strap(address: str, duration_s: float) -> SimulatedPeripheral:
    """A Heart Rate Service strap following the seeded sleeping trace :data:`HR_SEED`."""
    return HeartRateStrap(address, "HR strap (contract)", seed=HR_SEED, duration_s=duration_s)
