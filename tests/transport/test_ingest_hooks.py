"""IngestSession's per-connection hooks, against a small simulated device through bleak's API.

Device Information -> ``configure`` (a changed device is refused), MTU below ``min_mtu``,
unsolicited control messages -> ``on_control`` (restart / mark), and pairing when a write
needs an encrypted link. The toy device below is only as big as these behaviours need.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

import pytest
from bleak.exc import BleakError, BleakGATTProtocolError

from crampsense.clock import FakeClock
from crampsense.devices.base import Capability, ControlEvent, DeviceProtocol, GattWrite
from crampsense.devices.gatt import DEVICE_INFORMATION_UUIDS, sig_uuid
from crampsense.errors import ProtocolError
from crampsense.models import DeviceInfo, Frame, MarkKind, SampleBlock
from crampsense.transport import ingest
from crampsense.transport.ingest import IngestSession, needs_pairing
from firmware_sims.peripheral import (
    Advertisement,
    AttError,
    CharDef,
    ServiceDef,
    SimulatedPeripheral,
)
from firmware_sims.world import SimulatedWorld
from ingesthelp import ingest_world

ADDRESS: Final = "C5:70:00:00:00:01"
SERVICE: Final = "7e570000-0000-4000-8000-00000000c0de"
CONTROL: Final = "7e570001-0000-4000-8000-00000000c0de"
DATA: Final = "7e570002-0000-4000-8000-00000000c0de"
DIS: Final = sig_uuid(0x180A)
START, STOP = b"\x01", b"\x02"
STOPPED_ON_ITS_OWN, LOW_BATTERY = b"\xee", b"\xef"
PACKET_PERIOD_NS: Final = 100_000_000


class ToyDevice(SimulatedPeripheral):
    """Control point (write + indicate), a data stream every 0.1 s, Device Information."""

    def __init__(
        self,
        *,
        firmware: str = "1.0",
        needs_mtu: int = 23,
        encrypted_control: bool = False,
        refuse_always: bool = False,
    ) -> None:
        super().__init__(ADDRESS, "toy")
        self.firmware = firmware
        self.needs_mtu = needs_mtu
        self.encrypted_control = encrypted_control
        self.refuse_always = refuse_always
        self.streaming = False
        self.starts = 0
        self._next_ns = 0

    def gatt(self) -> tuple[ServiceDef, ...]:
        return (
            ServiceDef(SERVICE, (
                CharDef(CONTROL, ("write", "indicate"), encrypted=self.encrypted_control),
                CharDef(DATA, ("notify",)),
            )),
            ServiceDef(DIS, (CharDef(DEVICE_INFORMATION_UUIDS["firmware"], ("read",)),)),
        )

    def advertisement(self) -> Advertisement:
        return Advertisement(local_name="toy", service_uuids=(SERVICE,))

    def read(self, char_uuid: str) -> bytes:
        if char_uuid == DEVICE_INFORMATION_UUIDS["firmware"]:
            return self.firmware.encode()
        raise AttError(0x02, "not readable")

    def write(self, char_uuid: str, data: bytes, *, with_response: bool) -> None:
        if self.refuse_always:
            raise AttError(0x05, "insufficient authentication")
        if self.link is None or self.link.mtu < self.needs_mtu:
            return  # like Polar below its MTU: no answer at all
        if data == START:
            self.streaming = True
            self.starts += 1
            self._next_ns = self.link.now_ns()
            self.link.notify(CONTROL, b"\x81\x00")
        elif data == STOP:
            self.streaming = False
            self.link.notify(CONTROL, b"\x82\x00")

    def on_disconnect(self) -> None:
        self.streaming = False
        super().on_disconnect()

    def tick(self, now_ns: int) -> None:
        while self.streaming and self.link is not None and self._next_ns <= now_ns:
            self.link.notify(DATA, self._next_ns.to_bytes(8, "little"))
            self._next_ns += PACKET_PERIOD_NS

    def stop_on_its_own(self) -> None:
        self.streaming = False
        if self.link is not None:
            self.link.notify(CONTROL, STOPPED_ON_ITS_OWN)

    def report_low_battery(self) -> None:
        if self.link is not None:
            self.link.notify(CONTROL, LOW_BATTERY)


class ToyProtocol(DeviceProtocol):
    family = "toy"
    display_name = "toy"

    def __init__(self, firmware: str = "1.0", min_mtu: int = 23) -> None:
        self.firmware = firmware
        self.min_mtu = min_mtu

    def matches(self, local_name: str | None, service_uuids: Sequence[str]) -> bool:
        return local_name == "toy"

    def capabilities(self) -> tuple[Capability, ...]:
        return ()

    def control_uuids(self) -> tuple[str, ...]:
        return (CONTROL,)

    def data_uuids(self) -> tuple[str, ...]:
        return (DATA,)

    def start_commands(self, device_time_ns: int) -> tuple[GattWrite, ...]:
        return (GattWrite(CONTROL, START, expect_indication=True),)

    def stop_commands(self) -> tuple[GattWrite, ...]:
        return (GattWrite(CONTROL, STOP, expect_indication=True),)

    def check_response(self, char_uuid: str, payload: bytes) -> None:
        if len(payload) != 2 or payload[1] != 0:
            msg = f"toy refused: {payload.hex()}"
            raise ProtocolError(msg)

    def on_control(self, char_uuid: str, payload: bytes) -> ControlEvent | None:
        if payload == STOPPED_ON_ITS_OWN:
            return ControlEvent("restart", "toy stopped streaming")
        if payload == LOW_BATTERY:
            return ControlEvent("mark", "toy battery low")
        return None

    def configure(self, device_info: Mapping[str, str]) -> ToyProtocol:
        return ToyProtocol(device_info.get("firmware", "?"), self.min_mtu)

    def metadata(self) -> Mapping[str, str]:
        return {"firmware_major": self.firmware.split(".")[0]}

    def decode(self, frame: Frame) -> list[SampleBlock]:
        return []


@dataclass
class ListSink:
    frames: list[Frame] = field(default_factory=list)
    marks: list[tuple[str, str, int]] = field(default_factory=list)
    clock: FakeClock | None = None

    def append(self, frame: Frame) -> None:
        self.frames.append(frame)

    def mark(self, kind: str, *, device_address: str | None = None, detail: str = "") -> None:
        t = self.clock.monotonic_ns() if self.clock is not None else 0
        # refuse what the real SessionWriter refuses: a fake that accepts more hides seam bugs
        self.marks.append((MarkKind(kind).value, detail, t))

    def flush(self) -> None:
        pass

    def kinds(self) -> list[str]:
        return [k for k, _, _ in self.marks]


def _record(
    device: ToyDevice,
    protocol: ToyProtocol,
    *,
    until_s: float = 20.0,
    client_mtu: int = 247,
    actions: Sequence[tuple[float, str]] = (),
) -> tuple[IngestSession, ListSink]:
    async def main() -> tuple[IngestSession, ListSink]:
        clock = FakeClock(datetime(2024, 3, 1, 23, 0, tzinfo=UTC))
        world = SimulatedWorld(clock, [device], client_mtu=client_mtu)
        sink = ListSink(clock=clock)
        for at_s, name in actions:
            world.schedule(at_s, getattr(device, name))
        info = DeviceInfo(address=ADDRESS, name="toy", family="toy", placement="left-calf")
        session = await ingest_world(world, protocol, sink, info, until_s, connect_wait_s=0.5)
        return session, sink

    return asyncio.run(main())


@pytest.fixture(autouse=True)
def _short_response_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    # a device that never answers would otherwise cost 5 real seconds per attempt
    monkeypatch.setattr(ingest, "RESPONSE_TIMEOUT_S", 0.2)


def test_same_configuration_streams_and_changed_device_is_refused() -> None:
    session, sink = _record(ToyDevice(firmware="1.4"), ToyProtocol("1.0"), until_s=5.0)
    assert session.stats.connects == 1
    assert "device-changed" not in sink.kinds()
    assert len(sink.frames) > 30

    device = ToyDevice(firmware="2.0")
    session, sink = _record(device, ToyProtocol("1.0"), until_s=5.0)
    assert session.stats.connects == 0
    assert device.starts == 0  # refused before any command
    changed = [d for k, d, _ in sink.marks if k == "device-changed"]
    assert changed
    assert "firmware_major '1' -> '2'" in changed[0]
    message = session.stats.errors[0]
    assert "pair it again" in message
    assert "\n" not in message


def test_mtu_below_the_minimum_is_marked_and_named_when_the_device_is_silent() -> None:
    device = ToyDevice(needs_mtu=232)
    session, sink = _record(device, ToyProtocol(min_mtu=232), client_mtu=23, until_s=3.0)
    assert session.stats.connects == 0
    assert ("mtu-too-small", "mtu=23 < 232") in [(k, d) for k, d, _ in sink.marks]
    message = session.stats.errors[0]
    assert "ATT MTU is 23" in message
    assert "at least 232" in message
    assert "\n" not in message
    # with the MTU it needs, the same device streams
    session, sink = _record(ToyDevice(needs_mtu=232), ToyProtocol(min_mtu=232), until_s=3.0)
    assert session.stats.connects == 1
    assert "mtu-too-small" not in sink.kinds()


def test_device_stopping_on_its_own_is_marked_and_restarted() -> None:
    device = ToyDevice()
    session, sink = _record(device, ToyProtocol(), until_s=20.0,
                            actions=[(8.0, "stop_on_its_own"), (12.0, "report_low_battery")])
    assert session.stats.restarts == 1
    assert device.starts == 2
    assert session.stats.stalls == 0
    assert session.stats.connects == 1
    stopped = [(d, t) for k, d, t in sink.marks if k == "device-stopped"]
    assert stopped == [("toy stopped streaming", stopped[0][1])]
    assert 7.9 <= stopped[0][1] / 1e9 <= 8.5
    assert ("device-event", "toy battery low") in [(k, d) for k, d, _ in sink.marks]
    # streaming resumed within a watchdog period of the stop
    after = [f for f in sink.frames if f.host_monotonic_ns > stopped[0][1]]
    assert after
    assert (after[0].host_monotonic_ns - stopped[0][1]) / 1e9 < 1.5
    # the answers to our own commands never reach on_control
    assert [k for k in sink.kinds() if k.startswith("device-")] == [
        "device-stopped", "device-event"
    ]


def test_write_needing_encryption_pairs_once_and_retries() -> None:
    device = ToyDevice(encrypted_control=True)
    session, sink = _record(device, ToyProtocol(), until_s=5.0)
    assert device.paired
    assert session.stats.pairings == 1
    assert session.stats.connects == 1
    assert sink.kinds().count("paired") == 1
    assert len(sink.frames) > 30


def test_refusal_after_pairing_says_to_use_the_system_settings() -> None:
    device = ToyDevice(refuse_always=True)
    session, sink = _record(device, ToyProtocol(), until_s=3.0)
    assert session.stats.connects == 0
    assert "paired" in sink.kinds()
    message = session.stats.errors[0]
    assert "after pairing" in message
    assert "system's Bluetooth settings" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (BleakGATTProtocolError(0x05), True),
        (BleakGATTProtocolError(0x0F), True),
        (BleakGATTProtocolError(0x03), False),
        (BleakError("Operation failed with ATT error: 0x05 (Insufficient Authentication)"), True),
        (BleakError("Not connected"), False),
    ],
)
def test_needs_pairing_recognises_att_authentication_errors(
    exc: BleakError, expected: bool
) -> None:
    assert needs_pairing(exc) is expected
