"""The transport -> session log seam with the real parts on both sides.

:class:`~crampsense.transport.ingest.IngestSession` records through bleak's public API into a
real :class:`~crampsense.storage.session_log.SessionWriter`, then the file is read back with the
real :class:`~crampsense.storage.session_log.SessionReader`. Every mark kind the transport can
write is produced by a scenario here; a fake sink that accepted anything once hid that the
writer refused five of them (recording failed on every connection attempt).
"""

from __future__ import annotations

import ast
import asyncio
import inspect
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from test_ingest_hooks import ADDRESS, ToyDevice, ToyProtocol

from crampsense.clock import FakeClock
from crampsense.models import DeviceInfo, MarkKind
from crampsense.storage.session_log import MARK_KINDS, SessionReader, SessionWriter
from crampsense.transport import ingest
from crampsense.transport.ingest import IngestSession
from firmware_sims.world import SimulatedWorld
from ingesthelp import ingest_world


def _record_to_file(
    path: Path,
    device: ToyDevice,
    protocol: ToyProtocol,
    *,
    until_s: float,
    client_mtu: int = 247,
    actions: Sequence[tuple[float, str]] = (),
) -> IngestSession:
    async def main() -> IngestSession:
        clock = FakeClock(datetime(2024, 3, 1, 23, 0, tzinfo=UTC))
        world = SimulatedWorld(clock, [device], client_mtu=client_mtu)
        for at_s, name in actions:
            world.schedule(at_s, getattr(device, name))
        info = DeviceInfo(address=ADDRESS, name="toy", family="toy", placement="left-calf")
        with SessionWriter(path, clock=clock) as writer:
            writer.add_device(info, protocol.metadata())
            return await ingest_world(world, protocol, writer, info, until_s,
                                      connect_wait_s=0.5)

    return asyncio.run(main())


def _kinds(path: Path) -> list[str]:
    reader = SessionReader(path)
    try:
        return [m.kind for m in reader.marks()]
    finally:
        reader.close()


@pytest.fixture(autouse=True)
def _short_response_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest, "RESPONSE_TIMEOUT_S", 0.2)


def test_every_kind_the_transport_names_is_a_kind_the_log_stores() -> None:
    # walk the transport's source: each `sink.mark(MarkKind.X, ...)` must be a stored kind
    tree = ast.parse(inspect.getsource(ingest))
    named = {
        node.args[0].attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "mark"
        and node.args
        and isinstance(node.args[0], ast.Attribute)
    }
    assert named >= {"CONNECTED", "DISCONNECTED", "DEVICE_CHANGED", "DEVICE_STOPPED",
                     "DEVICE_EVENT", "MTU_TOO_SMALL", "PAIRED", "STALL", "RECONNECT_FAILED"}
    for name in named:
        assert MarkKind[name].value in MARK_KINDS


def test_streaming_stopping_on_its_own_and_device_events_are_stored(tmp_path: Path) -> None:
    path = tmp_path / "night.session"
    device = ToyDevice()
    session = _record_to_file(path, device, ToyProtocol(), until_s=20.0,
                              actions=[(8.0, "stop_on_its_own"), (12.0, "report_low_battery")])
    assert session.stats.restarts == 1
    assert device.starts == 2
    kinds = _kinds(path)
    assert kinds[0] == "connected"
    assert "device-stopped" in kinds
    assert "device-event" in kinds
    reader = SessionReader(path)
    try:
        assert reader.frame_count() > 150
    finally:
        reader.close()


def test_changed_device_is_refused_with_advice_and_the_mark_is_stored(tmp_path: Path) -> None:
    path = tmp_path / "night.session"
    session = _record_to_file(path, ToyDevice(firmware="2.0"), ToyProtocol("1.0"), until_s=5.0)
    assert session.stats.connects == 0
    assert "pair it again" in session.stats.errors[0]
    assert "device-changed" in _kinds(path)


def test_small_mtu_is_named_and_the_mark_is_stored(tmp_path: Path) -> None:
    path = tmp_path / "night.session"
    session = _record_to_file(path, ToyDevice(needs_mtu=232), ToyProtocol(min_mtu=232),
                              client_mtu=23, until_s=3.0)
    assert "ATT MTU is 23" in session.stats.errors[0]
    assert "mtu-too-small" in _kinds(path)


def test_pairing_on_an_encryption_error_connects_first_time(tmp_path: Path) -> None:
    path = tmp_path / "night.session"
    device = ToyDevice(encrypted_control=True)
    session = _record_to_file(path, device, ToyProtocol(), until_s=5.0)
    assert session.stats.pairings == 1
    assert session.stats.connects == 1
    kinds = _kinds(path)
    assert kinds.count("paired") == 1
    assert "reconnect-failed" not in kinds
