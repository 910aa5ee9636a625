"""``crampsense devices``: list the paired wearables, or forget one."""

from __future__ import annotations

import click
from rich.table import Table

from crampsense.cli.utils import get_context
from crampsense.errors import DeviceNotFoundError
from crampsense.storage.paired import load_paired, save_paired

__all__ = ["run"]


@click.command("devices")
@click.option("--forget", metavar="ADDRESS", help="Forget a paired device.")
@click.pass_context
def run(ctx: click.Context, forget: str | None) -> None:
    """List paired wearables (or forget one)."""
    c = get_context(ctx)
    paired = load_paired(c.data_dir)
    if forget:
        kept = [d for d in paired if d.address.lower() != forget.lower()]
        if len(kept) == len(paired):
            raise DeviceNotFoundError(
                f"no paired device has address {forget!r}; `crampsense devices` lists them"
            )
        save_paired(c.data_dir, kept)
        c.out.print(f"Forgot {forget}.")
        return
    if not paired:
        c.out.print("No paired devices. Find one with `crampsense scan`, then `crampsense pair`.")
        return
    table = Table(title="Paired wearables", title_justify="left")
    for col in ("address", "name", "family", "placement", "firmware", "simulated"):
        table.add_column(col)
    for d in paired:
        table.add_row(
            d.address, d.name, d.family, d.placement, d.firmware, "yes" if d.simulated else ""
        )
    c.out.print(table)
