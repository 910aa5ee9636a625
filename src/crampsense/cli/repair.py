"""``crampsense repair SESSION [--out NEW]``: recover every intact frame of a damaged session.

The damaged file is only read; the recovered frames, devices, marks and metadata go into a
new, valid session file (never an existing one). Also the lines ``replay`` prints when it had
to recover a damaged session by itself (:func:`describe_salvage`).
"""

from __future__ import annotations

from datetime import tzinfo
from pathlib import Path
from typing import Final

import click

from crampsense.cli.utils import get_context, local_tz
from crampsense.clock import datetime_from_ns
from crampsense.storage.salvage import FrameHole, SalvageReport
from crampsense.storage.session_log import repair_session

__all__ = ["describe_salvage", "run"]

#: Gaps named one by one in the report; the rest are summed up in one clause, so the report
#: stays two lines however scattered the damage.
MAX_LISTED_HOLES: Final = 3


def _clock(ns: int | None, tz: tzinfo) -> str:
    return "?" if ns is None else datetime_from_ns(ns).astimezone(tz).strftime("%H:%M:%S")


def _hole(hole: FrameHole, tz: tzinfo) -> str:
    span = "" if hole.duration_s is None else f", {hole.duration_s:.1f} s"
    return (
        f"{_clock(hole.after_host_time_ns, tz)}-{_clock(hole.before_host_time_ns, tz)} "
        f"({hole.frames:,} frames{span})"
    )


def describe_salvage(report: SalvageReport, name: str, *, tz: tzinfo) -> list[str]:
    """One or two lines: what came back from a damaged session, and where frames are missing.

    Parameters
    ----------
    report : SalvageReport
    name : str
        The session's file name, as the person knows it.
    tz : tzinfo
        Time zone for the clock times of the gaps.
    """
    damage = [f"{report.pages_unreadable:,} of {report.pages:,} pages unreadable"]
    if report.wal_frames_damaged:
        damage.append(f"{report.wal_frames_damaged:,} -wal frames damaged")
    if report.cells_rejected:
        damage.append(f"{report.cells_rejected:,} garbled rows dropped")
    missing = (
        f"{report.frames_missing:,} frames are missing in {len(report.holes):,} "
        f"{'gap' if len(report.holes) == 1 else 'gaps'}"
        if report.holes
        else "no gap between the first and the last of them"
    )
    first = (
        f"{name} is damaged ({', '.join(damage)}): recovered {report.frames_recovered:,} "
        f"frames page by page; {missing}."
    )
    if report.pages_past_end:
        first = first[:-1] + (
            f"; the file is cut short ({report.pages_past_end:,} pages missing at its end), "
            "so later frames may be lost too."
        )
    if not report.holes:
        return [first]
    listed = [_hole(h, tz) for h in report.holes[:MAX_LISTED_HOLES]]
    rest = report.holes[MAX_LISTED_HOLES:]
    if rest:
        seconds = sum(h.duration_s or 0.0 for h in rest)
        listed.append(
            f"and {len(rest):,} more ({sum(h.frames for h in rest):,} frames, {seconds:.1f} s)"
        )
    return [first, f"  No frames at {', '.join(listed)}."]


@click.command("repair", short_help="Recover every intact frame of a damaged session.")
@click.argument("session", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--out",
    "out_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="New session file to write (default: SESSION's name with .repaired before the "
    "suffix, beside it). Never an existing file.",
)
@click.pass_context
def run(ctx: click.Context, session: Path, out_path: Path | None) -> None:
    """Recover every intact frame of a damaged session into a new session file.

    Reads SESSION page by page (it is never modified), keeps every frame, device, mark and
    metadata row an intact page holds, and writes them to a new, valid session that `replay`
    reads like any other. Says how many frames came back and where the gaps are.
    """
    c = get_context(ctx)
    out = out_path or session.with_name(f"{session.stem}.repaired{session.suffix or '.session'}")
    report = repair_session(session, out)
    for line in describe_salvage(report, session.name, tz=local_tz()):
        c.out.print(line, soft_wrap=True)
    c.out.print(
        f"Wrote {report.frames_recovered:,} frames to {out}; {session.name} was not changed.",
        soft_wrap=True,
    )
