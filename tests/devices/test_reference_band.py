"""The crampsense reference band: profile examples, codec, firmware simulator, wraps, fuzzing.

The worked examples are read from ``docs/reference-band.md`` itself, so the documentation and
these vectors cannot drift apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import struct
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from bleak import BleakClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crampsense.clock import FakeClock
from crampsense.devices import reference_band as rb
from crampsense.devices import registry
from crampsense.devices.base import GattWrite
from crampsense.devices.registry import PROFILE_DIR
from crampsense.devices.timeline import StreamTimeline
from crampsense.errors import ConfigError, DecodeError, ProtocolError
from crampsense.models import Frame, SampleBlock
from firmware_sims import reference_band as fw
from firmware_sims.night import NightSpec, generate_night
from firmware_sims.peripheral import AttError
from firmware_sims.reference_band import (
    DEFAULT_CLOCK_OFFSET_US,
    MANUFACTURER_ID,
    ReferenceBand,
)
from firmware_sims.world import SimulatedWorld

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "reference-band.md"
ADDR = "CB:00:00:00:00:01"
HOST0_NS = 1_736_980_200 * 10**9  # 2025-01-15T22:30:00Z

#: The worked examples of docs/reference-band.md, byte for byte.
EXAMPLES: dict[str, str] = {
    "emg-mtu23": "11 01 02 18 fc ff ff 00 02 90 01 37 ff 94 01 38 ff",
    "emg-after-wrap": "11 02 02 e8 03 00 00 00 02 98 01 39 ff 9c 01 3a ff",
    "emg-saturated": "11 00 00 15 cd 5b 07 04 02 ff 7f 00 80 30 75 78 ec",
    "acc-clock-not-set": "12 05 00 40 42 0f 00 08 01 00 00 00 f0 00 10",
    "status-lead-off": "13 07 00 80 96 98 00 01 01 57 b2 0c",
    "set-time": "01 03 00 8a cd 37 c6 2b 06 00",
    "set-time-response": "01 83 00 8d 28 50 bb 00 00 00 00",
    "start": "01 01 e8 03 32 00",
    "start-response": "01 81 00 e8 03 32 00 3a 27",
    "start-bad-rate": "01 01 2c 01 32 00",
    "start-bad-rate-response": "01 81 04",
    "stop": "01 02",
    "stop-response": "01 82 00",
    "get-config-v2": "02 04",
    "get-config-v2-response": "01 84 01",
    "get-config": "01 04",
    "get-config-response": "01 84 00 01 00 00 02 e8 03 32 00 fa 00 08 67 6d 2c 67 6c",
}


def _x(name: str) -> bytes:
    return bytes.fromhex(EXAMPLES[name])


# --------------------------------------------------------------------------- fakes


class WaveSource:
    """A small deterministic SignalSource: EMG sines plus index-hashed noise, gravity on z."""

    def __init__(
        self,
        duration_s: float = 60.0,
        emg_fs_hz: float = 1000.0,
        acc_fs_hz: float = 50.0,
        *,
        amplitude_uv: float = 200.0,
        lead_off_s: tuple[float, float] | None = None,
        burst_s: tuple[float, float] | None = None,
        burst_uv: float = 0.0,
    ) -> None:
        self._emg_fs = emg_fs_hz
        self._acc_fs = acc_fs_hz
        self._duration = duration_s
        self.amplitude_uv = amplitude_uv
        self.lead_off_s = lead_off_s
        self.burst_s = burst_s
        self.burst_uv = burst_uv
        self.reads = 0

    @property
    def emg_fs_hz(self) -> float:
        return self._emg_fs

    @property
    def acc_fs_hz(self) -> float:
        return self._acc_fs

    @property
    def emg_channels(self) -> tuple[str, ...]:
        return ("gm", "gl")

    @property
    def duration_s(self) -> float:
        return self._duration

    def emg_uv(self, start: int, n: int) -> npt.NDArray[np.float32]:
        self.reads += 1
        i = np.arange(start, start + n, dtype=np.float64)
        t = i / self._emg_fs
        noise = np.modf(np.sin(i * 12.9898) * 43758.5453)[0] * 10.0
        gm = self.amplitude_uv * np.sin(2 * np.pi * 40.0 * t) + noise
        gl = 0.5 * self.amplitude_uv * np.cos(2 * np.pi * 25.0 * t) - noise
        out = np.vstack([gm, gl])
        if self.burst_s is not None:
            inside = (t >= self.burst_s[0]) & (t < self.burst_s[1])
            out[:, inside] = self.burst_uv
        return out.astype(np.float32)

    def acc_mg(self, start: int, n: int) -> npt.NDArray[np.float32]:
        t = np.arange(start, start + n, dtype=np.float64) / self._acc_fs
        return np.vstack([50 * np.sin(t), 0 * t, 1000 + 0 * t]).astype(np.float32)

    def lead_off(self, start: int, n: int) -> npt.NDArray[np.bool_]:
        t = np.arange(start, start + n, dtype=np.float64) / self._emg_fs
        if self.lead_off_s is None:
            return np.zeros(n, dtype=np.bool_)
        return (t >= self.lead_off_s[0]) & (t < self.lead_off_s[1])


class FakeLink:
    """The peripheral's view of a connection: MTU, a clock, and collected notifications."""

    def __init__(self, mtu: int = 247) -> None:
        self._mtu = mtu
        self.t_ns = 0
        self.out: list[tuple[str, bytes, int]] = []

    @property
    def mtu(self) -> int:
        return self._mtu

    def now_ns(self) -> int:
        return self.t_ns

    def notify(self, char_uuid: str, data: bytes) -> None:
        self.out.append((char_uuid, bytes(data[: self._mtu - 3]), self.t_ns))

    def of(self, uuid: str) -> list[bytes]:
        return [d for u, d, _ in self.out if u == uuid]


def connect(band: ReferenceBand, mtu: int = 247, at_s: float = 0.0) -> FakeLink:
    link = FakeLink(mtu)
    link.t_ns = round(at_s * 1e9)
    band.on_connect(link)
    for uuid in (rb.CONTROL_UUID, rb.EMG_UUID, rb.IMU_UUID, rb.STATUS_UUID):
        band.set_subscribed(uuid, True)
    return link


def run(band: ReferenceBand, link: FakeLink, until_s: float, step_s: float = 0.25) -> None:
    t = link.t_ns
    end = round(until_s * 1e9)
    while t < end:
        t = min(end, t + round(step_s * 1e9))
        link.t_ns = t
        band.tick(t)


def command(band: ReferenceBand, link: FakeLink, data: bytes) -> bytes:
    before = len(link.out)
    band.write(rb.CONTROL_UUID, data, with_response=True)
    sent = [d for u, d, _ in link.out[before:] if u == rb.CONTROL_UUID]
    assert len(sent) == 1, "every command gets exactly one indication"
    return sent[0]


def frames_of(link: FakeLink, address: str = ADDR) -> list[Frame]:
    return [
        Frame(address, u, d, HOST0_NS + t, t) for u, d, t in link.out if u != rb.CONTROL_UUID
    ]


def timelines(
    frames: list[Frame], proto: rb.ReferenceBandProtocol
) -> dict[str, StreamTimeline]:
    builders = {s: proto.timeline_builder(s) for s in ("emg", "acc")}
    for f in frames:
        for block in proto.decode(f):
            b = builders.get(block.stream)
            if b is not None:
                b.add(block, f.host_time_ns)
    return {s: b.build() for s, b in builders.items() if b is not None}


# --------------------------------------------------------------------------- the document


def test_doc_examples_are_exactly_the_test_vectors() -> None:
    text = DOC.read_text(encoding="utf-8")
    found = {
        m.group(1): " ".join(m.group(2).split())
        for m in re.finditer(r"<!-- example: (\S+) -->\s*```\n(.*?)```", text, re.S)
    }
    assert found == EXAMPLES


def test_doc_data_examples_decode_exactly() -> None:
    proto = rb.ReferenceBandProtocol()

    def one(uuid: str, name: str) -> SampleBlock:
        blocks = proto.decode(Frame(ADDR, uuid, _x(name), HOST0_NS, 0))
        assert len(blocks) == 1
        return blocks[0]

    b = one(rb.EMG_UUID, "emg-mtu23")
    assert (b.stream, b.unit, b.channels, b.fs_hz) == ("emg", "uV", ("gm", "gl"), 1000.0)
    assert (b.sequence, b.device_ticks, b.flags) == (513, 4294966296, 0)
    np.testing.assert_array_equal(b.values, [[100.0, 101.0], [-50.25, -50.0]])
    b = one(rb.EMG_UUID, "emg-after-wrap")
    assert (b.sequence, b.device_ticks) == (514, (4294966296 + 2000) % 2**32) == (514, 1000)
    np.testing.assert_array_equal(b.values, [[102.0, 103.0], [-49.75, -49.5]])
    b = one(rb.EMG_UUID, "emg-saturated")
    assert b.flags == rb.FLAG_SATURATED
    np.testing.assert_array_equal(b.values, [[8191.75, 7500.0], [-8192.0, -1250.0]])
    b = one(rb.IMU_UUID, "acc-clock-not-set")
    assert (b.stream, b.unit, b.channels, b.fs_hz) == ("acc", "mg", ("x", "y", "z"), 50.0)
    assert (b.sequence, b.device_ticks, b.flags) == (5, 1_000_000, rb.FLAG_CLOCK_NOT_SET)
    np.testing.assert_array_equal(b.values, [[0.0], [-1000.0], [1000.0]])
    b = one(rb.STATUS_UUID, "status-lead-off")
    assert (b.stream, b.fs_hz, b.channels) == ("status", None, rb.STATUS_CHANNELS)
    assert (b.sequence, b.device_ticks, b.flags) == (7, 10_000_000, rb.FLAG_LEAD_OFF_GM)
    np.testing.assert_allclose(b.values[:, 0], [87, 32.5, 1, 0], rtol=1e-6)


def test_encoders_reproduce_the_doc_examples() -> None:
    c = np.array([[400, 404], [-201, -200]], dtype=np.int16)
    assert fw.encode_data_packet(rb.StreamId.EMG, 513, 4294966296, 0, c) == _x("emg-mtu23")
    counts, sat = fw.emg_uv_to_counts([[102.0, 103.0], [-49.75, -49.5]])
    assert not sat.any()
    assert fw.encode_data_packet(rb.StreamId.EMG, 514, 4294966296 + 2000, 0, counts) == _x(
        "emg-after-wrap"
    )
    counts, sat = fw.emg_uv_to_counts([[9000.0, 7500.0], [-9000.0, -1250.0]])
    assert sat.tolist() == [True, False]
    assert fw.encode_data_packet(rb.StreamId.EMG, 0, 123456789, rb.FLAG_SATURATED, counts) == _x(
        "emg-saturated"
    )
    counts, _ = fw.acc_mg_to_counts([[0.0], [-1000.0], [1000.0]])
    assert fw.encode_data_packet(rb.StreamId.ACC, 5, 10**6, rb.FLAG_CLOCK_NOT_SET, counts) == _x(
        "acc-clock-not-set"
    )
    assert fw.encode_status_packet(7, 10**7, rb.FLAG_LEAD_OFF_GM, 87, 32.5) == _x(
        "status-lead-off"
    )
    unix_us = int(datetime(2025, 1, 15, 22, 30, tzinfo=UTC).timestamp()) * 10**6
    assert rb.encode_set_time(unix_us) == _x("set-time")
    assert rb.encode_start(1000, 50) == _x("start")
    assert rb.encode_start(300, 50) == _x("start-bad-rate")
    assert rb.encode_stop() == _x("stop")
    assert rb.encode_get_config() == _x("get-config")
    assert rb.encode_get_config(version=2) == _x("get-config-v2")


def test_firmware_answers_the_doc_commands_with_the_doc_responses() -> None:
    band = ReferenceBand(ADDR, WaveSource(), drift_ppm=0.0)
    link = connect(band, mtu=247, at_s=1.0)
    assert command(band, link, _x("get-config-v2")) == _x("get-config-v2-response")
    # DEFAULT_CLOCK_OFFSET_US + 1 s of counter = the documented 3142592653 µs
    assert command(band, link, _x("set-time")) == _x("set-time-response")
    assert command(band, link, _x("get-config")) == _x("get-config-response")
    assert command(band, link, _x("start-bad-rate")) == _x("start-bad-rate-response")
    assert command(band, link, _x("start")) == _x("start-response")
    assert command(band, link, _x("stop")) == _x("stop-response")
    cfg = rb.parse_config(_x("get-config-response"))
    assert cfg == rb.BandConfig("1.0.0", False, True, 1000, 50)
    assert cfg.acc_mg_per_lsb == rb.ACC_MG_PER_LSB == 0.244140625
    resp = rb.parse_response(_x("set-time-response"))
    assert struct.unpack("<Q", resp.payload)[0] == DEFAULT_CLOCK_OFFSET_US + 10**6


# --------------------------------------------------------------------------- codec


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 120),
    seed=st.integers(0, 2**32 - 1),
    seq=st.integers(0, 2**16 - 1),
    ticks=st.integers(0, 2**32 - 1),
    flags=st.integers(0, 255),
)
def test_encode_decode_round_trip_within_one_lsb(
    n: int, seed: int, seq: int, ticks: int, flags: int
) -> None:
    rng = np.random.default_rng(seed)
    emg = rng.uniform(-8191.0, 8191.0, size=(2, n))
    counts, sat = fw.emg_uv_to_counts(emg)
    assert not sat.any()
    pkt = fw.encode_data_packet(rb.StreamId.EMG, seq, ticks, flags, counts)
    assert len(pkt) == 9 + 4 * n
    stream, s, t, f, values = rb.decode_data_packet(pkt, rb.EMG_UUID)
    assert (stream, s, t, f) == (rb.StreamId.EMG, seq, ticks, flags)
    assert values.dtype == np.float32
    assert np.max(np.abs(values - emg)) <= rb.EMG_UV_PER_LSB / 2 + 1e-3
    acc = rng.uniform(-7990.0, 7990.0, size=(3, n))
    counts, _ = fw.acc_mg_to_counts(acc)
    _, _, _, _, values = rb.decode_data_packet(
        fw.encode_data_packet(rb.StreamId.ACC, seq, ticks, flags, counts), rb.IMU_UUID
    )
    assert np.max(np.abs(values - acc)) <= rb.ACC_MG_PER_LSB / 2 + 1e-3


def test_scales_in_uv_and_mg() -> None:
    one_count = np.array([[1], [-4]], dtype=np.int16)
    *_, values = rb.decode_data_packet(fw.encode_data_packet(rb.StreamId.EMG, 0, 0, 0, one_count))
    np.testing.assert_array_equal(values, [[0.25], [-1.0]])
    g = np.array([[4096], [-4096], [32767]], dtype=np.int16)
    *_, values = rb.decode_data_packet(fw.encode_data_packet(rb.StreamId.ACC, 0, 0, 0, g))
    np.testing.assert_allclose(values[:, 0], [1000.0, -1000.0, 7999.755859375])
    counts, sat = fw.emg_uv_to_counts([[1e6, np.nan], [-1e6, 0.0]])
    assert counts.tolist() == [[32767, 0], [-32768, 0]]
    assert sat.tolist() == [True, False]


@pytest.mark.parametrize(
    ("uuid", "payload", "field"),
    [
        (rb.EMG_UUID, b"", "version"),
        (rb.EMG_UUID, b"\x21" + bytes(8), "version"),
        (rb.EMG_UUID, b"\x14" + bytes(8), "stream"),
        (rb.EMG_UUID, _x("acc-clock-not-set"), "stream"),
        (rb.EMG_UUID, _x("emg-mtu23")[:5], "header"),
        (rb.EMG_UUID, _x("emg-mtu23")[:-1], "samples"),
        (rb.EMG_UUID, _x("emg-mtu23") + b"\x00", "trailing"),
        (rb.EMG_UUID, _x("emg-mtu23")[:8] + b"\x00", "sample_count"),
        (rb.STATUS_UUID, _x("status-lead-off")[:9] + b"\x65\x00\x00", "battery_percent"),
        (rb.STATUS_UUID, _x("status-lead-off")[:-1], "status"),
        (rb.BATTERY_LEVEL_UUID, b"\x50", "characteristic_uuid"),
    ],
)
def test_malformed_packets_raise_decode_error_with_offset_and_field(
    uuid: str, payload: bytes, field: str
) -> None:
    with pytest.raises(DecodeError) as info:
        rb.ReferenceBandProtocol().decode(Frame(ADDR, uuid, payload, HOST0_NS, 0))
    assert info.value.field == field
    assert 0 <= info.value.offset <= len(payload)


def test_control_indications_decode_to_nothing_and_reserved_flags_are_ignored() -> None:
    proto = rb.ReferenceBandProtocol()
    assert proto.decode(Frame(ADDR, rb.CONTROL_UUID, _x("stop-response"), HOST0_NS, 0)) == []
    pkt = bytearray(_x("emg-mtu23"))
    pkt[7] = 0xE0
    (b,) = proto.decode(Frame(ADDR, rb.EMG_UUID.upper(), bytes(pkt), HOST0_NS, 0))
    assert b.flags == 0xE0
    np.testing.assert_array_equal(b.values, [[100.0, 101.0], [-50.25, -50.0]])


def _decode_or_error(uuid: str, payload: bytes) -> list[SampleBlock] | DecodeError:
    try:
        return rb.ReferenceBandProtocol().decode(Frame(ADDR, uuid, payload, HOST0_NS, 0))
    except DecodeError as exc:
        return exc


_UUIDS = st.sampled_from([rb.EMG_UUID, rb.IMU_UUID, rb.STATUS_UUID, rb.CONTROL_UUID])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(uuid=_UUIDS, payload=st.binary(max_size=600))
def test_random_bytes_only_ever_raise_decode_error(uuid: str, payload: bytes) -> None:
    result = _decode_or_error(uuid, payload)
    if isinstance(result, DecodeError):
        assert 0 <= result.offset <= len(payload)
        return
    for b in result:
        assert b.values.shape[0] == len(b.channels)
        assert np.isfinite(b.values).all()


@settings(max_examples=400, deadline=None)
@given(
    base=st.sampled_from(["emg-mtu23", "emg-saturated", "acc-clock-not-set", "status-lead-off"]),
    edits=st.lists(st.tuples(st.integers(0, 40), st.integers(0, 255)), max_size=4),
    cut=st.integers(0, 40),
    extra=st.binary(max_size=8),
)
def test_mutated_packets_only_ever_raise_decode_error(
    base: str, edits: list[tuple[int, int]], cut: int, extra: bytes
) -> None:
    pkt = bytearray(_x(base))
    for pos, value in edits:
        if pos < len(pkt):
            pkt[pos] = value
    data = bytes(pkt[: max(0, len(pkt) - cut % 4)]) + (extra if cut % 3 == 0 else b"")
    uuid = {"e": rb.EMG_UUID, "a": rb.IMU_UUID, "s": rb.STATUS_UUID}[base[0]]
    result = _decode_or_error(uuid, data)
    if isinstance(result, DecodeError):
        assert result.field in {
            "version", "stream", "header", "sample_count", "samples", "trailing", "status",
            "battery_percent",
        }


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=24))
def test_firmware_answers_any_write_with_a_status_and_check_response_only_raises_protocol_error(
    data: bytes,
) -> None:
    band = ReferenceBand(ADDR, WaveSource(duration_s=5.0))
    link = connect(band, mtu=23, at_s=1.0)
    resp = command(band, link, data)
    parsed = rb.parse_response(resp)
    assert parsed.status in set(rb.Status)
    assert len(resp) <= 20
    message = ""
    with contextlib.suppress(ProtocolError):
        rb.ReferenceBandProtocol().check_response(rb.CONTROL_UUID, resp)
        message = "accepted"
    if parsed.status not in (rb.Status.OK, rb.Status.NOT_STREAMING):
        assert message == "", "an error status is never accepted"
        with pytest.raises(ProtocolError, match=rb.Status(parsed.status).name):
            rb.ReferenceBandProtocol().check_response(rb.CONTROL_UUID, resp)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=24))
def test_check_response_on_garbage_raises_only_protocol_error(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        rb.ReferenceBandProtocol().check_response(rb.CONTROL_UUID, data)


# --------------------------------------------------------------------------- control point


@pytest.mark.parametrize(
    ("setup", "cmd", "status"),
    [
        ([], rb.encode_get_config(), rb.Status.OK),
        ([], rb.encode_set_time(HOST0_NS // 1000), rb.Status.OK),
        ([], rb.encode_start(2000, 400), rb.Status.OK),
        ([], rb.encode_start(200, 0), rb.Status.OK),
        ([], rb.encode_start(0, 25), rb.Status.OK),
        ([rb.encode_start(1000, 50)], rb.encode_stop(), rb.Status.OK),
        ([], rb.encode_get_config(version=0), rb.Status.BAD_VERSION),
        ([], bytes([2, 1]) + struct.pack("<HH", 1000, 50), rb.Status.BAD_VERSION),
        ([], bytes([1, 0x7F]), rb.Status.UNKNOWN_OPCODE),
        ([], b"", rb.Status.BAD_LENGTH),
        ([], b"\x01", rb.Status.BAD_LENGTH),
        ([], rb.encode_start(1000, 50)[:-1], rb.Status.BAD_LENGTH),
        ([], rb.encode_stop() + b"\x00", rb.Status.BAD_LENGTH),
        ([], rb.encode_set_time(HOST0_NS // 1000)[:-1], rb.Status.BAD_LENGTH),
        ([], rb.encode_get_config() + b"\x00", rb.Status.BAD_LENGTH),
        ([], rb.encode_start(300, 50), rb.Status.UNSUPPORTED_RATE),
        ([], rb.encode_start(1000, 30), rb.Status.UNSUPPORTED_RATE),
        ([], rb.encode_start(0, 0), rb.Status.UNSUPPORTED_RATE),
        ([rb.encode_start(1000, 50)], rb.encode_start(1000, 50), rb.Status.ALREADY_STREAMING),
        ([], rb.encode_stop(), rb.Status.NOT_STREAMING),
        ([], rb.encode_set_time(0), rb.Status.INVALID_TIME),
        ([], rb.encode_set_time(4_102_444_800 * 10**6), rb.Status.INVALID_TIME),
    ],
)
def test_every_command_and_every_status(
    setup: list[bytes], cmd: bytes, status: rb.Status
) -> None:
    band = ReferenceBand(ADDR, WaveSource(duration_s=5.0))
    link = connect(band, at_s=1.0)
    for pre in setup:
        assert rb.parse_response(command(band, link, pre)).ok
    resp = command(band, link, cmd)
    parsed = rb.parse_response(resp)
    assert parsed.version == rb.PROTOCOL_VERSION
    assert parsed.status == status
    if len(cmd) >= 2:
        assert parsed.opcode == cmd[1] & 0x7F
    proto = rb.ReferenceBandProtocol()
    if status in (rb.Status.OK, rb.Status.NOT_STREAMING):
        proto.check_response(rb.CONTROL_UUID, resp)  # accepted (STOP when stopped holds)
    else:
        with pytest.raises(ProtocolError, match=status.name) as info:
            proto.check_response(rb.CONTROL_UUID, resp)
        assert ":" in str(info.value), "the message says what to do"


def test_ok_payloads_start_set_time_and_streaming_state() -> None:
    band = ReferenceBand(ADDR, WaveSource(duration_s=5.0), drift_ppm=0.0)
    link = connect(band, mtu=23, at_s=2.0)
    assert rb.parse_config(command(band, link, rb.encode_get_config())).clock_set is False
    resp = rb.parse_response(command(band, link, rb.encode_set_time(HOST0_NS // 1000)))
    assert struct.unpack("<Q", resp.payload) == (DEFAULT_CLOCK_OFFSET_US + 2_000_000,)
    resp = rb.parse_response(command(band, link, rb.encode_start(500, 100)))
    assert struct.unpack("<HHBB", resp.payload) == (500, 100, 2, 1)
    cfg = rb.parse_config(command(band, link, rb.encode_get_config()))
    assert (cfg.streaming, cfg.clock_set, cfg.emg_fs_hz, cfg.imu_fs_hz) == (True, True, 500, 100)
    assert cfg.channels == ("gm", "gl")


def test_no_indication_unless_subscribed_and_att_errors() -> None:
    band = ReferenceBand(ADDR, WaveSource(duration_s=5.0))
    link = FakeLink()
    band.on_connect(link)
    band.write(rb.CONTROL_UUID, rb.encode_start(1000, 50), with_response=True)
    assert link.out == []
    assert band.streaming, "the command still takes effect"
    run(band, link, 2.0)
    assert link.out == [], "nothing is sent on characteristics nobody subscribed to"
    unknown = "0000ffff-0000-1000-8000-00805f9b34fb"
    for uuid, code in ((rb.EMG_UUID, 0x03), (rb.STATUS_UUID, 0x03), (unknown, 0x0A)):
        with pytest.raises(AttError) as info:
            band.write(uuid, b"\x00", with_response=True)
        assert info.value.code == code
    with pytest.raises(AttError):
        band.write(rb.CONTROL_UUID, rb.encode_stop(), with_response=False)
    for uuid in (rb.CONTROL_UUID, rb.EMG_UUID, rb.IMU_UUID):
        with pytest.raises(AttError):
            band.read(uuid)


def test_gatt_table_advertisement_and_reads() -> None:
    band = ReferenceBand(ADDR, WaveSource(), battery_percent=77, firmware="1.2.3")
    services = {s.uuid: s for s in band.gatt()}
    chars = {c.uuid: c.properties for c in services[rb.SERVICE_UUID].characteristics}
    assert chars == {
        rb.CONTROL_UUID: ("write", "indicate"),
        rb.EMG_UUID: ("notify",),
        rb.IMU_UUID: ("notify",),
        rb.STATUS_UUID: ("read", "notify"),
    }
    assert rb.BATTERY_SERVICE_UUID in services
    assert rb.DEVICE_INFORMATION_SERVICE_UUID in services
    adv = band.advertisement()
    assert adv.service_uuids == (rb.SERVICE_UUID,)
    assert adv.manufacturer_data[MANUFACTURER_ID] == b"CS\x01"
    link = connect(band)
    assert band.read(rb.BATTERY_LEVEL_UUID) == bytes([77])
    assert band.read(rb.DEVICE_INFORMATION_UUIDS["firmware"]) == b"1.2.3"
    link.t_ns = round(3 * 3600e9)
    (status,) = rb.ReferenceBandProtocol().decode(
        Frame(ADDR, rb.STATUS_UUID, band.read(rb.STATUS_UUID), HOST0_NS, 0)
    )
    assert status.values[0, 0] == 77 - 6  # 2 %/h drain
    assert 31.0 < status.values[1, 0] < 34.0
    assert status.flags & rb.FLAG_CLOCK_NOT_SET


# --------------------------------------------------------------------------- streaming


@pytest.mark.parametrize(("mtu", "spp_emg", "spp_acc"), [(23, 2, 1), (247, 58, 39), (517, 126, 84)])
def test_packets_fill_the_mtu(mtu: int, spp_emg: int, spp_acc: int) -> None:
    source = WaveSource(duration_s=10.0)
    band = ReferenceBand(ADDR, source)
    link = connect(band, mtu=mtu, at_s=0.5)
    command(band, link, rb.encode_start(1000, 50))
    run(band, link, 6.0)
    emg, acc = link.of(rb.EMG_UUID), link.of(rb.IMU_UUID)
    assert {len(p) for p in emg} == {9 + 4 * spp_emg}
    assert {len(p) for p in acc} == {9 + 6 * spp_acc}
    assert max(len(p) for p in emg + acc) <= mtu - 3
    assert len(emg) == pytest.approx(5.5 * 1000 / spp_emg, abs=2)
    assert source.reads <= 12, "the source is read in about one-second blocks"
    tl = timelines(frames_of(link), rb.ReferenceBandProtocol())
    assert tl["emg"].lost_packets == 0
    assert tl["emg"].gaps == []
    # EMG sample 0 is the source sample at START (0.5 s): the timeline holds the source
    want = source.emg_uv(500, tl["emg"].n_samples)
    assert np.max(np.abs(tl["emg"].values - want)) <= rb.EMG_UV_PER_LSB / 2 + 1e-3


def test_sequence_and_timestamp_wrap_within_a_simulated_hour_and_a_quarter() -> None:
    # IMU only at 25 Hz and MTU 23: one sample per packet, 25 packets/s, so the u16 sequence
    # wraps after 2621 s and the u32 µs clock (from 0 here) after 4295 s.
    duration_s = 4500.0
    band = ReferenceBand(ADDR, WaveSource(duration_s=duration_s), clock_offset_us=0, drift_ppm=20.0)
    link = connect(band, mtu=23)
    command(band, link, rb.encode_set_time(HOST0_NS // 1000))
    command(band, link, rb.encode_start(0, 25))
    run(band, link, duration_s, step_s=5.0)
    acc = link.of(rb.IMU_UUID)
    seqs = np.array([struct.unpack_from("<H", p, 1)[0] for p in acc])
    ticks = np.array([struct.unpack_from("<I", p, 3)[0] for p in acc], dtype=np.int64)
    assert len(acc) == duration_s * 25, "the whole source, then nothing (it ran out)"
    assert np.sum(np.diff(seqs) < 0) == 1, "the sequence wrapped exactly once"
    assert np.all(np.mod(np.diff(seqs), 65536) == 1)
    assert np.sum(np.diff(ticks) < 0) == 1, "the device clock wrapped exactly once"
    assert np.all(np.mod(np.diff(ticks), 2**32) == 40_000)
    assert all(p[7] & rb.FLAG_CLOCK_NOT_SET == 0 for p in acc)
    proto = rb.ReferenceBandProtocol(imu_fs_hz=25)
    tl = timelines(frames_of(link), proto)["acc"]
    assert tl.n_samples == len(acc)
    assert (tl.lost_packets, tl.duplicate_packets, tl.gaps, tl.clock_resets) == (0, 0, [], 0)
    assert tl.valid.all()
    assert tl.drift_ppm == pytest.approx(20.0, abs=3.0)


def test_lead_off_and_saturation_flags_reach_the_timeline() -> None:
    source = WaveSource(
        duration_s=20.0, lead_off_s=(8.0, 11.0), burst_s=(12.0, 12.5), burst_uv=9000.0
    )
    band = ReferenceBand(ADDR, source)
    link = connect(band)
    command(band, link, rb.encode_start(1000, 50))
    run(band, link, 15.0)
    proto = rb.ReferenceBandProtocol()
    blocks = [b for f in frames_of(link) for b in proto.decode(f) if b.stream == "emg"]
    lead = [b for b in blocks if b.flags & (rb.FLAG_LEAD_OFF_GM | rb.FLAG_LEAD_OFF_GL)]
    sat = [b for b in blocks if b.flags & rb.FLAG_SATURATED]
    assert len(lead) == pytest.approx(3000 / 58 + 1, abs=1.5)
    assert len(sat) == pytest.approx(500 / 58 + 1, abs=1.5)
    assert all(np.max(b.values) == 8191.75 for b in sat)
    status = [b for f in frames_of(link) for b in proto.decode(f) if b.stream == "status"]
    assert [int(b.values[2, 0]) for b in status] == [0, 1]  # at 0 s and at 10 s (lead-off)
    tl = timelines(frames_of(link), proto)["emg"]
    t = np.arange(tl.n_samples) / 1000.0
    bad = ((t >= 8.0) & (t < 11.0)) | ((t >= 12.0) & (t < 12.5))
    assert not tl.valid[bad].any()
    assert tl.valid[~bad].mean() > 0.98, "only whole packets around the events are invalid"
    assert tl.gaps == [], "flagged samples were received: they are invalid, not gaps"


def test_disconnect_stops_streaming_and_reconnect_restarts_sequence_with_an_exact_gap() -> None:
    source = WaveSource(duration_s=120.0)
    band = ReferenceBand(ADDR, source, drift_ppm=0.0)
    link = connect(band, at_s=1.0)
    command(band, link, rb.encode_set_time(HOST0_NS // 1000))
    command(band, link, rb.encode_start(1000, 50))
    run(band, link, 20.0, step_s=0.05)
    band.on_disconnect()
    assert not band.streaming
    out_before = list(link.out)
    link2 = FakeLink()
    link2.t_ns = round(35e9)
    band.tick(link2.t_ns)  # not connected: nothing happens
    band.on_connect(link2)
    run(band, link2, 36.0)
    assert link2.out == [], "nothing streams before the central subscribes and STARTs again"
    for uuid in (rb.CONTROL_UUID, rb.EMG_UUID, rb.IMU_UUID, rb.STATUS_UUID):
        band.set_subscribed(uuid, True)
    command(band, link2, rb.encode_start(1000, 50))
    run(band, link2, 60.0, step_s=0.05)
    emg2 = link2.of(rb.EMG_UUID)
    assert struct.unpack_from("<H", emg2[0], 1)[0] == 0, "sequence restarts at 0 on START"
    link.out = out_before + link2.out
    tl = timelines(frames_of(link), rb.ReferenceBandProtocol())["emg"]
    assert (tl.segments, tl.clock_resets, tl.lost_packets) == (2, 0, 0)
    assert len(tl.gaps) == 1
    a, b = tl.gaps[0]
    n_first = len(link.of(rb.EMG_UUID)) - len(emg2)
    assert a == n_first * 58  # everything sent before the drop
    # truth: the source resumes at 36 s (START), grid sample 0 is source sample 1000 (1 s)
    assert abs(b - (36_000 - 1000)) <= 58
    want = source.emg_uv(36_000, 1000)
    assert np.max(np.abs(tl.values[:, b : b + 1000] - want)) <= 0.2


def test_power_cycle_is_a_clock_reset_placed_by_host_time() -> None:
    band = ReferenceBand(ADDR, WaveSource(duration_s=200.0), drift_ppm=0.0)
    link = connect(band, at_s=0.0)
    command(band, link, rb.encode_start(1000, 50))
    run(band, link, 30.0, step_s=0.05)
    band.power_cycle(round(30e9))
    band.on_disconnect()
    link2 = connect(band, at_s=40.0)
    command(band, link2, rb.encode_start(1000, 50))
    run(band, link2, 60.0, step_s=0.05)
    link.out += link2.out
    tl = timelines(frames_of(link), rb.ReferenceBandProtocol())["emg"]
    assert tl.clock_resets == 1
    assert len(tl.gaps) == 1
    _, b = tl.gaps[0]
    assert abs(b - 40_000) <= 2 * 58, "placed by host time (within latency and one packet)"
    flags_after = [p[7] for p in link2.of(rb.EMG_UUID)]
    assert all(f & rb.FLAG_CLOCK_NOT_SET for f in flags_after)
    assert struct.unpack_from("<I", link2.of(rb.EMG_UUID)[0], 3)[0] < 11_000_000


def test_source_end_finishes_the_band_and_stops_data() -> None:
    source = WaveSource(duration_s=10.0)
    band = ReferenceBand(ADDR, source)
    link = connect(band)
    command(band, link, rb.encode_start(1000, 50))
    run(band, link, 9.0)
    assert not band.finished()
    run(band, link, 15.0)
    assert band.finished()
    n = sum(rb.decode_data_packet(p)[4].shape[1] for p in link.of(rb.EMG_UUID))
    assert 10_000 - 58 <= n <= 10_000
    band.on_disconnect()
    assert band.finished(), "finished stays true when disconnected"


# --------------------------------------------------------------------------- protocol object


def test_protocol_identity_commands_and_metadata() -> None:
    proto = rb.ReferenceBandProtocol(emg_fs_hz=2000, imu_fs_hz=100)
    assert proto.family == "crampsense-band"
    assert proto.matches("CrampSense band R", [])
    assert proto.matches(None, [rb.SERVICE_UUID.upper()])
    assert not proto.matches("Polar H10", ["0000180d-0000-1000-8000-00805f9b34fb"])
    assert proto.control_uuids() == (rb.CONTROL_UUID,)
    assert proto.data_uuids() == (rb.EMG_UUID, rb.IMU_UUID, rb.STATUS_UUID)
    writes = proto.start_commands(HOST0_NS + 999)
    assert writes == (
        GattWrite(rb.CONTROL_UUID, rb.encode_set_time(HOST0_NS // 1000), True, True),
        GattWrite(rb.CONTROL_UUID, rb.encode_start(2000, 100), True, True),
    )
    assert proto.stop_commands() == (GattWrite(rb.CONTROL_UUID, b"\x01\x02", True, True),)
    caps = {c.stream: c for c in proto.capabilities()}
    assert (caps["emg"].fs_hz, caps["acc"].fs_hz, caps["emg"].unit) == (2000.0, 100.0, "uV")
    meta = proto.metadata()
    assert all(isinstance(v, str) for v in meta.values())
    assert float(meta["emg_uv_per_lsb"]) == 0.25
    assert float(meta["acc_mg_per_lsb"]) == 0.244140625
    assert meta["emg_fs_hz"] == "2000"
    again = rb.ReferenceBandProtocol.from_metadata(meta)
    assert (again.emg_fs_hz, again.imu_fs_hz) == (2000, 100)
    with pytest.raises(ConfigError, match="not an integer"):
        rb.ReferenceBandProtocol.from_metadata({"emg_fs_hz": "fast"})
    assert proto.timeline_builder("status") is None
    proto.check_response(rb.EMG_UUID, b"")  # not the control point: ignored
    with pytest.raises(ProtocolError, match="version 2"):
        proto.check_response(rb.CONTROL_UUID, b"\x02\x81\x00")
    with pytest.raises(ConfigError, match="300"):
        rb.ReferenceBandProtocol(emg_fs_hz=300)
    with pytest.raises(ConfigError):
        rb.ReferenceBandProtocol(imu_fs_hz=52)


def test_registry_identifies_the_band_first() -> None:
    hr_service = "0000180d-0000-1000-8000-00805f9b34fb"
    found = registry.identify("crampsense band L", [rb.SERVICE_UUID, hr_service])
    assert isinstance(found, rb.ReferenceBandProtocol)
    built = registry.protocol_for("crampsense-band", emg_fs_hz=500)
    assert isinstance(built, rb.ReferenceBandProtocol)
    assert built.emg_fs_hz == 500


def test_device_profile_agrees_with_the_protocol() -> None:
    cfg = tomllib.loads((PROFILE_DIR / "crampsense-band.toml").read_text())
    proto = rb.ReferenceBandProtocol()
    assert cfg["family"] == proto.family
    assert cfg["protocol_version"] == rb.PROTOCOL_VERSION
    assert cfg["match_service_uuids"] == [rb.SERVICE_UUID]
    assert cfg["match_name_prefix"] == rb.NAME_PREFIX
    assert tuple(cfg["data_uuids"]) == proto.data_uuids()
    assert tuple(cfg["control_uuids"]) == proto.control_uuids()
    assert (cfg["tick_hz"], cfg["tick_modulo"], cfg["seq_modulo"]) == (
        rb.TICK_HZ, rb.TICK_MODULO, rb.SEQ_MODULO,
    )
    emg, acc, status = cfg["streams"]["emg"], cfg["streams"]["acc"], cfg["streams"]["status"]
    assert (emg["scale"], tuple(emg["channels"])) == (rb.EMG_UV_PER_LSB, rb.EMG_CHANNELS)
    assert tuple(emg["supported_fs_hz"]) == rb.EMG_RATES_HZ
    assert emg["range"] == 32767 * rb.EMG_UV_PER_LSB
    assert emg["invalid_flags"] == rb.EMG_INVALID_FLAGS
    assert (acc["scale"], tuple(acc["channels"])) == (rb.ACC_MG_PER_LSB, rb.ACC_CHANNELS)
    assert tuple(acc["supported_fs_hz"]) == rb.IMU_RATES_HZ
    assert acc["invalid_flags"] == rb.ACC_INVALID_FLAGS
    assert tuple(status["channels"]) == rb.STATUS_CHANNELS
    assert (emg["fs_hz"], acc["fs_hz"]) == (proto.emg_fs_hz, proto.imu_fs_hz)


# --------------------------------------------------------------------------- through bleak


def test_end_to_end_through_bleak_with_a_synthetic_night() -> None:
    night = generate_night(
        NightSpec(seed=3, duration_s=240.0, emg_fs_hz=1000.0, n_cramps=0, lookalikes=())
    )
    source = night.leg("left")
    band = ReferenceBand(ADDR, source, clock_offset_us=2**32 - 60_000_000)
    clock = FakeClock(datetime(2025, 1, 15, 22, 30, tzinfo=UTC))
    world = SimulatedWorld(clock, [band], client_mtu=247)
    proto = rb.ReferenceBandProtocol()
    frames: list[Frame] = []
    indications: list[bytes] = []

    def on_data(char: object, data: bytearray) -> None:
        uuid = str(getattr(char, "uuid", ""))
        frames.append(Frame(ADDR, uuid, bytes(data), clock.now_ns(), clock.monotonic_ns()))

    def on_control(_: object, data: bytearray) -> None:
        indications.append(bytes(data))

    async def body() -> None:
        pump = asyncio.create_task(world.run())
        async with BleakClient(ADDR, backend=world.client_backend) as client:
            await client.start_notify(rb.CONTROL_UUID, on_control)
            for uuid in proto.data_uuids():
                await client.start_notify(uuid, on_data)
            for w in proto.start_commands(clock.now_ns()):
                await client.write_gatt_char(w.char_uuid, w.data, response=w.response)
                await world.wait_s(0.1)
            await world.wait_s(120.0)
            for w in proto.stop_commands():
                await client.write_gatt_char(w.char_uuid, w.data, response=w.response)
                await world.wait_s(0.1)
        world.stop()
        await pump

    asyncio.run(body())
    assert len(indications) == 3
    for ind in indications:
        proto.check_response(rb.CONTROL_UUID, ind)
    tl = timelines(frames, proto)
    emg = tl["emg"]
    assert emg.n_samples == pytest.approx(120_000, abs=200)
    assert (emg.lost_packets, emg.gaps) == (0, [])
    emg_frames = [f for f in frames if f.characteristic_uuid == rb.EMG_UUID]
    ticks = [rb.decode_data_packet(f.payload)[2] for f in emg_frames]
    assert min(ticks) < 10**6 < 2**32 - 10**6 < max(ticks), "the device clock wrapped mid-session"
    # the timeline is the source from the START position on
    head = source.emg_uv(0, 30_050)[0]
    windows = np.lib.stride_tricks.sliding_window_view(head, 50)
    err = np.max(np.abs(windows - emg.values[0, :50]), axis=1)
    offsets = np.flatnonzero(err <= 0.13)
    assert len(offsets) == 1, "the stream starts at exactly one source position (START)"
    want = source.emg_uv(int(offsets[0]), emg.n_samples)
    assert np.max(np.abs(emg.values - want)) <= rb.EMG_UV_PER_LSB / 2 + 1e-3
    # sample 0 was taken at START: source index / fs after the world's start
    t0_true_ns = HOST0_NS + int(offsets[0]) * 10**6
    assert abs(emg.t0_host_ns - t0_true_ns) <= 2 * 10**6
    assert emg.drift_ppm == 0.0, "two minutes are too short to estimate drift"
    assert math.isclose(emg.sample_period_ns, 1e6)


@pytest.mark.slow
def test_a_whole_night_with_two_reconnects_reconstructs_exactly() -> None:
    """8 h at 1000 Hz EMG and 50 Hz IMU, MTU 247, 20 ppm drift, two 2-minute disconnects."""
    night_s = 8 * 3600.0
    source = WaveSource(duration_s=night_s)
    band = ReferenceBand(ADDR, source, drift_ppm=20.0)
    proto = rb.ReferenceBandProtocol()
    builders = {s: proto.timeline_builder(s) for s in ("emg", "acc")}
    starts: list[float] = []

    def session(link: FakeLink, until_s: float) -> None:
        for uuid in (rb.CONTROL_UUID, rb.EMG_UUID, rb.IMU_UUID, rb.STATUS_UUID):
            band.set_subscribed(uuid, True)
        command(band, link, rb.encode_set_time(HOST0_NS // 1000 + link.t_ns // 1000))
        command(band, link, rb.encode_start(1000, 50))
        starts.append(link.t_ns / 1e9)
        while link.t_ns < round(until_s * 1e9):
            link.t_ns += 10**9
            band.tick(link.t_ns)
            for f in frames_of(link):
                for block in proto.decode(f):
                    b = builders.get(block.stream)
                    if b is not None:
                        b.add(block, f.host_time_ns)
            link.out.clear()

    bounds = [(0.0, 3 * 3600.0), (3 * 3600.0 + 120.0, 6 * 3600.0), (6 * 3600.0 + 120.0, night_s)]
    for begin, end in bounds:
        link = FakeLink(247)
        link.t_ns = round(begin * 1e9)
        band.on_connect(link)
        session(link, end)
        band.on_disconnect()
    emg = builders["emg"].build()  # type: ignore[union-attr]
    assert (emg.lost_packets, emg.duplicate_packets, emg.clock_resets) == (0, 0, 0)
    assert emg.segments == 3
    assert len(emg.gaps) == 2
    for (a, b), resume_s in zip(emg.gaps, starts[1:], strict=True):
        assert b - a == pytest.approx(120_000, abs=120)
        assert abs(b - round(resume_s * 1000 * (1 + 20e-6))) <= 58
    assert emg.drift_ppm == pytest.approx(20.0, abs=1.0)
    assert emg.valid.sum() == emg.n_samples - sum(b - a for a, b in emg.gaps)
