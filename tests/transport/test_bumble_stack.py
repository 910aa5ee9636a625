"""The real-stack tier: the firmware simulators over bumble's ATT/GATT, through bleak's API.

Everything here crosses a real host stack (bumble, in-memory link): MTU exchange, discovery,
CCCD writes, notifications truncated by the server, confirmed indications, ATT errors and
SMP pairing. The transport code under test is the code that runs against hardware.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import pytest
from bleak import BleakClient, BleakScanner
from bleak.exc import BleakGATTProtocolError

from crampsense.clock import FakeClock
from crampsense.devices import ganglion as gg
from crampsense.devices import polar as pd
from crampsense.devices.base import DeviceProtocol
from crampsense.devices.heart_rate import HeartRateProtocol
from crampsense.devices.reference_band import EMG_UUID, ReferenceBandProtocol
from crampsense.models import DeviceInfo
from crampsense.pipeline.replay import decode_session
from crampsense.storage.session_log import SessionReader, SessionWriter
from crampsense.transport import ingest
from crampsense.transport.ble import BleTransport
from crampsense.transport.ingest import IngestSession, ReconnectPolicy
from firmware_sims.bumble_stack import BumbleBench
from firmware_sims.ganglion import Ganglion
from firmware_sims.heart_rate import HeartRateStrap
from firmware_sims.night import NightSpec, SyntheticNight, generate_night
from firmware_sims.peripheral import (
    Advertisement,
    CharDef,
    ServiceDef,
    SimulatedPeripheral,
)
from firmware_sims.polar import PolarSensor
from firmware_sims.reference_band import ReferenceBand
from ingesthelp import ListSink

START: Final = datetime(2024, 3, 1, 23, 0, tzinfo=UTC)
BAND: Final = "C5:A3:00:00:00:01"
STRAP: Final = "C5:A3:00:00:00:10"
POLAR: Final = "C5:A3:00:00:00:20"
GANGLION: Final = "C5:A3:00:00:00:30"
TOY: Final = "C5:A3:00:00:00:40"
EMG_FS_HZ: Final = 500


def _night(duration_s: float, emg_fs_hz: float = EMG_FS_HZ) -> SyntheticNight:
    spec = NightSpec(seed=3, duration_s=duration_s, emg_fs_hz=emg_fs_hz, n_cramps=0,
                     lookalikes=(), start=START)
    return generate_night(spec)


def _band(duration_s: float = 60.0) -> ReferenceBand:
    return ReferenceBand(BAND, _night(duration_s).leg("left"), name="crampsense band L",
                         placement_hint="left-calf")


async def _ingest(
    bench: BumbleBench,
    protocol: DeviceProtocol,
    address: str,
    sink: ListSink | SessionWriter,
    until_s: float,
    *,
    connect_wait_s: float = 10.0,
) -> IngestSession:
    transport = BleTransport(scanner_backend=bench.scanner_backend,
                             client_backend=bench.client_backend)
    info = DeviceInfo(address=address, name="sim", family=protocol.family,
                      placement="left-calf")
    session = IngestSession(transport, protocol, sink, info, clock=bench.central_clock,
                            policy=ReconnectPolicy(scan_timeout_s=1.0))
    stop = asyncio.Event()
    task = asyncio.create_task(session.run(stop))
    # connecting costs no simulated time unless somebody waits: start the clock once the
    # device streams (or, for a device that never does, after connect_wait_s real seconds)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(session.connected.wait(), connect_wait_s)
    await bench.wait_s(until_s)
    stop.set()
    await task
    return session


def _record(
    peripherals: Sequence[SimulatedPeripheral],
    protocol: DeviceProtocol,
    address: str,
    until_s: float,
    *,
    client_mtu: int = 247,
    connect_wait_s: float = 10.0,
) -> tuple[IngestSession, ListSink]:
    sink = ListSink()

    async def main() -> IngestSession:
        async with BumbleBench(peripherals, clock=FakeClock(START),
                               client_mtu=client_mtu) as bench:
            return await _ingest(bench, protocol, address, sink, until_s,
                                 connect_wait_s=connect_wait_s)

    return asyncio.run(main()), sink


def _connected_mtu(sink: ListSink) -> int:
    detail = next(d for k, d in sink.marks if k == "connected")
    return int(detail.removeprefix("mtu="))


# --------------------------------------------------------------------------- recording


def test_reference_band_records_through_ingest_and_decodes(tmp_path: Path) -> None:
    protocol = ReferenceBandProtocol(emg_fs_hz=EMG_FS_HZ)
    path = tmp_path / "band.session"
    device = DeviceInfo(address=BAND, name="band", family="crampsense-band",
                        placement="left-calf")

    async def main() -> IngestSession:
        clock = FakeClock(START)
        async with BumbleBench([_band()], clock=clock) as bench:
            with SessionWriter(path, clock=bench.central_clock,
                               metadata={"start_ns": str(clock.now_ns())}) as writer:
                writer.add_device(device, protocol.metadata())
                return await _ingest(bench, protocol, BAND, writer, 30.0)

    session = asyncio.run(main())
    assert session.stats.connects == 1
    assert session.stats.errors == []
    with SessionReader(path) as reader:
        timelines, n, bad, _ = decode_session(reader)
        marks = [(m.kind, m.detail) for m in reader.marks()]
    assert ("connected", "mtu=247") in marks
    assert bad == 0
    assert n == session.stats.frames
    emg = timelines[(BAND, "emg")]
    assert emg.lost_packets == 0
    assert emg.gaps == []
    # 30 s, plus up to a watchdog period before the session notices the stop
    assert 29.5 * EMG_FS_HZ <= emg.values.shape[1] <= 31.5 * EMG_FS_HZ


def test_heart_rate_strap_records_and_decodes() -> None:
    strap = HeartRateStrap(STRAP, seed=5)
    protocol = HeartRateProtocol()
    session, sink = _record([strap], protocol, STRAP, 30.0)
    assert session.stats.connects == 1
    assert _connected_mtu(sink) == 23  # the strap's server never accepts more
    hr = [b for f in sink.frames for b in protocol.decode(f) if b.stream == "hr"]
    assert 28 <= len(hr) <= 31
    assert all(40 <= float(b.values[0, 0]) <= 80 for b in hr)


def test_polar_h10_records_over_the_real_stack_at_mtu_232() -> None:
    night = _night(60.0)
    sim = PolarSensor(POLAR, night.leg("left"), model="h10", requires_pairing=True)
    protocol = pd.PolarPmdProtocol("h10")
    session, sink = _record([sim], protocol, POLAR, 20.0)
    assert session.stats.connects == 1
    assert session.stats.pairings == 1  # the control point refused, then real SMP pairing
    assert sim.paired
    assert _connected_mtu(sink) == 232
    data = [f for f in sink.frames if f.characteristic_uuid == pd.DATA_UUID]
    blocks = [b for f in data for b in protocol.decode(f)]
    acc = [b for b in blocks if b.stream == "acc"]
    assert sum(b.values.shape[1] for b in acc) >= 15 * 200
    assert max(len(f.payload) for f in data) <= 232 - 3


def test_polar_at_mtu_23_fails_in_one_line_naming_both_mtus(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ingest, "RESPONSE_TIMEOUT_S", 0.1)
    sim = PolarSensor(POLAR, _night(30.0).leg("left"), model="h10")
    session, sink = _record([sim], pd.PolarPmdProtocol("h10"), POLAR, 3.0, client_mtu=23,
                            connect_wait_s=0.3)
    assert session.stats.connects == 0
    assert ("mtu-too-small", "mtu=23 < 232") in sink.marks
    message = session.stats.errors[0]
    assert "ATT MTU is 23" in message
    assert "at least 232" in message
    assert "\n" not in message


def test_ganglion_records_over_the_real_stack() -> None:
    sim = Ganglion(GANGLION, _night(60.0, emg_fs_hz=200).leg("left"))
    protocol = gg.GanglionProtocol()
    session, sink = _record([sim], protocol, GANGLION, 10.0)
    assert session.stats.connects == 1
    assert _connected_mtu(sink) == 23
    packets = [f for f in sink.frames if f.characteristic_uuid == gg.RECEIVE_UUID]
    assert all(len(f.payload) == 20 for f in packets)
    emg = [b for f in packets for b in protocol.decode(f) if b.stream == "emg"]
    n = sum(b.values.shape[1] for b in emg)
    assert 9.5 * 200 <= n <= 11.5 * 200  # 10 s plus up to a watchdog period


# --------------------------------------------------------------------------- ATT / GATT


class Toy(SimulatedPeripheral):
    """Sends 40-byte notifications, an indicate-only channel and an encrypted control."""

    SERVICE = "7e570000-0000-4000-8000-00000000b0b0"
    LONG = "7e570001-0000-4000-8000-00000000b0b0"
    IND = "7e570002-0000-4000-8000-00000000b0b0"
    SECRET = "7e570003-0000-4000-8000-00000000b0b0"

    def __init__(self) -> None:
        super().__init__(TOY, "toy")
        self.writes: list[tuple[bytes, bool]] = []

    def gatt(self) -> tuple[ServiceDef, ...]:
        return (ServiceDef(self.SERVICE, (
            CharDef(self.LONG, ("notify",)),
            CharDef(self.IND, ("indicate",)),
            CharDef(self.SECRET, ("read", "write", "write-without-response"), encrypted=True),
        )),)

    def advertisement(self) -> Advertisement:
        return Advertisement(local_name="toy", service_uuids=(self.SERVICE,),
                             manufacturer_data={0xFFFF: b"T"})

    def read(self, char_uuid: str) -> bytes:
        return b"secret"

    def write(self, char_uuid: str, data: bytes, *, with_response: bool) -> None:
        self.writes.append((data, with_response))
        if self.link is not None:
            self.link.notify(self.LONG, bytes(range(40)))
            self.link.notify(self.IND, b"ack")


def _toy_session(client_mtu: int) -> tuple[Toy, dict[str, object]]:
    toy = Toy()
    out: dict[str, object] = {}

    async def main() -> None:
        async with BumbleBench([toy], client_mtu=client_mtu) as bench:
            found = await BleakScanner.find_device_by_address(
                TOY, timeout=2.0, backend=bench.scanner_backend)
            assert found is not None
            got: list[tuple[str, bytes]] = []
            async with BleakClient(found, backend=bench.client_backend) as client:
                out["mtu"] = client.mtu_size
                server = bench.link(TOY)
                await client.start_notify(Toy.LONG, lambda c, d: got.append((c.uuid, bytes(d))))
                await client.start_notify(Toy.IND, lambda c, d: got.append((c.uuid, bytes(d))))
                out["cccd"] = (server.cccd(Toy.LONG), server.cccd(Toy.IND))
                out["subscribed"] = set(toy.subscribed)
                with pytest.raises(BleakGATTProtocolError) as refused:
                    await client.write_gatt_char(Toy.SECRET, b"\x01", response=True)
                out["refused"] = int(refused.value.code)
                with pytest.raises(BleakGATTProtocolError):
                    await client.read_gatt_char(Toy.SECRET)
                await client.pair()
                out["read"] = bytes(await client.read_gatt_char(Toy.SECRET))
                await client.write_gatt_char(Toy.SECRET, b"\x02", response=True)
                await client.write_gatt_char(Toy.SECRET, b"\x03", response=False)
                await bench.wait_s(0.5)
                await client.stop_notify(Toy.LONG)
                out["cccd_after_stop"] = server.cccd(Toy.LONG)
                out["confirmed"] = server.indications_confirmed
                out["handles"] = [c.handle for c in client.services.characteristics.values()]
            out["got"] = got
            out["log"] = list(server.subscription_log)

    asyncio.run(main())
    return toy, out


def test_mtu_exchange_cccds_indications_truncation_and_pairing() -> None:
    toy, out = _toy_session(247)
    assert out["mtu"] == 247
    # the central really wrote the CCCDs: 01 00 for notify, 02 00 for indicate-only
    assert out["cccd"] == (b"\x01\x00", b"\x02\x00")
    assert out["subscribed"] == {Toy.LONG, Toy.IND}
    assert out["cccd_after_stop"] == b"\x00\x00"
    assert (Toy.LONG, False, False) in out["log"]  # type: ignore[operator]
    # encrypted characteristic: ATT 0x0F (Insufficient Encryption) before pairing
    assert out["refused"] == 0x0F
    assert out["read"] == b"secret"
    assert toy.paired
    # a request and a command, told apart by the server
    assert toy.writes == [(b"\x02", True), (b"\x03", False)]
    got = out["got"]
    assert isinstance(got, list)
    assert (Toy.LONG, bytes(range(40))) in got  # 40 bytes fit MTU 247
    assert got.count((Toy.IND, b"ack")) == 2
    assert out["confirmed"] == 2  # both indications confirmed by the central
    handles = out["handles"]
    assert isinstance(handles, list)
    assert handles == sorted(handles)
    assert min(handles) > 0x0009  # real handles, after bumble's GAP and GATT services


def test_notifications_are_truncated_to_mtu_minus_3_at_mtu_23() -> None:
    _, out = _toy_session(23)
    assert out["mtu"] == 23
    got = out["got"]
    assert isinstance(got, list)
    longs = [d for u, d in got if u == Toy.LONG]
    assert longs
    assert all(d == bytes(range(20)) for d in longs)


def test_band_adapts_to_mtu_23_and_still_decodes() -> None:
    protocol = ReferenceBandProtocol(emg_fs_hz=EMG_FS_HZ)
    session, sink = _record([_band()], protocol, BAND, 5.0, client_mtu=23)
    assert session.stats.connects == 1
    assert _connected_mtu(sink) == 23
    emg = [f for f in sink.frames if f.characteristic_uuid == EMG_UUID]
    assert emg
    assert all(len(f.payload) <= 20 for f in emg)
    blocks = [b for f in emg for b in protocol.decode(f)]
    assert {b.values.shape[1] for b in blocks} == {2}  # (20 - 9) // 4 samples per packet
    assert sum(b.values.shape[1] for b in blocks) >= 4 * EMG_FS_HZ


def test_scan_sees_names_services_and_manufacturer_data() -> None:
    async def main() -> dict[str, tuple[str | None, list[str], dict[int, bytes]]]:
        async with BumbleBench([Toy(), HeartRateStrap(STRAP)]) as bench:
            found = await BleakScanner.discover(timeout=0.3, return_adv=True,
                                                backend=bench.scanner_backend)
            return {a: (adv.local_name, adv.service_uuids, adv.manufacturer_data)
                    for a, (_, adv) in found.items()}

    seen = asyncio.run(main())
    assert seen[TOY] == ("toy", [Toy.SERVICE], {0xFFFF: b"T"})
    assert seen[STRAP][1] == ["0000180d-0000-1000-8000-00805f9b34fb"]


def test_unsolicited_drop_fires_the_disconnected_callback() -> None:
    dropped: list[bool] = []

    async def main() -> None:
        async with BumbleBench([Toy()]) as bench:
            found = await BleakScanner.find_device_by_address(TOY, timeout=2.0,
                                                              backend=bench.scanner_backend)
            assert found is not None
            client = BleakClient(found, backend=bench.client_backend,
                                 disconnected_callback=lambda _c: dropped.append(True))
            await client.connect()
            await bench.drop_link(TOY)
            for _ in range(100):
                if dropped:
                    break
                await asyncio.sleep(0)
            assert not client.is_connected
            with contextlib.suppress(Exception):
                await client.disconnect()

    asyncio.run(main())
    assert dropped == [True]

