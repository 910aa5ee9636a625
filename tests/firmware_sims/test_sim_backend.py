"""The simulated world behind bleak's public API: scan, connect, GATT, notify, faults, time.

Everything goes through ``BleakScanner``/``BleakClient`` with ``backend=world...``: the same
calls the transport makes against a radio.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

import pytest
from bleak import BleakClient, BleakScanner
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakDeviceNotFoundError, BleakError, BleakGATTProtocolError

from crampsense.clock import FakeClock
from crampsense.devices.gatt import CCCD_UUID, HEART_RATE_MEASUREMENT_UUID, HEART_RATE_SERVICE_UUID
from crampsense.errors import ConfigError, DeviceError, DeviceNotFoundError
from firmware_sims.heart_rate import HeartRateStrap
from firmware_sims.peripheral import (
    Advertisement,
    AttError,
    CharDef,
    Link,
    ServiceDef,
    SimulatedPeripheral,
)
from firmware_sims.world import SimulatedWorld

T = TypeVar("T")

SVC = "c0de0001-0000-4000-8000-00000000c0de"
DATA = "c0de0002-0000-4000-8000-00000000c0de"
CTRL = "c0de0003-0000-4000-8000-00000000c0de"
IND = "c0de0004-0000-4000-8000-00000000c0de"
USER_DESCRIPTION = "00002901-0000-1000-8000-00805f9b34fb"
T0 = datetime(2025, 1, 10, 22, 0, tzinfo=UTC)
TICKER = "C0:DE:00:00:00:01"
TICKER2 = "C0:DE:00:00:00:02"
STRAP = "HR:00:00:00:00:01"


class Ticker(SimulatedPeripheral):
    """Notifies ``[seq u32][padding]`` (``payload_len`` bytes) every ``period_s`` on DATA."""

    def __init__(
        self, address: str, name: str, *, period_s: float = 0.1, payload_len: int = 8,
        total: int | None = None,
    ) -> None:
        super().__init__(address, name)
        self.period_ns = round(period_s * 1e9)
        self.payload_len = payload_len
        self.total = total
        self.seq = 0
        self.next_ns = 0
        self.control = b""
        self.connects = 0
        self.disconnects = 0

    def gatt(self) -> tuple[ServiceDef, ...]:
        return (
            ServiceDef(
                SVC,
                (
                    CharDef(DATA, ("notify",)),
                    CharDef(CTRL, ("read", "write", "write-without-response"), "control point"),
                    CharDef(IND, ("indicate",)),
                ),
            ),
        )

    def advertisement(self) -> Advertisement:
        return Advertisement(self.name, (SVC,), manufacturer_data={0xFFFF: b"\x01"})

    def read(self, char_uuid: str) -> bytes:
        if char_uuid == CTRL:
            return self.control
        raise AttError(0x02, "not readable")

    def write(self, char_uuid: str, data: bytes, *, with_response: bool) -> None:
        if data == b"\xee":
            raise AttError(0x80, "application error")
        self.control = data

    def on_connect(self, link: Link) -> None:
        super().on_connect(link)
        self.connects += 1
        now_ns = self.link.now_ns() if self.link else 0
        # a free-running timer: packets on multiples of the period, whenever we connect
        self.next_ns = -(-now_ns // self.period_ns) * self.period_ns

    def on_disconnect(self) -> None:
        super().on_disconnect()
        self.disconnects += 1

    def tick(self, now_ns: int) -> None:
        while self.next_ns <= now_ns and self.link is not None:
            if self.total is not None and self.seq >= self.total:
                return
            payload = self.seq.to_bytes(4, "little").ljust(self.payload_len, b"\xab")
            self.link.notify(DATA, payload)
            self.seq += 1
            self.next_ns += self.period_ns

    def finished(self) -> bool:
        return self.total is not None and self.seq >= self.total


def make_world(
    *peripherals: SimulatedPeripheral,
    tick_s: float = 0.05,
    speed: float | None = None,
    client_mtu: int = 517,
    bluez_stale_device_quirk: bool = False,
) -> SimulatedWorld:
    return SimulatedWorld(
        FakeClock(T0), peripherals, tick_s=tick_s, speed=speed, client_mtu=client_mtu,
        bluez_stale_device_quirk=bluez_stale_device_quirk,
    )


def run(coro_fn: Callable[[], Awaitable[T]], timeout_s: float = 10.0) -> T:
    async def main() -> T:
        return await asyncio.wait_for(coro_fn(), timeout_s)

    return asyncio.run(main())


async def with_pump(world: SimulatedWorld, body: Callable[[], Awaitable[T]]) -> T:
    pump = asyncio.create_task(world.run())
    try:
        return await body()
    finally:
        world.stop()
        await pump


# ---------------------------------------------------------------------- scanning


def test_discover_reports_names_uuids_and_manufacturer_data() -> None:
    world = make_world(Ticker(TICKER, "ticker-1"), HeartRateStrap(STRAP, "strap-1"))

    async def body() -> dict[str, tuple[BLEDevice, AdvertisementData]]:
        return await BleakScanner.discover(
            timeout=0.05, return_adv=True, backend=world.scanner_backend
        )

    found = run(body)
    assert set(found) == {TICKER, STRAP}
    dev, adv = found[TICKER]
    assert dev.name == "ticker-1"
    assert adv.local_name == "ticker-1"
    assert adv.service_uuids == [SVC]
    assert adv.manufacturer_data == {0xFFFF: b"\x01"}
    assert found[STRAP][1].service_uuids == [HEART_RATE_SERVICE_UUID]


def test_service_filter_keeps_only_matching_devices() -> None:
    world = make_world(Ticker(TICKER, "ticker-1"), HeartRateStrap(STRAP, "strap-1"))

    async def body() -> list[BLEDevice]:
        # 16-bit short form, as users write it: normalised like the real backends do
        return await BleakScanner.discover(
            timeout=0.05, service_uuids=["180d"], backend=world.scanner_backend
        )

    assert [d.address for d in run(body)] == [STRAP]


def test_find_device_by_address_with_and_without_pump() -> None:
    world = make_world(Ticker(TICKER, "ticker-1"))

    async def body() -> tuple[BLEDevice | None, BLEDevice | None, BLEDevice | None]:
        scanner = world.scanner_backend
        idle = await BleakScanner.find_device_by_address(TICKER.lower(), 1.0, backend=scanner)
        missing = await BleakScanner.find_device_by_address(
            "00:00:00:00:00:00", 0.05, backend=scanner
        )
        pumped = await with_pump(
            world, lambda: BleakScanner.find_device_by_address(TICKER, 1.0, backend=scanner)
        )
        return idle, missing, pumped

    idle, missing, pumped = run(body)
    assert idle is not None
    assert idle.address == TICKER
    assert missing is None
    assert pumped is not None
    assert pumped.name == "ticker-1"


def test_detection_callback_sees_device_powered_on_during_scan() -> None:
    world = make_world(Ticker(TICKER, "ticker-1"))
    world.power_off(TICKER)
    seen: list[tuple[str, int]] = []

    async def body() -> None:
        def on_adv(dev: BLEDevice, adv: AdvertisementData) -> None:
            seen.append((dev.address, world.clock.monotonic_ns()))

        async with BleakScanner(on_adv, backend=world.scanner_backend):
            await asyncio.sleep(0.01)
            assert seen == []  # off: not advertising
            world.schedule(3.0, lambda: world.power_on(TICKER))
            await with_pump(world, lambda: world.wait_s(5.0))

    run(body)
    assert seen, "power_on must make the device visible to an active scanner"
    assert seen[0][1] == pytest.approx(3.0e9, abs=0.06e9)


# ---------------------------------------------------------------------- GATT


def test_services_characteristics_and_descriptors_via_bleak() -> None:
    world = make_world(HeartRateStrap(STRAP, "strap-1"), Ticker(TICKER, "ticker-1"))

    async def body() -> None:
        async with BleakClient(TICKER, backend=world.client_backend) as client:
            assert client.is_connected
            assert client.name == "ticker-1"
            svc = client.services.get_service(SVC)
            assert svc is not None
            data = client.services.get_characteristic(DATA)
            ctrl = client.services.get_characteristic(CTRL)
            ind = client.services.get_characteristic(IND)
            assert data is not None
            assert ctrl is not None
            assert ind is not None
            assert data.properties == ["notify"]
            assert data.service_uuid == SVC
            assert [d.uuid for d in data.descriptors] == [CCCD_UUID]
            assert [d.uuid for d in ctrl.descriptors] == [USER_DESCRIPTION]
            assert [d.uuid for d in ind.descriptors] == [CCCD_UUID]
            handles = [svc.handle, data.handle, ctrl.handle, ind.handle]
            handles += [d.handle for d in client.services.descriptors.values()]
            assert len(set(handles)) == len(handles)
            assert handles == sorted(handles[:4]) + handles[4:]
            desc = ctrl.descriptors[0]
            assert await client.read_gatt_descriptor(desc) == bytearray(b"control point")
            assert ctrl.max_write_without_response_size == client.mtu_size - 3

        async with BleakClient(STRAP, backend=world.client_backend) as client:
            uuids = {s.uuid[4:8] for s in client.services}
            assert uuids == {"180d", "180f", "180a"}

        async with BleakClient(
            STRAP, services=["180f"], backend=world.client_backend
        ) as client:
            assert [s.uuid[4:8] for s in client.services] == ["180f"]

    run(body)


def test_read_write_and_att_errors() -> None:
    ticker = Ticker(TICKER, "ticker-1")
    world = make_world(ticker)

    async def body() -> None:
        async with BleakClient(TICKER, backend=world.client_backend) as client:
            await client.write_gatt_char(CTRL, b"\x01\x02", response=True)
            assert await client.read_gatt_char(CTRL) == bytearray(b"\x01\x02")
            await client.write_gatt_char(CTRL, b"\x03", response=False)
            assert ticker.control == b"\x03"
            with pytest.raises(BleakGATTProtocolError) as err:
                await client.write_gatt_char(CTRL, b"\xee", response=True)
            assert err.value.code == 0x80
            # a command (no response) cannot report an error: it is lost, like on air
            await client.write_gatt_char(CTRL, b"\xee", response=False)
            with pytest.raises(BleakGATTProtocolError) as err:
                await client.read_gatt_char(DATA)  # notify-only
            assert err.value.code == 0x02
            with pytest.raises(BleakGATTProtocolError) as err:
                await client.write_gatt_char(DATA, b"\x00", response=True)
            assert err.value.code == 0x03
            with pytest.raises(BleakError, match="max_write_without_response_size"):
                await client.write_gatt_char(CTRL, bytes(600), response=False)

    run(body)


def test_notifications_cccd_and_stop_notify() -> None:
    ticker = Ticker(TICKER, "ticker-1", period_s=0.1)
    world = make_world(ticker)
    got: list[int] = []

    def on_data(char: BleakGATTCharacteristic, data: bytearray) -> None:
        assert char.uuid == DATA
        got.append(int.from_bytes(data[:4], "little"))

    async def body() -> None:
        async with BleakClient(TICKER, backend=world.client_backend) as client:
            data = client.services.get_characteristic(DATA)
            assert data is not None
            cccd = data.descriptors[0]
            assert await client.read_gatt_descriptor(cccd) == bytearray(b"\x00\x00")
            await client.start_notify(DATA, on_data)
            assert await client.read_gatt_descriptor(cccd) == bytearray(b"\x01\x00")
            assert DATA in ticker.subscribed
            await world.wait_s(2.0)
            n = len(got)
            await client.stop_notify(DATA)
            assert await client.read_gatt_descriptor(cccd) == bytearray(b"\x00\x00")
            await world.wait_s(1.0)
            assert len(got) == n, "no notification may arrive after stop_notify"
            ind = client.services.get_characteristic(IND)
            assert ind is not None
            await client.start_notify(IND, lambda c, d: None)
            assert await client.read_gatt_descriptor(ind.descriptors[0]) == bytearray(b"\x02\x00")
            with pytest.raises(ValueError, match="CCCD"):
                await client.write_gatt_descriptor(cccd, b"\x01\x00")

    run(lambda: with_pump(world, body))
    # every 100 ms for 2 s: 20 packets (±1 for the tick the subscription lands in), in order
    assert 19 <= len(got) <= 21
    assert got == list(range(got[0], got[0] + len(got)))
    assert world.link(TICKER) is None


def test_mtu_truncates_notifications_like_a_stack() -> None:
    world = make_world(Ticker(TICKER, "ticker-1", payload_len=244), client_mtu=23)
    sizes: list[int] = []

    async def body() -> int:
        async with BleakClient(TICKER, backend=world.client_backend) as client:
            await client.start_notify(DATA, lambda c, d: sizes.append(len(d)))
            await world.wait_s(0.5)
            return client.mtu_size

    assert run(lambda: with_pump(world, body)) == 23
    assert len(sizes) >= 5
    assert set(sizes) == {20}

    # the peripheral side can cap it too (min of client, peripheral preference and limit)
    world2 = make_world(Ticker(TICKER, "ticker-1", payload_len=244))
    world2.set_mtu_limit(TICKER, 100)
    sizes.clear()

    async def body2() -> int:
        async with BleakClient(TICKER, backend=world2.client_backend) as client:
            await client.start_notify(DATA, lambda c, d: sizes.append(len(d)))
            await world2.wait_s(0.5)
            return client.mtu_size

    assert run(lambda: with_pump(world2, body2)) == 100
    assert set(sizes) == {97}
    with pytest.raises(ConfigError, match="ATT range"):
        world2.set_mtu_limit(TICKER, 10)


# ---------------------------------------------------------------------- faults


def test_unsolicited_drop_calls_disconnected_callback_and_later_write_fails() -> None:
    ticker = Ticker(TICKER, "ticker-1")
    world = make_world(ticker)
    dropped: list[tuple[BleakClient, int]] = []

    async def body() -> None:
        client = BleakClient(
            TICKER,
            disconnected_callback=lambda c: dropped.append((c, world.clock.monotonic_ns())),
            backend=world.client_backend,
        )
        await client.connect()
        await client.start_notify(DATA, lambda c, d: None)
        world.schedule(2.0, lambda: world.drop_link(TICKER))
        await world.wait_s(3.0)
        assert not client.is_connected
        assert ticker.subscribed == set(), "firmware forgets subscriptions on link loss"
        with pytest.raises(BleakError):
            await client.write_gatt_char(CTRL, b"\x01", response=True)
        # a fresh connection works and a solicited disconnect does not call the callback
        await client.connect()
        await client.write_gatt_char(CTRL, b"\x01", response=True)
        await client.disconnect()
        await client.disconnect()  # idempotent

    run(lambda: with_pump(world, body))
    assert len(dropped) == 1
    assert isinstance(dropped[0][0], BleakClient)
    assert dropped[0][1] == pytest.approx(2.0e9, abs=0.06e9)
    assert (ticker.connects, ticker.disconnects) == (2, 2)


def test_power_off_connect_fails_not_found_until_power_on() -> None:
    world = make_world(Ticker(TICKER, "ticker-1"))
    events: list[str] = []

    async def body() -> None:
        client = BleakClient(
            TICKER, disconnected_callback=lambda c: events.append("dropped"),
            backend=world.client_backend,
        )
        await client.connect()
        world.power_off(TICKER)
        assert world.link(TICKER) is None
        with pytest.raises(BleakDeviceNotFoundError) as err:
            await client.connect()
        assert err.value.identifier == TICKER
        found = await BleakScanner.discover(timeout=0.02, backend=world.scanner_backend)
        assert found == []
        world.power_on(TICKER)
        await client.connect()
        assert client.is_connected
        await client.disconnect()
        with pytest.raises(BleakDeviceNotFoundError):
            await BleakClient("AA:BB:CC:DD:EE:FF", backend=world.client_backend).connect()

    run(body)
    assert events == ["dropped"]


def test_bluez_quirk_stale_device_needs_a_fresh_scan() -> None:
    world = make_world(Ticker(TICKER, "ticker-1"), bluez_stale_device_quirk=True)

    async def body() -> None:
        dev = await BleakScanner.find_device_by_address(TICKER, 1.0, backend=world.scanner_backend)
        assert dev is not None
        client = BleakClient(dev, backend=world.client_backend)
        await client.connect()
        world.drop_link(TICKER)
        with pytest.raises(BleakDeviceNotFoundError, match="scan again"):
            await BleakClient(dev, backend=world.client_backend).connect()
        fresh = await BleakScanner.find_device_by_address(
            TICKER, 1.0, backend=world.scanner_backend
        )
        assert fresh is not None
        client = BleakClient(fresh, backend=world.client_backend)
        await client.connect()
        assert client.is_connected
        await client.disconnect()

    run(body)


def test_stall_keeps_link_up_but_loses_notifications() -> None:
    world = make_world(Ticker(TICKER, "ticker-1", period_s=0.1))
    got: list[tuple[int, int]] = []

    async def body() -> None:
        async with BleakClient(TICKER, backend=world.client_backend) as client:
            await client.start_notify(DATA, recorder(got, world))
            world.schedule(1.0, lambda: world.stall(TICKER, 5.0))
            await world.wait_s(8.0)
            assert client.is_connected

    run(lambda: with_pump(world, body))
    times = [t for _, t in got]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert max(gaps) == pytest.approx(5.0e9, abs=0.15e9)
    seqs = [s for s, _ in got]
    assert seqs[-1] - seqs[0] + 1 - len(seqs) == pytest.approx(50, abs=1)  # lost, not delayed


def test_injected_errors_fail_the_next_operations_only() -> None:
    world = make_world(Ticker(TICKER, "ticker-1"))
    world.inject_error(TICKER, "connect", TimeoutError, count=2)
    world.inject_error(TICKER, "write", lambda: BleakError("le-connection-abort-by-local"))

    async def body() -> None:
        client = BleakClient(TICKER, backend=world.client_backend)
        for _ in range(2):
            with pytest.raises(TimeoutError):
                await client.connect()
        await client.connect()
        with pytest.raises(BleakError, match="abort"):
            await client.write_gatt_char(CTRL, b"\x01", response=True)
        await client.write_gatt_char(CTRL, b"\x01", response=True)
        await client.disconnect()

    run(body)
    with pytest.raises(ConfigError, match="cannot inject"):
        world.inject_error(TICKER, "explode", TimeoutError)  # type: ignore[arg-type]  # on purpose


def test_second_central_cannot_connect_to_a_connected_device() -> None:
    world = make_world(Ticker(TICKER, "ticker-1"))

    async def body() -> None:
        async with BleakClient(TICKER, backend=world.client_backend):
            with pytest.raises(BleakError, match="already connected"):
                await BleakClient(TICKER, backend=world.client_backend).connect()

    run(body)


# ---------------------------------------------------------------------- time


def recorder(
    into: list[tuple[int, int]], world: SimulatedWorld | None = None
) -> Callable[[BleakGATTCharacteristic, bytearray], None]:
    """A notify callback appending (sequence number, simulated receive time ns)."""

    def on_data(_c: BleakGATTCharacteristic, data: bytearray) -> None:
        assert world is not None
        into.append((int.from_bytes(data[:4], "little"), world.clock.monotonic_ns()))

    return on_data


def test_two_peripherals_on_one_clock_stay_in_step() -> None:
    world = make_world(Ticker(TICKER, "left"), Ticker(TICKER2, "right"), tick_s=0.02)
    times: dict[str, list[tuple[int, int]]] = {TICKER: [], TICKER2: []}

    async def body() -> None:
        async with (
            BleakClient(TICKER, backend=world.client_backend) as a,
            BleakClient(TICKER2, backend=world.client_backend) as b,
        ):
            for client, key in ((a, TICKER), (b, TICKER2)):
                await client.start_notify(DATA, recorder(times[key], world))
            await world.wait_s(60.0)

    run(lambda: with_pump(world, body))
    left = [t for _, t in times[TICKER]]
    right = [t for _, t in times[TICKER2]]
    start, end = max(left[0], right[0]), min(left[-1], right[-1])
    left = [t for t in left if start <= t <= end]
    right = [t for t in right if start <= t <= end]
    assert len(left) > 550
    assert left == right, "both devices' packets must arrive at the same simulated instants"


def test_scheduled_actions_fire_at_their_simulated_time_in_order() -> None:
    world = make_world(tick_s=0.1)
    fired: list[tuple[str, int]] = []
    world.schedule(5.0, lambda: fired.append(("b", world.clock.monotonic_ns())))
    world.schedule(2.0, lambda: fired.append(("a", world.clock.monotonic_ns())))
    world.schedule(5.0, lambda: fired.append(("c", world.clock.monotonic_ns())))

    run(lambda: world.run(max_duration_s=6.0))
    assert [name for name, _ in fired] == ["a", "b", "c"]
    assert fired[0][1] == pytest.approx(2.0e9, abs=0.11e9)
    assert fired[1][1] == fired[2][1] == pytest.approx(5.0e9, abs=0.11e9)
    assert world.clock.monotonic_ns() == pytest.approx(6.0e9, abs=0.11e9)


def test_run_returns_when_connected_peripherals_finish_and_wait_never_hangs() -> None:
    world = make_world(Ticker(TICKER, "ticker-1", period_s=0.1, total=30))
    got: list[bytes] = []

    async def body() -> tuple[bool, bool]:
        client = BleakClient(TICKER, backend=world.client_backend)
        await client.connect()
        await client.start_notify(DATA, lambda c, d: got.append(bytes(d)))
        pump = asyncio.create_task(world.run())
        first = await world.wait_s(1e6)  # the pump stops long before: returns False
        await pump
        after = await world.wait_s(10.0)  # stopped: advances the clock itself
        await client.disconnect()
        return first, after

    first, after = run(body)
    assert (first, after) == (False, False)
    assert len(got) == 30
    assert world.stopped
    # 30 packets at 100 ms end at ~3 s; the stopped world's wait_s(10) moved the clock on
    assert world.clock.monotonic_ns() == pytest.approx(13.0e9, abs=0.2e9)
    run(world.run)  # a stopped world returns at once


def test_central_clock_sleep_waits_for_the_pump() -> None:
    world = make_world(tick_s=0.5)
    clock = world.central_clock

    async def body() -> list[int]:
        marks = []
        for _ in range(3):
            await clock.sleep(10.0)
            marks.append(clock.monotonic_ns())
        return marks

    marks = run(lambda: with_pump(world, body))
    assert marks == [10_000_000_000, 20_000_000_000, 30_000_000_000]
    assert clock.now_ns() == world.clock.now_ns()


def test_one_hour_of_heart_rate_runs_in_well_under_a_second() -> None:
    strap = HeartRateStrap(STRAP, "strap-1", seed=3)
    world = make_world(strap)  # default tick 50 ms: 72 000 pump steps
    n = 0

    def on_hr(c: BleakGATTCharacteristic, d: bytearray) -> None:
        nonlocal n
        n += 1

    async def body() -> tuple[float, float]:
        async with BleakClient(STRAP, backend=world.client_backend) as client:
            await client.start_notify(HEART_RATE_MEASUREMENT_UUID, on_hr)
            t0, c0 = time.perf_counter(), time.process_time()
            await world.run(max_duration_s=3600.0)
            return time.perf_counter() - t0, time.process_time() - c0

    wall_s, cpu_s = run(body, timeout_s=30.0)
    assert n == pytest.approx(3600, abs=2)
    # CPU time: robust against other processes on a shared 2-core machine (wall ~0.25-0.5 s)
    assert cpu_s < 1.0, f"1 h of simulated HR took {cpu_s:.2f} s CPU ({wall_s:.2f} s wall)"


def test_speed_paces_simulated_time_against_real_time() -> None:
    world = make_world(tick_s=0.05, speed=20.0)

    async def body() -> float:
        t0 = time.perf_counter()
        await world.run(max_duration_s=2.0)
        return time.perf_counter() - t0

    wall_s = run(body)
    assert 0.09 <= wall_s < 0.5  # 2 s simulated at x20 = 0.1 s real


def test_bad_world_arguments_raise_project_errors() -> None:
    with pytest.raises(ConfigError, match="tick_s"):
        make_world(tick_s=0.0)
    with pytest.raises(ConfigError, match="speed"):
        make_world(speed=-1.0)
    world = make_world(Ticker(TICKER, "ticker-1"))
    with pytest.raises(DeviceNotFoundError, match=TICKER):
        world.peripheral("00:11:22:33:44:55")
    with pytest.raises(DeviceError, match="already in this world"):
        world.add(Ticker(TICKER.lower(), "dup"))
    assert world.peripheral(TICKER.lower()).name == "ticker-1"


def test_pump_cannot_run_twice() -> None:
    world = make_world()

    async def body() -> None:
        pump = asyncio.create_task(world.run())
        await asyncio.sleep(0)
        with pytest.raises(DeviceError, match="already running"):
            await world.run()
        world.stop()
        await pump

    run(body)


def test_idle_pump_pauses_so_a_real_time_scan_does_not_run_the_night_away() -> None:
    world = make_world(Ticker(TICKER, "ticker-1"))

    async def body() -> tuple[int, int, int]:
        pump = asyncio.create_task(world.run())
        await BleakScanner.discover(timeout=0.1, backend=world.scanner_backend)
        after_scan = world.clock.monotonic_ns()
        assert world.idle
        assert await world.wait_s(30.0)  # a back-off on the world's clock: time moves
        after_wait = world.clock.monotonic_ns()
        async with BleakClient(TICKER, backend=world.client_backend) as client:
            await client.start_notify(DATA, lambda c, d: None)
            await asyncio.sleep(0.05)  # real time while connected: the simulation runs
            connected = world.clock.monotonic_ns()
        world.stop()
        await pump
        return after_scan, after_wait, connected

    after_scan, after_wait, connected = run(body)
    assert after_scan == 0
    assert after_wait == 30_000_000_000
    assert connected > after_wait


def test_run_while_idle_keeps_time_moving() -> None:
    world = SimulatedWorld(FakeClock(T0), run_while_idle=True)

    async def body() -> None:
        pump = asyncio.create_task(world.run())
        await asyncio.sleep(0.05)
        world.stop()
        await pump

    run(body)
    assert world.clock.monotonic_ns() > 10_000_000_000


def test_power_cycle_hook_runs_on_power_on_only_after_power_off() -> None:
    strap = HeartRateStrap(STRAP, "strap-1")
    calls: list[int] = []
    original = strap.power_cycle

    def spy(now_ns: int) -> None:
        calls.append(now_ns)
        original(now_ns)

    strap.power_cycle = spy  # type: ignore[method-assign]
    world = make_world(strap)
    world.power_on(STRAP)  # already on: not a reboot
    world.power_off(STRAP)
    assert not world.is_powered(STRAP)
    world.power_on(STRAP, reboot=False)
    world.power_off(STRAP)
    world.clock.advance(7.0)
    world.power_on(STRAP)
    assert calls == [7_000_000_000]
