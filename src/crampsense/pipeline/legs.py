"""Which recorded stream feeds which leg: the choice replay makes before detection.

A night may hold several devices per leg (a band with EMG and an accelerometer, a Polar
Verity Sense, a two-leg Ganglion). :func:`choose_leg_sources` picks, per leg, the one EMG
stream and the one accelerometer stream the detector reads; :func:`channel_legs` splits a
multi-leg amplifier by its stored channel map.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from crampsense.devices.timeline import StreamTimeline
from crampsense.models import ACC_UNIT, EMG_UNIT, DeviceInfo, Leg, placement_leg

__all__ = ["LegSource", "channel_legs", "choose_leg_sources"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LegSource:
    """Which recorded stream feeds one leg's detector input.

    Attributes
    ----------
    leg : {"left", "right"}
    address : str
        Device the stream came from.
    stream : {"emg", "acc"}
    channels : tuple of int
        Rows of the stream's timeline that belong to this leg (all rows for a single-leg
        device; a channel map can split a multi-channel EMG amplifier across both legs).
    """

    leg: Leg
    address: str
    stream: str
    channels: tuple[int, ...]


def channel_legs(
    metadata: Mapping[str, str], channels: Sequence[str]
) -> dict[Leg, tuple[int, ...]]:
    """Rows of an EMG stream per leg, from a family's ``channel_map`` metadata.

    A family whose one device measures both legs (the Ganglion with calf electrodes on each
    side) stores ``"ch1:left-calf:gm;ch2:left-calf:gl;ch3:right-calf:gm;..."`` (channel,
    placement, optional label; ``;``-separated) in its metadata. Channels on placements that
    are not on a leg are left out.

    Returns
    -------
    dict
        ``leg -> row indices`` for the legs that have channels; empty without a map.

    Examples
    --------
    >>> channel_legs({"channel_map": "ch1:left-calf:gm;ch2:right-calf:gm"}, ("ch1", "ch2"))
    {'left': (0,), 'right': (1,)}
    """
    text = metadata.get("channel_map", "")
    out: dict[Leg, tuple[int, ...]] = {}
    for item in filter(None, (part.strip() for part in text.split(";"))):
        fields = item.split(":")
        if len(fields) < 2 or fields[0] not in channels:
            continue
        leg = placement_leg(fields[1])
        if leg is not None:
            out[leg] = (*out.get(leg, ()), channels.index(fields[0]))
    return out


def choose_leg_sources(
    devices: tuple[DeviceInfo, ...],
    timelines: Mapping[tuple[str, str], StreamTimeline],
    metadata: Mapping[str, Mapping[str, str]] | None = None,
) -> list[LegSource]:
    """Pick, per leg, at most one EMG stream and one accelerometer stream for the detector.

    Every family's streams are candidates: EMG (unit µV) from a device worn on that leg, or
    the leg's channels of a multi-leg EMG device (its ``channel_map`` metadata, see
    :func:`channel_legs`); acceleration (unit mg) from a device worn on that leg. Per leg
    the EMG with the highest rate wins (ties: the most valid samples, then pairing order); the
    accelerometer of the same device is preferred, else the one with the most valid samples.
    A leg with acceleration but no EMG gets an accelerometer-only input.

    Returns
    -------
    list of LegSource
        In leg order (left first), EMG before accelerometer.
    """
    meta = metadata or {}
    emg: dict[Leg, list[tuple[float, int, int, LegSource]]] = {}
    acc: dict[Leg, list[tuple[int, int, LegSource]]] = {}
    for order, device in enumerate(devices):
        tl = timelines.get((device.address, "emg"))
        if tl is not None and tl.unit == EMG_UNIT:
            split = channel_legs(meta.get(device.address, {}), tl.channels)
            own = placement_leg(device.placement)
            if not split and own is not None:
                split = {own: tuple(range(len(tl.channels)))}
            for emg_leg, rows in split.items():
                src = LegSource(emg_leg, device.address, "emg", rows)
                emg.setdefault(emg_leg, []).append((tl.fs_hz, int(tl.valid.sum()), -order, src))
        elif tl is not None:
            logger.warning("%s emg is in %r, not %s; not used for detection",
                           device.address, tl.unit, EMG_UNIT)
        acc_leg = placement_leg(device.placement)
        ta = timelines.get((device.address, "acc"))
        if acc_leg is not None and ta is not None:
            if ta.unit != ACC_UNIT:
                logger.warning("%s acc is in %r, not %s; not used for detection",
                               device.address, ta.unit, ACC_UNIT)
                continue
            src = LegSource(acc_leg, device.address, "acc", tuple(range(len(ta.channels))))
            acc.setdefault(acc_leg, []).append((int(ta.valid.sum()), -order, src))
    out: list[LegSource] = []
    for leg in ("left", "right"):
        best_emg = max(emg.get(leg, []), default=None, key=lambda c: c[:3])
        if best_emg is not None:
            out.append(best_emg[3])
        candidates = acc.get(leg, [])
        emg_address = best_emg[3].address if best_emg is not None else None
        same = [c for c in candidates if c[2].address == emg_address]
        best_acc = max(same or candidates, default=None, key=lambda c: c[:2])
        if best_acc is not None:
            out.append(best_acc[2])
    return out
