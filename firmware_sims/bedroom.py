"""The standard simulated bedroom (two calf bands and a heart-rate strap on one clock), and the
device zoo (one simulator of every device family, see :func:`device_zoo`).

``crampsense scan --simulate``, ``pair --simulate``, ``record --simulate`` and ``demo`` all see
the same three devices at the same addresses, so a user can walk through pairing and recording
without hardware:

==================  =====================  ==========================================
address             name                   firmware
==================  =====================  ==========================================
``C5:A3:00:00:00:01``  crampsense band L   reference band, worn on the left calf
``C5:A3:00:00:00:02``  crampsense band R   reference band, worn on the right calf
``C5:A3:00:00:00:10``  crampsense HR strap standard Heart Rate Service chest strap
==================  =====================  ==========================================

The bands measure a :class:`~firmware_sims.night.SyntheticNight` (one leg each); the world's
clock starts at the night's start.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Final

from crampsense.clock import FakeClock
from firmware_sims.heart_rate import HeartRateStrap
from firmware_sims.night import NightSpec, SyntheticNight, generate_night
from firmware_sims.peripheral import SimulatedPeripheral
from firmware_sims.reference_band import ReferenceBand
from firmware_sims.world import SimulatedWorld

__all__ = [
    "BAND_LEFT",
    "BAND_RIGHT",
    "HR_STRAP",
    "PLACEMENT_OF",
    "ZOO_BAND",
    "ZOO_GANGLION",
    "ZOO_HR_STRAP",
    "ZOO_MOVESENSE",
    "ZOO_PLACEMENT_OF",
    "ZOO_POLAR_H10",
    "ZOO_POLAR_SENSE",
    "bedroom",
    "device_zoo",
    "quiet_bedroom",
    "quiet_zoo",
]

BAND_LEFT: Final = "C5:A3:00:00:00:01"
BAND_RIGHT: Final = "C5:A3:00:00:00:02"
HR_STRAP: Final = "C5:A3:00:00:00:10"
#: Where each simulated device is meant to be worn (what the demo pairs it as).
PLACEMENT_OF: Final = {BAND_LEFT: "left-calf", BAND_RIGHT: "right-calf", HR_STRAP: "chest"}

#: Clock errors of the two bands (ppm). Real crystal oscillators are within about ±50 ppm; the
#: two bands are given different signs so the replay has to reconcile both against the host.
LEFT_DRIFT_PPM: Final = 23.0
RIGHT_DRIFT_PPM: Final = -31.0
#: Simulated seconds per pump step. A real link delivers a band's packets in bursts each
#: connection event (7.5-50 ms apart); 0.25 s bursts keep host receive times realistic enough
#: for the replay's clock fit while letting the bands encode ~5 packets per call, which is what
#: makes an 8-h night record in tens of seconds.
SIM_TICK_S: Final = 0.25


def bedroom(
    night: SyntheticNight,
    *,
    speed: float | None = None,
    clock: FakeClock | None = None,
    include: Callable[[str], bool] | None = None,
    tick_s: float = SIM_TICK_S,
) -> SimulatedWorld:
    """A world whose bands stream ``night`` (left and right leg) and a heart-rate strap.

    Parameters
    ----------
    night : SyntheticNight
        What the bands measure.
    speed : float or None
        Simulated seconds per real second; ``None`` runs as fast as the CPU allows.
    clock : FakeClock, optional
        Defaults to a new clock at the night's start.
    include : callable, optional
        Keep only the devices whose address it accepts.
    tick_s : float
        Simulated seconds per pump step (see :data:`SIM_TICK_S`).
    """
    clock = clock or FakeClock(night.spec.start)
    keep = include or (lambda _address: True)
    world = SimulatedWorld(clock, speed=speed, tick_s=tick_s)
    legs = night.spec.legs
    if "left" in legs and keep(BAND_LEFT):
        world.add(
            ReferenceBand(
                BAND_LEFT, night.leg("left"), name="crampsense band L",
                placement_hint="left-calf", drift_ppm=LEFT_DRIFT_PPM,
            )
        )
    if "right" in legs and keep(BAND_RIGHT):
        world.add(
            ReferenceBand(
                BAND_RIGHT, night.leg("right"), name="crampsense band R",
                placement_hint="right-calf", drift_ppm=RIGHT_DRIFT_PPM,
                clock_offset_us=1_234_567_890,
            )
        )
    if keep(HR_STRAP):
        world.add(
            HeartRateStrap(
                HR_STRAP, "HR strap (sim)", seed=night.spec.seed,
                duration_s=night.spec.duration_s,
            )
        )
    return world


def quiet_bedroom(duration_s: float = 600.0, emg_fs_hz: float = 500.0) -> SimulatedWorld:
    """The bedroom with a short, event-free night: for scanning and pairing."""
    spec = NightSpec(seed=0, duration_s=duration_s, emg_fs_hz=emg_fs_hz, n_cramps=0,
                     lookalikes=())
    return bedroom(generate_night(spec))



# --------------------------------------------------------------------------- the device zoo

ZOO_BAND: Final = "C5:A3:00:00:0A:01"
ZOO_POLAR_SENSE: Final = "A0:9E:1A:00:0A:02"
ZOO_POLAR_H10: Final = "A0:9E:1A:00:0A:03"
ZOO_GANGLION: Final = "E8:8A:00:00:0A:04"
ZOO_MOVESENSE: Final = "0C:8C:DC:00:0A:05"
ZOO_HR_STRAP: Final = "C5:A3:00:00:0A:10"
#: Where each zoo device is worn (what ``crampsense pair`` is told): the band on the left
#: calf, a Verity Sense strapped to the right calf (acceleration only), the H10 on the chest,
#: the Ganglion on the left calf (its electrodes on both calves, see its channel map), the
#: Movesense on the left ankle (a shin placement: acceleration only), the strap on the chest.
ZOO_PLACEMENT_OF: Final = {
    ZOO_BAND: "left-calf",
    ZOO_POLAR_SENSE: "right-calf",
    ZOO_POLAR_H10: "chest",
    ZOO_GANGLION: "left-calf",
    ZOO_MOVESENSE: "left-shin",
    ZOO_HR_STRAP: "chest",
}


def device_zoo(
    night: SyntheticNight | None = None,
    *,
    duration_s: float | None = None,
    speed: float | None = None,
    clock: FakeClock | None = None,
    include: Callable[[str], bool] | None = None,
    tick_s: float = SIM_TICK_S,
    ganglion_firmware: int = 3,
) -> SimulatedWorld:
    """A world holding one simulator of every device family crampsense reads.

    ==========================  ===========================  ==============================
    address                     device                       measures
    ==========================  ===========================  ==============================
    :data:`ZOO_BAND`            crampsense reference band    left leg: EMG + acceleration
    :data:`ZOO_POLAR_SENSE`     Polar Verity Sense           right leg: acceleration only
    :data:`ZOO_POLAR_H10`       Polar H10 (chest)            acceleration (chest) + ECG
    :data:`ZOO_GANGLION`        OpenBCI Ganglion             ch1-2 left calf, ch3-4 right
    :data:`ZOO_MOVESENSE`       Movesense (left ankle)       left leg: acceleration
    :data:`ZOO_HR_STRAP`        Heart Rate Service strap     heart rate and RR
    ==========================  ===========================  ==============================

    Parameters
    ----------
    night : SyntheticNight or None
        What the leg sensors measure (the band, Sense, Ganglion and Movesense take their leg
        of it). ``None``: every device measures the known signal of its contract case
        (:mod:`firmware_sims.zoo`), so a test can compare the replay with it.
    duration_s : float, optional
        Length of the known-signal recording (``night=None``; default 600 s).
    speed, clock, include, tick_s
        As for :func:`bedroom`; the clock defaults to the night's start (or
        :data:`firmware_sims.zoo.WALL0` for known signals).
    ganglion_firmware : {2, 3}
        Wire format of the simulated Ganglion.
    """
    from firmware_sims.ganglion import Ganglion  # noqa: PLC0415
    from firmware_sims.movesense import Movesense  # noqa: PLC0415
    from firmware_sims.polar import PolarSensor  # noqa: PLC0415
    from firmware_sims.zoo import (  # noqa: PLC0415
        WALL0,
        known_band,
        known_ganglion,
        known_hr_strap,
        known_movesense,
        known_polar,
    )

    keep = include or (lambda _address: True)
    if night is None:
        length_s = 600.0 if duration_s is None else float(duration_s)
        world = SimulatedWorld(clock or FakeClock(WALL0), speed=speed, tick_s=tick_s)
        known: tuple[tuple[str, Callable[[str, float], SimulatedPeripheral]], ...] = (
            (ZOO_BAND, known_band),
            (ZOO_POLAR_SENSE, functools.partial(known_polar, model="verity-sense")),
            (ZOO_POLAR_H10, functools.partial(known_polar, model="h10")),
            (ZOO_GANGLION, functools.partial(known_ganglion, firmware=ganglion_firmware)),
            (ZOO_MOVESENSE, known_movesense),
            (ZOO_HR_STRAP, known_hr_strap),
        )
        for address, build in known:
            if keep(address):
                world.add(build(address, length_s))
        return world
    world = SimulatedWorld(clock or FakeClock(night.spec.start), speed=speed, tick_s=tick_s)
    left = night.leg("left") if "left" in night.spec.legs else None
    right = night.leg("right") if "right" in night.spec.legs else None
    if left is not None and keep(ZOO_BAND):
        world.add(ReferenceBand(ZOO_BAND, left, name="crampsense band L",
                                placement_hint="left-calf", drift_ppm=LEFT_DRIFT_PPM))
    if right is not None and keep(ZOO_POLAR_SENSE):
        world.add(PolarSensor(ZOO_POLAR_SENSE, right, model="verity-sense"))
    if left is not None and keep(ZOO_POLAR_H10):
        world.add(PolarSensor(ZOO_POLAR_H10, left, model="h10", ecg_seed=night.spec.seed))
    if left is not None and keep(ZOO_GANGLION):
        world.add(Ganglion(ZOO_GANGLION, left, right, firmware=ganglion_firmware))
    if left is not None and keep(ZOO_MOVESENSE):
        world.add(Movesense(ZOO_MOVESENSE, left))
    if keep(ZOO_HR_STRAP):
        world.add(HeartRateStrap(ZOO_HR_STRAP, "HR strap (zoo)", seed=night.spec.seed,
                                 duration_s=night.spec.duration_s))
    return world


def quiet_zoo(duration_s: float = 600.0) -> SimulatedWorld:
    """The device zoo with a short, event-free night: for scanning and pairing."""
    spec = NightSpec(seed=0, duration_s=duration_s, emg_fs_hz=500.0, n_cramps=0, lookalikes=())
    return device_zoo(generate_night(spec))
