"""``crampsense scan``: list nearby wearables, what they are and what they can stream."""

from __future__ import annotations

import asyncio

import click
from rich.table import Table

from crampsense.cli.simulated import transport_for
from crampsense.cli.utils import WORLDS, get_context

__all__ = ["run"]


@click.command("scan")
@click.option("--simulate", is_flag=True, help="Scan the built-in firmware simulators.")
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(0.1, 120.0),
    default=None,
    help="Seconds to listen (default from config: recording.scan_timeout_s).",
)
@click.option("--all", "show_all", is_flag=True, help="Also list devices crampsense cannot use.")
@click.option("--world", type=click.Choice(WORLDS), default="bedroom",
              show_default=True,
              help="--simulate only: the bedroom (bands + strap) or the zoo (every family).")
@click.pass_context
def run(
    ctx: click.Context, simulate: bool, timeout_s: float | None, show_all: bool, world: str
) -> None:
    """List nearby wearables, what they are and what they can stream."""
    c = get_context(ctx)
    timeout = timeout_s if timeout_s is not None else c.config["recording.scan_timeout_s"]
    if simulate:
        timeout = min(timeout, 0.5)
    with (
        transport_for(simulate, world) as transport,
        c.err.status(f"Scanning for {timeout:g} s..."),
    ):
        found = asyncio.run(transport.scan(timeout, only_known=not show_all))
    if not found:
        c.out.print(
            "No wearables found. Wake the device (off the charger, electrodes touched), "
            "move closer, or try --simulate."
        )
        return
    table = Table(title="Wearables in range", title_justify="left")
    for col in ("address", "name", "family", "rssi", "streams"):
        table.add_column(col)
    for d in found:
        table.add_row(
            d.address, d.name, d.family or "(unknown)", f"{d.rssi} dBm", ", ".join(d.streams)
        )
    c.out.print(table)
    c.out.print("Pair one with: crampsense pair ADDRESS --placement left-calf" + (
        (" --simulate" + (" --world zoo" if world == "zoo" else "")) if simulate else ""
    ))
