"""``crampsense pair ADDRESS --placement PLACE``: remember a wearable and where it is worn."""

from __future__ import annotations

import asyncio

import click

from crampsense.cli.simulated import transport_for
from crampsense.cli.utils import WORLDS, get_context
from crampsense.models import PLACEMENTS
from crampsense.pipeline.record import pair_device
from crampsense.storage.paired import load_paired, save_device_info, save_paired
from crampsense.transport.ble import describe_streams

__all__ = ["run"]


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
