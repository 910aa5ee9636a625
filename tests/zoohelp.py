"""Shared by the replay tests: record the device zoo measuring known signals, through bleak."""

from __future__ import annotations

import asyncio
from pathlib import Path

from crampsense.devices.registry import identify
from crampsense.pipeline.record import record_world
from crampsense.storage.paired import PairedDevice
from crampsense.transport.ingest import ReconnectPolicy
from devices.families import case, read_device_information
from firmware_sims.bedroom import ZOO_PLACEMENT_OF, device_zoo


def record_known_zoo(path: Path, duration_s: float, *, ganglion_firmware: int = 3) -> Path:
    """Record ``duration_s`` of every zoo device (known signals, no night) into ``path``.

    Each simulator is paired as the registry identifies it from its advertisement, at its zoo
    placement, and its Device Information strings are stored as ``pair`` would store them.
    """
    world = device_zoo(None, duration_s=duration_s, tick_s=0.05,
                       ganglion_firmware=ganglion_firmware)
    sims = {p.address: p for p in (world.peripheral(a) for a in ZOO_PLACEMENT_OF)}
    devices = []
    for address, sim in sims.items():
        adv = sim.advertisement()
        proto = identify(adv.local_name, list(adv.service_uuids))
        if proto is None:
            msg = f"no device family recognises the zoo's {address} ({adv.local_name})"
            raise AssertionError(msg)
        devices.append(PairedDevice(address, sim.name, proto.family, ZOO_PLACEMENT_OF[address],
                                    simulated=True))
    asyncio.run(
        record_world(
            world, devices, path, commit_interval_s=1.0,
            policy=ReconnectPolicy(scan_timeout_s=1.0, max_backoff_s=2.0, stall_timeout_s=5.0),
            protocol_options={"crampsense-band": dict(case("crampsense-band").options)},
            duration_s=duration_s, metadata={"simulated": "true"},
            device_info={a.lower(): read_device_information(s) for a, s in sims.items()},
        )
    )
    return path
