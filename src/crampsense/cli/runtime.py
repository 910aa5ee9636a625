"""What the subcommands do, kept out of ``main.py`` so ``crampsense --help`` stays fast.

Everything here may print (it is the CLI layer); the library code it calls never does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from crampsense.clock import Clock, SystemClock, datetime_from_ns
from crampsense.config import Config, PairedDevice
from crampsense.detection import DetectionParams
from crampsense.devices.base import DeviceProtocol
from crampsense.devices.registry import protocol_for
from crampsense.errors import ConfigError, DeviceError
from crampsense.journal.log import (
    append_entry,
    entries_frame,
    format_entry,
    parse_log_args,
    read_journal,
)
from crampsense.models import DeviceInfo
from crampsense.storage.nights import write_night_table
from crampsense.storage.session_log import SessionWriter
from crampsense.summaries.morning import build_morning_summary, render_summary
from crampsense.summaries.session_night import SessionAnalysis, analyze_session
from crampsense.transport.ble import BleTransport, read_device_information
from crampsense.transport.ingest import IngestSession, ReconnectPolicy

__all__ = [
    "DEVICE_INFO_FILE",
    "WORLDS",
    "configured_protocol",
    "detection_params",
    "load_device_info",
    "log_entry",
    "pair_device",
    "record_night",
    "replay_and_summarise",
    "save_device_info",
    "show_journal",
    "transport_for",
]

PARTICIPANT = "me"
#: Simulated worlds ``--simulate`` can use: the standard bedroom (two calf bands and a strap)
#: and the device zoo (one simulator of every family).
WORLDS = ("bedroom", "zoo")
#: Device Information strings read when pairing, per address (what ``configure`` needs to
#: rebuild the paired configuration: the Ganglion's firmware, the Polar model).
DEVICE_INFO_FILE = "device-info.json"
_DEVICE_INFO_FORMAT = 1
#: Real seconds between checks that buffered frames are committed (the writer commits when its
#: commit interval, at most 1 s, has passed).
COMMIT_TIMER_S = 0.25


def detection_params(config: Config) -> DetectionParams:
    """The detector's parameters from the ``[detection]`` config section."""
    return DetectionParams.from_mapping(config.section("detection"))


# --- transport ------------------------------------------------------------------------------


@contextlib.contextmanager
def transport_for(simulate: bool, world: str = "bedroom") -> Iterator[BleTransport]:
    """The real Bluetooth stack, or a simulated world (``"bedroom"`` or ``"zoo"``)."""
    if not simulate:
        yield BleTransport()
        return
    from firmware_sims.bedroom import quiet_bedroom, quiet_zoo  # noqa: PLC0415

    sim = quiet_zoo() if world == "zoo" else quiet_bedroom()
    yield BleTransport(scanner_backend=sim.scanner_backend, client_backend=sim.client_backend)


def configured_protocol(
    family: str, device_info: dict[str, str], options: dict[str, Any] | None = None
) -> DeviceProtocol:
    """The protocol of a paired device: ``family`` with ``options``, configured for the
    Device Information strings read when pairing (firmware-dependent formats, the model)."""
    return protocol_for(family, **(options or {})).configure(device_info)


def load_device_info(data_dir: Path) -> dict[str, dict[str, str]]:
    """Device Information strings stored at pairing, by lower-case address ({} if none).

    Raises
    ------
    ConfigError
        The file exists but does not parse.
    """
    path = data_dir / DEVICE_INFO_FILE
    if not path.exists():
        return {}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("format") != _DEVICE_INFO_FORMAT:
            msg = f"unknown format {doc.get('format')!r}"
            raise ValueError(msg)
        return {str(k).lower(): {str(a): str(b) for a, b in v.items()}
                for k, v in doc["devices"].items()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ConfigError(
            f"device information file {path} is damaged ({exc}); remove it and pair the "
            "devices again with `crampsense pair ADDRESS --placement ...`"
        ) from exc


def save_device_info(data_dir: Path, address: str, info: dict[str, str]) -> Path:
    """Remember the Device Information strings of ``address`` (owner-only, atomic)."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    known = load_device_info(data_dir)
    known[address.lower()] = dict(info)
    path = data_dir / DEVICE_INFO_FILE
    tmp = path.with_suffix(".json.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"format": _DEVICE_INFO_FORMAT, "devices": known}, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)
    return path


async def pair_device(
    address: str, placement: str, *, simulate: bool, timeout_s: float, world: str = "bedroom"
) -> tuple[PairedDevice, DeviceProtocol, dict[str, str]]:
    """Find ``address``, recognise its family, read its Device Information, configure it.

    Returns
    -------
    paired : PairedDevice
    protocol : DeviceProtocol
        The family's protocol configured for this device (``configure`` with the Device
        Information strings): what it streams is ``protocol.capabilities()``.
    device_info : dict of str to str
        The strings read (store them with :func:`save_device_info`).
    """
    with transport_for(simulate, world) as transport:
        found = await transport.scan(min(timeout_s, 0.5) if simulate else timeout_s)
        match = [d for d in found if d.address.lower() == address.lower()]
        if not match:
            seen = ", ".join(f"{d.address} ({d.name})" for d in found) or "nothing"
            raise DeviceError(
                f"no device with address {address} answered (heard: {seen}); check the address "
                "with `crampsense scan`" + (" --simulate" if simulate else ""),
                address=address,
            )
        dev = match[0]
        if dev.family is None:
            raise DeviceError(
                f"{address} ({dev.name or 'no name'}) is not a device crampsense can read "
                f"(services {', '.join(dev.service_uuids) or 'none'}); see docs/devices.md",
                address=address,
            )
        info: dict[str, str] = {}
        client = transport.client(dev.ble_device)
        try:
            await client.connect()
            info = await read_device_information(client)
        finally:
            if client.is_connected:
                await client.disconnect()
        protocol = configured_protocol(dev.family, info)
        paired = PairedDevice(
            address=dev.address,
            name=dev.name,
            family=dev.family,
            placement=placement,
            simulated=simulate,
            firmware=info.get("firmware") or info.get("software", ""),
        )
        return paired, protocol, info


# --- recording --------------------------------------------------------------------------------


def session_path_for(sessions_dir: Path, start: datetime) -> Path:
    """``<sessions_dir>/<UTC start>.session``, creating the owner-only folder."""
    sessions_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    stamp = start.astimezone(UTC).strftime("%Y-%m-%dT%H%M%SZ")
    return sessions_dir / f"{stamp}.session"


def _device_info(p: PairedDevice) -> DeviceInfo:
    return DeviceInfo(
        address=p.address, name=p.name, family=p.family, placement=p.placement,
        firmware=p.firmware,
    )


async def record_devices(
    transport: BleTransport,
    devices: Sequence[PairedDevice],
    writer: SessionWriter,
    *,
    clock: Clock,
    policy: ReconnectPolicy,
    stop: asyncio.Event,
    protocol_options: dict[str, dict[str, Any]] | None = None,
    sessions_out: list[IngestSession] | None = None,
    device_info: dict[str, dict[str, str]] | None = None,
) -> list[IngestSession]:
    """Run one :class:`IngestSession` per device into one session writer until ``stop``.

    ``sessions_out``, if given, receives the sessions as soon as they exist (for progress).
    ``device_info`` (lower-case address -> the Device Information strings read when pairing)
    configures each protocol as it was paired (see :func:`configured_protocol`).
    """
    sessions = sessions_out if sessions_out is not None else []
    for i, p in enumerate(devices):
        options = (protocol_options or {}).get(p.family, {})
        info = (device_info or {}).get(p.address.lower(), {})
        protocol = configured_protocol(p.family, info, options)
        paired = _device_info(p)
        writer.add_device(paired, protocol.metadata())
        sessions.append(
            IngestSession(transport, protocol, writer, paired, clock=clock,
                          policy=policy, seed=i)
        )
    writer.mark("started", detail=f"{len(sessions)} device(s)")

    async def commit_timer() -> None:
        # A silent stall must not keep the last frames in memory: commit on a timer too.
        while not stop.is_set():
            writer.commit_if_due()
            await asyncio.sleep(COMMIT_TIMER_S)

    timer = asyncio.create_task(commit_timer())
    try:
        await asyncio.gather(*(s.run(stop) for s in sessions))
    finally:
        stop.set()
        await timer
        writer.mark("stopped")
        writer.flush()
    return sessions


def record_night(
    out: Console,
    devices: Sequence[PairedDevice],
    *,
    config: Config,
    sessions_dir: Path,
    out_path: Path | None,
    simulate: bool,
    duration_s: float | None,
    seed: int,
    speed: float | None,
    world: str = "bedroom",
    data_dir: Path | None = None,
) -> Path:
    """``crampsense record``: real devices until stopped, or a simulated night.

    ``world`` picks the simulated world (``"bedroom"`` or ``"zoo"``); ``data_dir`` holds the
    Device Information stored at pairing (default: the parent of ``sessions_dir``).
    """
    device_info = load_device_info(data_dir if data_dir is not None else sessions_dir.parent)
    policy = ReconnectPolicy(
        scan_timeout_s=config["recording.scan_timeout_s"],
        max_backoff_s=config["recording.reconnect_max_backoff_s"],
        stall_timeout_s=config["recording.stall_timeout_s"],
    )
    options = {
        "crampsense-band": {
            "emg_fs_hz": config["band.emg_fs_hz"],
            "imu_fs_hz": config["band.imu_fs_hz"],
        }
    }
    if simulate:
        from crampsense.cli.simulate import record_simulated  # noqa: PLC0415

        return record_simulated(
            out, devices, config=config, sessions_dir=sessions_dir, out_path=out_path,
            duration_s=duration_s or 8 * 3600.0, seed=seed, speed=speed, policy=policy,
            protocol_options=options, world=world, device_info=device_info,
        )
    clock = SystemClock()
    start = datetime_from_ns(clock.now_ns())
    path = out_path or session_path_for(sessions_dir, start)
    transport = BleTransport()

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if duration_s is not None:
            loop.call_later(duration_s, stop.set)
        with SessionWriter(
            path, clock=clock, commit_interval_s=config["recording.commit_interval_s"],
            metadata={"start_ns": str(clock.now_ns()), "simulated": "false"},
        ) as writer:
            out.print(f"Recording to {path}. Stop with Ctrl-C (everything received is kept).")
            await record_devices(transport, devices, writer, clock=clock, policy=policy,
                                 stop=stop, protocol_options=options, device_info=device_info)

    asyncio.run(run())
    return path


# --- replay and summary -------------------------------------------------------------------


def replay_session(
    out: Console, session: Path, *, config: Config, show_progress: bool = True, prefix: str = ""
) -> SessionAnalysis:
    """Replay with a progress bar; ``prefix`` goes before the report line."""
    t0 = time.perf_counter()
    with Progress(
        TextColumn("[bold]Replaying[/] {task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,}/{task.total:,} frames"),
        TimeElapsedColumn(),
        console=out,
        transient=True,
        disable=not show_progress,
    ) as bar:
        task = bar.add_task(session.name, total=1)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=max(total, 1))

        analysis = analyze_session(session, params=detection_params(config), progress=progress)
    analysis_s = time.perf_counter() - t0
    if show_progress:
        out.print(
            f"{prefix}Replayed {analysis.frames:,} notifications from {session.name} in "
            f"{analysis_s:.1f} s ({analysis.undecodable_frames} undecodable, "
            f"{analysis.night.lost_frames} packets lost in transit)."
        )
    for message in analysis.decode_errors:
        out.print(f"  skipped: {message}")
    if show_progress and not analysis.clean_end:
        out.print(
            "  Note: this recording ended without a clean stop (killed or power lost); "
            "everything committed is here, at most the last second before the end is missing."
        )
    return analysis


def store_night(analysis: SessionAnalysis, root: Path) -> Path:
    """Write the night's events (and the tables reports and trends read) as Hive-partitioned
    Parquet tables."""
    from crampsense.summaries import history  # noqa: PLC0415

    path = write_night_table(
        root, PARTICIPANT, analysis.night.label_date, "events", analysis.results.events
    )
    history.store_night_history(
        root, PARTICIPANT, analysis.night, tz=datetime.now(UTC).astimezone().tzinfo or UTC,
        wake=history.wake_bouts_of(analysis.results),
        activity=history.activity_trace(analysis.devices, analysis.timelines),
    )
    return path


def replay_and_summarise(
    out: Console,
    session: Path,
    *,
    config: Config,
    journal_path: Path,
    as_json: bool,
    tz: tzinfo,
    store_root: Path,
) -> SessionAnalysis:
    """``crampsense replay`` / ``summary``."""
    analysis = replay_session(out, session, config=config, show_progress=not as_json)
    store_night(analysis, store_root)
    if as_json:
        out.print_json(json.dumps(_night_json(analysis)))
        return analysis
    from crampsense.journal.importers import read_imports  # noqa: PLC0415
    from crampsense.summaries.day_table import day_table  # noqa: PLC0415

    journal = entries_frame(read_journal(journal_path, tz=tz))
    summary = build_morning_summary(
        analysis.night, journal, tz=tz, baseline_days=config["summary.baseline_days"],
        days=day_table(journal, read_imports(store_root), tz=tz),  # imports fill in the log
    )
    color = out.is_terminal and not out.no_color
    out.print(render_summary(summary, width=min(out.width, 100), color=color))
    return analysis


def _night_json(analysis: SessionAnalysis) -> dict[str, Any]:
    night = analysis.night
    return {
        "session": night.session_path,
        "start": night.start.isoformat(),
        "end": night.end.isoformat(),
        "events": [
            {
                "onset": e.onset.isoformat(),
                "offset": e.offset.isoformat(),
                "duration_s": round(e.duration_s, 2),
                "leg": e.leg,
                "kind": e.kind,
                "severity": str(e.severity),
                "confidence": round(e.confidence, 3),
                "evidence": e.evidence,
                "woke": e.woke,
                "got_up": e.got_up,
                "stretched": e.stretched,
            }
            for e in night.events
        ],
        "coverage": {
            leg: {"covered_s": round(night.covered_s(leg), 1)} for leg in night.legs
        },
        "gaps": [
            {"leg": g.leg, "start": g.start.isoformat(), "end": g.end.isoformat(),
             "reason": g.reason}
            for g in night.gaps
        ],
        "frames": analysis.frames,
        "undecodable_frames": analysis.undecodable_frames,
        "lost_packets": night.lost_frames,
        "clean_end": analysis.clean_end,
    }


# --- journal ------------------------------------------------------------------------------


def log_entry(path: Path, words: list[str], *, at_time: str | None, tz: tzinfo) -> str:
    """Validate and append one journal entry; returns the line written."""
    args = [*words, "--at", at_time] if at_time else words
    entry = parse_log_args(args, now=datetime.now(tz))
    append_entry(path, entry)
    return format_entry(entry)


def show_journal(out: Console, path: Path, *, days: int, tz: tzinfo) -> None:
    """Print the journal's last ``days`` days."""
    entries = read_journal(path, tz=tz)
    since = datetime.now(tz) - timedelta(days=days)
    recent = [e for e in entries if e.time >= since]
    if not recent:
        out.print(f"No journal entries in the last {days} days ({path}).")
        return
    table = Table(title=f"Journal, last {days} days", title_justify="left")
    table.add_column("entry")
    for e in recent:
        table.add_row(format_entry(e))
    out.print(table)

