"""``crampsense pair ADDRESS --placement PLACE``: remember a wearable and where it is worn."""

from __future__ import annotations

import asyncio
import re
from typing import Final

import click

from crampsense.cli.simulated import transport_for
from crampsense.cli.utils import WORLDS, get_context
from crampsense.errors import UsageError
from crampsense.models import PLACEMENTS, placement_leg
from crampsense.pipeline.record import pair_device
from crampsense.storage.paired import load_paired, save_device_info, save_paired
from crampsense.transport.ble import describe_streams

__all__ = ["ADDRESS_RE", "run"]

#: A Bluetooth device address as the platforms show it: a MAC (BlueZ, Windows) or the
#: per-host UUID that macOS's CoreBluetooth uses instead.
ADDRESS_RE: Final = re.compile(
    r"(?:[0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}"
    r"|[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
)
#: Families that measure nothing at a leg: pairing them on one gets a word of advice.
_NOT_LEG_FAMILIES: Final = {"heart-rate": "a heart-rate strap is worn around the chest"}


@click.command("pair")
@click.argument("address")
@click.option(
    "--placement",
    type=click.Choice(PLACEMENTS),
    required=True,
    help="Where the device is worn (bands: left-calf / right-calf).",
)
@click.option("--simulate", is_flag=True, help="Pair a built-in firmware simulator.")
@click.option("--world", type=click.Choice(WORLDS), default="bedroom",
              show_default=True,
              help="--simulate only: the bedroom (bands + strap) or the zoo (every family).")
@click.option("--timeout", "timeout_s", type=click.FloatRange(0.1, 120.0), default=None)
@click.pass_context
def run(
    ctx: click.Context,
    address: str,
    placement: str,
    simulate: bool,
    world: str,
    timeout_s: float | None,
) -> None:
    """Remember a wearable and where it is worn."""
    c = get_context(ctx)
    if not ADDRESS_RE.fullmatch(address):
        raise UsageError(
            f"{address!r} is not a Bluetooth address; use the address `crampsense scan` shows "
            "(like C5:A3:00:00:00:01, or a UUID on macOS)"
        )
    timeout = timeout_s if timeout_s is not None else c.config["recording.scan_timeout_s"]
    with transport_for(simulate, world) as transport:
        paired, protocol, info = asyncio.run(
            pair_device(transport, address, placement,
                        timeout_s=min(timeout, 0.5) if simulate else timeout, simulated=simulate)
        )
    devices = [d for d in load_paired(c.data_dir) if d.address.lower() != address.lower()]
    clash = [d for d in devices if d.placement == placement and d.family == paired.family]
    devices.append(paired)
    path = save_paired(c.data_dir, devices)
    save_device_info(c.data_dir, paired.address, info)
    c.out.print(
        f"Paired {paired.name} ({paired.address}, {paired.family}, firmware "
        f"{paired.firmware or 'unknown'}) as {placement}. Saved in {path}."
    )
    c.out.print(f"Streams: {', '.join(describe_streams(protocol)) or 'none'}.")
    for d in clash:
        c.out.print(f"Note: {d.name} ({d.address}) is also paired as {placement}.")
    why = _NOT_LEG_FAMILIES.get(paired.family)
    if why is not None and placement_leg(placement) is not None:
        c.out.print(
            f"Note: {why}; on the {placement.replace('-', ' ')} it gives heart rate only, no "
            f"cramp evidence. To change it: crampsense pair {paired.address} --placement chest"
            + (" --simulate" if simulate else "")
        )
