"""Movesense GATT SensorData Protocol: commands, data and continuations, the simulator."""

from __future__ import annotations

import asyncio
import contextlib
import struct
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from crampsense.clock import FakeClock
from crampsense.devices import movesense as ms
from crampsense.devices.base import GattWrite
from crampsense.devices.registry import PROFILE_DIR
from crampsense.errors import ConfigError, DecodeError, ProtocolError
from crampsense.models import DeviceInfo, Frame, SampleBlock
from firmware_sims import movesense as fw
from firmware_sims.movesense import Movesense
from firmware_sims.world import SimulatedWorld
from ingesthelp import ListSink, ingest_world

ROOT = Path(__file__).resolve().parents[2]
ADDR = "MS:00:00:00:00:01"
HOST0_NS = 1_736_980_200 * 10**9


def _f(payload: bytes, i: int = 0) -> Frame:
    return Frame(ADDR, ms.NOTIFY_UUID, payload, HOST0_NS + i * 10**7, i * 10**7)


def test_command_bytes() -> None:
    assert ms.encode_hello(1) == b"\x00\x01"
    assert ms.encode_subscribe(0x41, "/Meas/Acc/52") == b"\x01\x41/Meas/Acc/52"
    assert ms.encode_unsubscribe(0x41) == b"\x02\x41"
    with pytest.raises(DecodeError) as err:
        ms.encode_command(ms.Command.HELLO, 0)
    assert (err.value.offset, err.value.field) == (1, "reference")
    proto = ms.MovesenseProtocol()
    assert proto.start_commands(0) == (
        GattWrite(ms.WRITE_UUID, b"\x00\x01"),
        GattWrite(ms.WRITE_UUID, b"\x01\x41/Meas/Acc/52"),
    )
    assert proto.stop_commands() == (GattWrite(ms.WRITE_UUID, b"\x02\x41"),)


def test_data_message_decodes_to_mg_with_standard_gravity() -> None:
    # type 2, ref 0x41, timestamp 1000 ms, two samples (x, y, z) in m/s²
    payload = (b"\x02\x41" + struct.pack("<I", 1000)
               + struct.pack("<6f", 0.0, 0.0, 9.80665, 4.903325, -9.80665, 0.0))
    (blk,) = ms.MovesenseProtocol().decode(_f(payload))
    assert (blk.stream, blk.unit, blk.fs_hz, blk.device_ticks) == ("acc", "mg", 52.0, 1000)
    assert blk.values.T.ravel().tolist() == pytest.approx([0, 0, 1000, 500, -1000, 0], abs=1e-3)


def test_imu6_blocks_are_acc_then_gyro_arrays() -> None:
    proto = ms.MovesenseProtocol("/Meas/IMU6/104")
    res = ms.parse_resource("/Meas/IMU6/104")
    samples = np.array([[1.0, 2.0, 3.0, 10.0, 20.0, 30.0], [4.0, 5.0, 6.0, 40.0, 50.0, 60.0]])
    msg = fw.encode_data_message(proto.reference, 7, samples, res)
    floats = struct.unpack("<12f", msg[6:])
    assert floats == (1, 2, 3, 4, 5, 6, 10, 20, 30, 40, 50, 60), "acc block, then gyro block"
    acc, gyro = proto.decode(_f(msg))
    assert gyro.values.T.tolist() == samples[:, 3:].tolist()
    assert acc.values.T.tolist() == pytest.approx(samples[:, :3] * 1000 / 9.80665, rel=1e-6)


def test_continuation_joins_the_first_part() -> None:
    proto = ms.MovesenseProtocol("/Meas/IMU6/104")
    samples = np.arange(48, dtype=np.float64).reshape(8, 6)
    msg = fw.encode_data_message(proto.reference, 99, samples, proto.resource)
    parts = fw.split_message(msg, 158)
    assert [p[0] for p in parts] == [2, 3]
    assert len(parts[0]) == 158
    assert proto.decode(_f(parts[0])) == []
    acc, gyro = proto.decode(_f(parts[1], 1))
    assert gyro.values.T.tolist() == samples[:, 3:].tolist()
    assert acc.device_ticks == 99
    with pytest.raises(DecodeError) as err:
        proto.decode(_f(parts[1], 2))  # its first part is gone
    assert (err.value.offset, err.value.field) == (0, "continuation")


def test_extreme_floats_decode_without_warnings() -> None:
    payload = b"\x02\x41" + struct.pack("<I", 5) + struct.pack("<3f", 3.0e38, -3.0e38, 1.0)
    (blk,) = ms.MovesenseProtocol().decode(_f(payload))
    assert np.isinf(blk.values[:2, 0]).all()


def test_signalling_nan_decodes_as_a_non_finite_sample_without_warnings() -> None:
    # 0x7FA00001 is a signalling NaN: casting it to float64 warns ("invalid value"), which
    # the decoder must not let escape (found by the slow Hypothesis run).
    snan = struct.pack("<I", 0x7FA00001)
    payload = b"\x02\x41" + struct.pack("<I", 5) + snan + struct.pack("<2f", 1.0, 9.80665)
    (blk,) = ms.MovesenseProtocol().decode(_f(payload))
    assert np.isnan(blk.values[0, 0])
    assert blk.values[1:, 0].tolist() == pytest.approx([1000.0 / 9.80665, 1000.0])


def test_responses_and_check_response() -> None:
    proto = ms.MovesenseProtocol()
    assert proto.decode(_f(b"\x01\x01Hello")) == []
    assert ms.parse_response(b"\x01\x41\xc8\x00").status == 200
    assert ms.parse_response(b"\x01\x41\x01\xfb").status == 507, "the big-endian reading"
    proto.check_response(ms.NOTIFY_UUID, fw.encode_response(0x41, 200))
    with pytest.raises(ProtocolError, match="404"):
        proto.check_response(ms.NOTIFY_UUID, fw.encode_response(0x41, 404))


@pytest.mark.parametrize(
    ("payload", "offset", "field"),
    [
        (b"\x02", 1, "packet_type"),
        (b"\x07\x41" + bytes(16), 0, "packet_type"),
        (b"\x02\x42" + bytes(16), 1, "reference"),
        (b"\x02\x41\x00\x00", 4, "timestamp"),
        (b"\x03\x41" + bytes(12), 0, "continuation"),
        (b"\x01", 1, "packet_type"),
    ],
)
def test_malformed_notifications_raise_decode_error(
    payload: bytes, offset: int, field: str
) -> None:
    with pytest.raises(DecodeError) as err:
        ms.MovesenseProtocol().decode(_f(payload))
    assert (err.value.offset, err.value.field) == (offset, field)


def test_cut_samples_after_a_continuation_raise_with_the_offset() -> None:
    proto = ms.MovesenseProtocol()
    proto.decode(_f(b"\x02\x41" + bytes(4) + bytes(13)))  # incomplete: waits
    with pytest.raises(DecodeError) as err:
        proto.decode(_f(b"\x03\x41" + bytes(3)))
    assert err.value.field == "samples"
    assert err.value.offset == 5, "the end of the continuation, where bytes are missing"


def _reference(proto: ms.MovesenseProtocol, frames: list[Frame]) -> list[tuple[int, SampleBlock]]:
    out: list[tuple[int, SampleBlock]] = []
    for i, f in enumerate(frames):
        with contextlib.suppress(DecodeError):
            out.extend((i, b) for b in proto.decode(f))
    return out


def _messy(resource: str, mtu: int) -> list[Frame]:
    res = ms.parse_resource(resource)
    proto = ms.MovesenseProtocol(resource)
    rng = np.random.default_rng(5)
    payloads: list[bytes] = [b"\x01\x01Hello", fw.encode_response(proto.reference, 200)]
    per = proto.samples_per_message()
    for m in range(120):
        values = rng.normal(size=(per, res.floats_per_sample))
        msg = fw.encode_data_message(proto.reference, 1000 + m * 77, values, res)
        payloads.extend(fw.split_message(msg, mtu - 3))
    payloads.insert(30, payloads[29][:5])  # malformed
    del payloads[60]  # lose one notification
    return [_f(p, i) for i, p in enumerate(payloads)]


@pytest.mark.parametrize(("resource", "mtu"), [("/Meas/Acc/52", 40), ("/Meas/Acc/104", 247),
                                               ("/Meas/IMU6/104", 161), ("/Meas/IMU6/52", 64)])
def test_batch_equals_per_frame_decode(resource: str, mtu: int) -> None:
    frames = _messy(resource, mtu)
    ref = _reference(ms.MovesenseProtocol(resource), frames)
    proto = ms.MovesenseProtocol(resource)
    got: list[tuple[int, str, npt.NDArray[np.float32], int]] = []
    for a in range(0, len(frames), 37):
        chunk = frames[a : a + 37]
        host = np.array([f.host_time_ns for f in chunk], dtype=np.int64)
        batches = proto.decode_batch(ms.NOTIFY_UUID, [f.payload for f in chunk], host) or []
        covered: set[int] = set()
        for pb in batches:
            covered.update(pb.index.tolist())
            starts = np.cumsum(pb.n_samples) - pb.n_samples
            for i, s, n, t in zip(pb.index, starts, pb.n_samples, pb.device_ticks, strict=True):
                got.append((a + int(i), pb.stream, pb.values[:, s : s + n], int(t)))
        for i, f in enumerate(chunk):
            if i not in covered:
                with contextlib.suppress(DecodeError):
                    got.extend((a + i, b.stream, b.values, b.device_ticks or 0)
                               for b in proto.decode(f))
    got.sort(key=lambda r: (r[0], r[1]))
    want = sorted(((i, b.stream, b.values, b.device_ticks or 0) for i, b in ref),
                  key=lambda r: (r[0], r[1]))
    assert [(r[0], r[1], r[3]) for r in got] == [(r[0], r[1], r[3]) for r in want]
    assert all(np.array_equal(g[2], w[2]) for g, w in zip(got, want, strict=True))
    assert len(want) > 100


def test_protocol_identity_metadata_and_profile() -> None:
    proto = ms.MovesenseProtocol("/Meas/IMU6/104")
    assert proto.family == "movesense"
    assert proto.matches("Movesense 174630000192", [])
    assert proto.matches(None, [ms.SERVICE_UUID])
    assert [c.stream for c in proto.capabilities()] == ["acc", "gyro"]
    again = ms.MovesenseProtocol.from_metadata(proto.metadata())
    assert again.resource == proto.resource
    assert proto.min_mtu > 23
    with pytest.raises(ConfigError):
        ms.MovesenseProtocol("/Meas/ECG/128")
    with pytest.raises(ConfigError):
        ms.MovesenseProtocol("/Meas/Acc/50")
    cfg = tomllib.loads((PROFILE_DIR / "movesense.toml").read_text())
    assert cfg["family"] == proto.family
    assert cfg["match_service_uuids"] == [ms.SERVICE_UUID]
    assert tuple(cfg["data_uuids"]) == proto.data_uuids()
    assert cfg["write_uuid"] == ms.WRITE_UUID
    assert cfg["streams"]["acc"]["mps2_per_g"] == ms.MPS2_PER_G
    assert tuple(cfg["streams"]["acc"]["supported_fs_hz"]) == ms.ACC_RATES_HZ
    assert cfg["resource"] == ms.MovesenseProtocol().resource.path


class Tilt:
    """50 Hz accelerometer source: gravity on z, a slow sway on x."""

    emg_fs_hz = 1000.0
    acc_fs_hz = 52.0
    emg_channels = ("gm", "gl")
    duration_s = 120.0

    def emg_uv(self, start: int, n: int) -> npt.NDArray[np.float32]:
        return np.zeros((2, n), dtype=np.float32)

    def acc_mg(self, start: int, n: int) -> npt.NDArray[np.float32]:
        t = np.arange(start, start + n) / 52.0
        return np.vstack([200 * np.sin(0.5 * t), 0 * t, 1000 + 0 * t]).astype(np.float32)

    def lead_off(self, start: int, n: int) -> npt.NDArray[np.bool_]:
        return np.zeros(n, dtype=np.bool_)


@pytest.mark.parametrize("resource", ["/Meas/Acc/52", "/Meas/IMU6/104"])
def test_sim_end_to_end_through_bleak_with_a_reconnect(resource: str) -> None:
    source = Tilt()
    sensor = Movesense(ADDR, source)
    world = SimulatedWorld(FakeClock(datetime(2025, 1, 15, 22, 30, tzinfo=UTC)), [sensor],
                           client_mtu=161)
    world.schedule(30.0, lambda: world.drop_link(ADDR))
    proto = ms.MovesenseProtocol(resource)
    sink = ListSink()

    device = DeviceInfo(ADDR, sensor.name, proto.family, "left-calf")
    session = asyncio.run(ingest_world(world, proto, sink, device, 60.0))
    assert session.stats.connects == 2
    responses = [f.payload for f in sink.frames if f.payload[0] == ms.NotificationType.RESPONSE]
    assert b"\x01\x01Hello" in responses
    for r in responses:
        proto.check_response(ms.NOTIFY_UUID, r)
    if resource.startswith("/Meas/IMU6"):
        assert any(f.payload[0] == ms.NotificationType.DATA_PART2 for f in sink.frames)
    assert proto.min_mtu <= 161
    builder = proto.timeline_builder("acc")
    assert builder is not None
    for f in sink.frames:
        for blk in proto.decode(f):
            if blk.stream == "acc":
                builder.add(blk, f.host_time_ns)
    acc = builder.build()
    ((a, b),) = acc.gaps
    # a reconnect shorter than the timeline's 2-s rule for streams without sequence numbers
    # stays one segment and its messages count as lost
    per = proto.samples_per_message()
    assert acc.lost_packets in (0, round((b - a) / per))
    rate = ms.parse_resource(resource).rate_hz
    assert acc.n_samples == pytest.approx(60 * rate, rel=0.05)
    ok = acc.valid
    assert acc.values[2][ok] == pytest.approx(1000.0, abs=1e-3)
    assert np.abs(acc.values[0][ok]).max() == pytest.approx(200.0, abs=2.0)
