"""``crampsense demo``: one whole simulated night, end to end, checked against ground truth.

1. The simulated bedroom (two calf bands, a heart-rate strap) is scanned and paired through
   bleak's ``BleakScanner``/``BleakClient`` with the firmware-simulator backend.
2. A seeded 8-hour night with cramps and look-alikes is recorded, as fast as the CPU allows,
   into a crash-safe session file; the right band's link is dropped once to show a reconnect.
3. The session is replayed through the decoders and the detector.
4. The detected cramps are matched against the simulator's ground truth (both are printed).
5. The morning summary is printed, joined with the bundled example journal.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import click
import polars as pl
from rich.console import Console
from rich.table import Table

from crampsense.cli.replay import replay_session, store_night
from crampsense.cli.simulated import (
    BAND_RIGHT,
    PLACEMENT_OF,
    bedroom,
    demo_spec,
    generate_night,
    progress_bar,
    simulated_transport,
)
from crampsense.cli.utils import get_context
from crampsense.clock import datetime_from_ns
from crampsense.config import Config
from crampsense.detection import compare_events
from crampsense.devices.registry import protocol_for
from crampsense.errors import CrampsenseError, StorageError
from crampsense.journal.log import entries_frame, example_journal_text, parse_journal
from crampsense.pipeline.record import record_world
from crampsense.storage.files import private_dir
from crampsense.storage.paired import PairedDevice, save_paired
from crampsense.summaries.morning import build_morning_summary, format_duration, render_summary
from crampsense.transport.ble import describe_streams
from crampsense.transport.ingest import ReconnectPolicy

__all__ = ["run", "run_demo"]

#: The demo drops the right band's link once, at the first moment after this many hours at
#: which the right leg has no simulated event within DROP_CLEARANCE_S, so the reconnect is
#: visible in the summary without hiding a cramp.
DROP_AFTER_H: Final = 1.5
DROP_CLEARANCE_S: Final = 300.0
#: The night's timezone for display: the example journal and simulated night are in UTC.
DEMO_TZ: Final = UTC


def _drop_time_s(truth: pl.DataFrame, duration_s: float) -> float | None:
    right = truth.filter(pl.col("leg") == "right")
    t = DROP_AFTER_H * 3600.0
    while t < duration_s - DROP_CLEARANCE_S:
        clash = right.filter(
            (pl.col("onset_s") < t + DROP_CLEARANCE_S) & (pl.col("offset_s") > t - DROP_CLEARANCE_S)
        )
        if clash.is_empty():
            return t
        t += 60.0
    return None


def _flags(row: dict[str, object]) -> str:
    return " / ".join("yes" if row[k] else "no" for k in ("woke", "got_up", "stretched"))


def _clock(seconds: float, start: datetime) -> str:
    return datetime_from_ns(
        int(start.timestamp() * 1e9) + int(seconds * 1e9)
    ).astimezone(DEMO_TZ).strftime("%H:%M:%S")


def _fresh_folder(wanted: Path | None, parent: Path) -> Path:
    """The folder the demo may write into: ``wanted`` if new or empty, else refused; without
    ``wanted``, a new ``parent/<date-time>`` (the demo never writes over anything)."""
    if wanted is not None:
        if wanted.exists() and (not wanted.is_dir() or any(wanted.iterdir())):
            raise StorageError(
                f"{wanted} is not an empty folder; the demo writes only into a new or empty "
                f"folder (leave out --out for a fresh one under {parent})",
                path=str(wanted),
            )
        return private_dir(wanted)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    for n in range(1, 1000):
        folder = parent / (stamp if n == 1 else f"{stamp}-{n}")
        if not folder.exists():
            return private_dir(folder)
    raise StorageError(f"cannot find a fresh folder for the demo under {parent}",
                       path=str(parent))


def run_demo(
    out: Console,
    *,
    out_dir: Path,
    seed: int,
    emg_fs_hz: int,
    config: Config,
) -> bool:
    """Run the demo; returns True when the detected cramps match the ground truth."""
    wall0 = time.perf_counter()
    spec = dataclasses.replace(demo_spec(seed), emg_fs_hz=float(emg_fs_hz))
    night = generate_night(spec)
    out.rule("[bold]crampsense demo[/]: one simulated night, end to end")
    out.print(
        f"Night {spec.start:%Y-%m-%d %H:%M} UTC, {spec.duration_s / 3600:g} h, seed {seed}; "
        f"bands sample calf EMG at {emg_fs_hz} Hz (2 channels) and the shank accelerometer "
        f"at {spec.acc_fs_hz:g} Hz."
    )

    # 1. scan and pair through bleak
    world = bedroom(night)
    transport = simulated_transport(world)
    found = asyncio.run(transport.scan(0.3, only_known=True))
    table = Table(title="1. Scan (bleak BleakScanner, firmware-simulator backend)",
                  title_justify="left")
    for col in ("address", "name", "family", "paired as", "streams"):
        table.add_column(col)
    paired: list[PairedDevice] = []
    options = {"crampsense-band": {"emg_fs_hz": emg_fs_hz, "imu_fs_hz": int(spec.acc_fs_hz)}}
    for d in found:
        placement = PLACEMENT_OF.get(d.address, "other")
        streams = (
            describe_streams(protocol_for(d.family, **options.get(d.family, {})))
            if d.family else d.streams
        )
        table.add_row(d.address, d.name, d.family or "?", placement, ", ".join(streams))
        if d.family is not None:
            paired.append(PairedDevice(d.address, d.name, d.family, placement, simulated=True))
    out.print(table)
    private_dir(out_dir / "sessions")
    save_paired(out_dir, paired)

    # 2. record the night
    drop_s = _drop_time_s(night.truth, spec.duration_s)
    if drop_s is not None:
        world.schedule(drop_s, lambda: world.drop_link(BAND_RIGHT))
    path = out_dir / "sessions" / f"{spec.start.astimezone(UTC):%Y-%m-%dT%H%M%SZ}.session"
    policy = ReconnectPolicy(
        scan_timeout_s=2.0,
        max_backoff_s=config["recording.reconnect_max_backoff_s"],
        stall_timeout_s=config["recording.stall_timeout_s"],
    )
    with progress_bar(out) as bar:
        task = bar.add_task("the night", total=spec.duration_s, clock="")

        def progress(sim_s: float) -> None:
            bar.update(task, completed=sim_s, clock=_clock(sim_s, spec.start) + " UTC")

        report = asyncio.run(
            record_world(
                world, paired, path,
                commit_interval_s=config["recording.commit_interval_s"], policy=policy,
                protocol_options=options, duration_s=spec.duration_s,
                metadata={"simulated": "true", "seed": str(seed), "demo": "true"},
                on_progress=progress,
            )
        )
    out.print(
        f"2. Recorded {report.frames:,} notifications ({report.bytes_on_disk / 1e6:.0f} MB) "
        f"of {report.simulated_s / 3600:.2f} h in {report.wall_s:.1f} s wall "
        f"(x{report.simulated_s / max(report.wall_s, 1e-9):,.0f} real time) into {path}"
    )
    if drop_s is not None:
        out.print(
            f"   The right band's link was dropped at {_clock(drop_s, spec.start)}; the "
            f"recorder reconnected with a fresh scan ({report.drops} drop(s), "
            f"{report.failed_attempts} failed attempt(s))."
        )

    # 3. replay and detect
    analysis = replay_session(out, path, config=config, prefix="3. ")
    store_night(analysis, out_dir)
    detected = analysis.results.events
    truth = night.cramps()

    # 4. compare with ground truth
    scores = compare_events(detected, truth, iou=0.2)
    cmp = Table(title="4. Cramps: simulator ground truth vs detected", title_justify="left")
    for col in ("", "onset", "leg", "duration", "severity", "woke / got up / stretched"):
        cmp.add_column(col)
    for row in truth.iter_rows(named=True):
        cmp.add_row(
            "truth", _clock(row["onset_s"], spec.start), row["leg"],
            format_duration(row["offset_s"] - row["onset_s"]), str(row["severity"]),
            _flags(row),
        )
    for row in detected.iter_rows(named=True):
        cmp.add_row(
            "[bold]detected[/]", _clock(row["onset_s"], spec.start), row["leg"],
            format_duration(row["duration_s"]), f"{row['severity']} ({row['kind']})",
            _flags(row),
        )
    out.print(cmp)
    lookalikes = night.truth.filter(pl.col("kind") != "cramp")
    out.print(
        "   Look-alikes in the night (none should be reported): "
        + ", ".join(
            f"{k} x{n}" for k, n in lookalikes.group_by("kind").len().sort("kind").iter_rows()
        )
    )
    ok = scores.tp == scores.n_true and scores.fp == 0
    verdict = "[bold green]MATCH[/]" if ok else "[bold red]MISMATCH[/]"
    out.print(
        f"   {verdict}: {scores.tp} of {scores.n_true} true cramps found, "
        f"{scores.fp} false, {scores.fn} missed (one-to-one matching, IoU >= {scores.iou:g}); "
        f"median onset error {scores.onset_error_s:+.1f} s, "
        f"median duration error {scores.duration_error_s:+.1f} s."
    )

    # 5. the morning summary, joined with the bundled example journal
    entries = parse_journal(example_journal_text(), tz=DEMO_TZ, source="example_journal.txt")
    summary = build_morning_summary(analysis.night, entries_frame(entries), tz=DEMO_TZ,
                                    baseline_days=config["summary.baseline_days"])
    out.rule("5. Morning summary")
    color = out.is_terminal and not out.no_color
    out.print(render_summary(summary, width=min(out.width, 100), color=color))
    out.rule()
    out.print(f"Demo finished in {time.perf_counter() - wall0:.1f} s wall. Files in {out_dir}.")
    return ok


@click.command("demo")
@click.option("--seed", type=int, default=20261120, show_default=True, help="Night generator seed.")
@click.option(
    "--emg-rate",
    "emg_fs_hz",
    type=click.IntRange(200, 2000),
    default=500,
    show_default=True,
    help="EMG sample rate of the simulated bands (Hz; clinical leg EMG uses 500).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="A new or empty folder for the demo's session and tables "
         "(default: a fresh <data dir>/demo/<date-time>).",
)
@click.pass_context
def run(ctx: click.Context, seed: int, emg_fs_hz: int, out_dir: Path | None) -> None:
    """Record, replay and summarise a whole simulated night, end to end.

    Pairs two simulated calf bands (EMG + accelerometer) and a heart-rate strap through bleak,
    records an accelerated night with cramps and look-alikes into a session file, replays it,
    detects the cramps, checks them against the simulator's ground truth, and prints the
    morning summary joined with a bundled example journal of the day before.
    """
    c = get_context(ctx)
    ok = run_demo(
        c.out,
        out_dir=_fresh_folder(out_dir, c.data_dir / "demo"),
        seed=seed,
        emg_fs_hz=emg_fs_hz,
        config=c.config,
    )
    if not ok:
        raise CrampsenseError(
            "the detected cramps did not match the simulator's ground truth (see the table above)"
        )
