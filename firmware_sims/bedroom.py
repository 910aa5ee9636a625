"""The standard simulated bedroom: two calf bands and a heart-rate strap on one clock.

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

from collections.abc import Callable
from typing import Final

from crampsense.clock import FakeClock
from firmware_sims.heart_rate import HeartRateStrap
from firmware_sims.night import NightSpec, SyntheticNight, generate_night
from firmware_sims.reference_band import ReferenceBand
from firmware_sims.world import SimulatedWorld

__all__ = [
    "BAND_LEFT",
    "BAND_RIGHT",
    "HR_STRAP",
    "PLACEMENT_OF",
    "bedroom",
    "quiet_bedroom",
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

