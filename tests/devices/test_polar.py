"""Polar PMD (H10, Verity Sense, OH1): test vectors, codecs, control point, simulator, time.

The byte vectors are PROTOCOLS.md section 1 (from Polar's public SDK unit tests). The
simulator is driven through bleak's public API (``backend=world...``) and the transport's
IngestSession, as against hardware.
"""

from __future__ import annotations

import asyncio
import math
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from bleak import BleakClient, BleakScanner
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.exc import BleakGATTProtocolError

import crampsense.transport.ingest as ingest
from crampsense.clock import FakeClock
from crampsense.devices import polar as pd
from crampsense.devices.base import ControlEvent
from crampsense.devices.registry import PROFILE_DIR
from crampsense.errors import ConfigError, DecodeError, ProtocolError
from crampsense.models import DeviceInfo, Frame
from crampsense.transport.ingest import IngestSession
from firmware_sims import polar as polar_fw
from firmware_sims.peripheral import AttError
from firmware_sims.polar import (
    DEFAULT_DEVICE_TIME0_NS,
    PolarSensor,
    synthetic_ecg_uv,
)
from firmware_sims.world import SimulatedWorld
from ingesthelp import ListSink, ingest_world

ROOT = Path(__file__).resolve().parents[2]
ADDR = "A0:9E:1A:00:00:10"
HOST0_S = 1_736_980_200  # 2025-01-15T22:30:00Z

RAW_VECTOR = "02 00 94 35 77 00 00 00 00 01 f7 ff ff ff e7 03 f8 ff fe ff e5 03"
DELTA_VECTOR = "02 65 00 00 00 00 00 00 00 81 f1 ff 14 00 f0 03 06 01 7b 0f 08"


def _frame(payload: bytes, uuid: str = pd.DATA_UUID) -> Frame:
    return Frame(ADDR, uuid, payload, HOST0_S * 10**9, 0)


class LegSource:
    """A leg accelerometer with a known, closed-form signal (mG), gravity along z."""

    emg_channels = ("gm", "gl")
    emg_fs_hz = 500.0

    def __init__(self, acc_fs_hz: float, duration_s: float) -> None:
        self.acc_fs_hz = acc_fs_hz
        self.duration_s = duration_s

    def acc_at(self, t_s: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
        x = 120.0 * np.sin(2 * np.pi * 0.31 * t_s)
        y = -80.0 * np.cos(2 * np.pi * 0.17 * t_s) + 30.0 * np.sin(2 * np.pi * 3.1 * t_s)
        z = 990.0 + 40.0 * np.sin(2 * np.pi * 0.07 * t_s)
        return np.stack([x, y, z]).astype(np.float32)

    def acc_mg(self, start: int, n: int) -> npt.NDArray[np.float32]:
        return self.acc_at(np.arange(start, start + n) / self.acc_fs_hz)

    def emg_uv(self, start: int, n: int) -> npt.NDArray[np.float32]:
        return np.zeros((2, n), np.float32)

    def lead_off(self, start: int, n: int) -> npt.NDArray[np.bool_]:
        return np.zeros(n, np.bool_)


# --------------------------------------------------------------------------- vectors


def test_raw_acc_vector_decodes_exactly() -> None:
    f = pd.decode_pmd_frame(bytes.fromhex(RAW_VECTOR))
    assert f.measurement_type == pd.MeasurementType.ACC
    assert f.timestamp_ns == 2_000_000_000
    assert (f.frame_type, f.compressed) == (1, False)
    assert f.samples.T.tolist() == [[-9, -1, 999], [-8, -2, 997]]
    block = pd.PolarPmdProtocol("verity-sense").decode(_frame(bytes.fromhex(RAW_VECTOR)))[0]
    assert (block.stream, block.unit, block.channels) == ("acc", "mg", ("x", "y", "z"))
    assert block.values.T.tolist() == [[-9, -1, 999], [-8, -2, 997]]
    # device_ticks: the first sample, one nominal 52 Hz period before the frame timestamp
    assert block.device_ticks == 2_000_000_000 - round(1e9 / 52)
    assert polar_fw.encode_acc_frame(2_000_000_000, f.samples).hex(" ") == RAW_VECTOR


def test_compressed_acc_vector_decodes_exactly() -> None:
    f = pd.decode_pmd_frame(bytes.fromhex(DELTA_VECTOR))
    assert (f.timestamp_ns, f.frame_type, f.compressed) == (101, 1, True)
    assert f.samples.T.tolist() == [[-15, 20, 1008], [-20, 17, 1008]]
    # our encoder writes the same fields; only the device's padding bits differ
    ours = polar_fw.encode_delta_frame(2, 101, 1, f.samples, min_delta_bits=6)
    assert ours[:-1] == bytes.fromhex(DELTA_VECTOR)[:-1]
    assert pd.decode_pmd_frame(ours).samples.tolist() == f.samples.tolist()


def test_msb_first_reading_would_be_wrong() -> None:
    """The deltas are LSB-first; reading MSB-first gives other numbers (a known trap)."""
    bits = np.unpackbits(np.frombuffer(bytes.fromhex("7b0f08"), np.uint8))[:18]
    msb = [int("".join(map(str, bits[i : i + 6])), 2) for i in range(0, 18, 6)]
    msb = [v - 64 if v >= 32 else v for v in msb]
    assert msb != [-5, -3, 0]
    assert pd.decode_pmd_frame(bytes.fromhex(DELTA_VECTOR)).samples[:, 1].tolist() == [
        -20, 17, 1008]


def test_command_bytes_are_exact() -> None:
    assert pd.encode_start_acc(200, 8, 16).hex(" ") == "02 02 02 01 08 00 00 01 c8 00 01 01 10 00"
    assert pd.encode_start_ecg(130, 14).hex(" ") == "02 00 00 01 82 00 01 01 0e 00"
    assert pd.encode_stop(pd.MeasurementType.ACC) == b"\x03\x02"
    assert pd.encode_stop(pd.MeasurementType.ECG) == b"\x03\x00"
    assert pd.encode_get_settings(pd.MeasurementType.ACC) == b"\x01\x02"
    proto = pd.PolarPmdProtocol("h10")
    writes = proto.start_commands(HOST0_S * 10**9)
    assert [w.data.hex(" ") for w in writes] == [
        "01 02", "02 02 02 01 08 00 00 01 c8 00 01 01 10 00",
        "01 00", "02 00 00 01 82 00 01 01 0e 00",
    ]
    assert all(w.char_uuid == pd.CONTROL_UUID and w.expect_indication for w in writes)
    assert [w.data for w in proto.stop_commands()] == [b"\x03\x02", b"\x03\x00"]
    sense = pd.PolarPmdProtocol("verity-sense")
    assert [w.data.hex(" ") for w in sense.start_commands(0)] == [
        "01 02", "02 02 02 01 08 00 00 01 34 00 01 01 10 00"]
    assert pd.PolarPmdProtocol.min_mtu == 232


def test_features_and_settings_codec() -> None:
    assert pd.parse_features(bytes.fromhex("0f 05 00")) == {
        pd.MeasurementType.ECG, pd.MeasurementType.ACC}
    sense = pd.MODELS["verity-sense"].features
    assert pd.parse_features(polar_fw.encode_features(sorted(sense))) == sense
    with pytest.raises(ProtocolError, match="not a feature read"):
        pd.parse_features(b"\xf0\x01")
    tlv = pd.encode_settings([(pd.SettingType.SAMPLE_RATE, [25, 50, 100, 200]),
                              (pd.SettingType.CHANNELS, [3]), (pd.SettingType.FACTOR, [0.5])])
    assert tlv[:10].hex(" ") == "00 04 19 00 32 00 64 00 c8 00"
    assert pd.parse_settings(tlv) == {
        pd.SettingType.SAMPLE_RATE: (25, 50, 100, 200), pd.SettingType.CHANNELS: (3,),
        pd.SettingType.FACTOR: (0.5,)}
    with pytest.raises(DecodeError) as info:
        pd.parse_settings(tlv[:-1])
    assert info.value.field == "setting_value"
    with pytest.raises(DecodeError) as info:
        pd.parse_settings(b"\x09\x01\x00")
    assert (info.value.offset, info.value.field) == (0, "setting_type")


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize(("frame_type", "bits"), [(0, 8), (1, 16), (2, 24)])
def test_acc_raw_and_delta_round_trip(frame_type: int, bits: int) -> None:
    rng = np.random.default_rng(bits)
    lim = 2 ** (bits - 1)
    walk = np.cumsum(rng.integers(-lim // 8, lim // 8, (3, 60)), axis=1)
    samples = np.clip(walk, -lim, lim - 1)
    samples[:, 0] = [-lim, lim - 1, 0]  # the extremes of the resolution
    raw = polar_fw.encode_raw_frame(pd.MeasurementType.ACC, 123_456_789, frame_type, samples)
    assert len(raw) == 10 + 3 * (bits // 8) * 60
    delta = polar_fw.encode_delta_frame(pd.MeasurementType.ACC, 123_456_789, frame_type, samples,
                                  block_samples=7)
    for payload in (raw, delta):
        f = pd.decode_pmd_frame(payload)
        assert f.timestamp_ns == 123_456_789
        assert f.samples.tolist() == samples.tolist()
    assert pd.decode_pmd_frame(delta).compressed
    with pytest.raises(DecodeError, match="do not fit"):
        polar_fw.encode_raw_frame(pd.MeasurementType.ACC, 0, frame_type, samples + lim)


def test_ecg_raw_and_delta_round_trip() -> None:
    t = np.arange(130) / 130.0
    uv = np.rint(synthetic_ecg_uv(t, seed=4)).astype(np.int64)
    assert 900 < uv.max() < 1500  # an R wave
    raw = polar_fw.encode_ecg_frame(5_000_000_000, uv)
    proto = pd.PolarPmdProtocol("h10")
    (block,) = proto.decode(_frame(raw))
    assert (block.stream, block.unit, block.channels, block.fs_hz) == ("ecg", "uV", ("ecg",), 130)
    assert block.values[0].tolist() == uv.tolist()
    # delta-compressed ECG, 14-bit reference sample (the resolution the protocol asks for)
    delta = polar_fw.encode_delta_frame(pd.MeasurementType.ECG, 5_000_000_000, 0, uv.reshape(1, -1),
                                  resolution_bits=14)
    assert len(delta) < len(raw)
    (block,) = proto.decode(_frame(delta))
    assert block.values[0].tolist() == uv.tolist()


def test_acc_factor_scales_values() -> None:
    proto = pd.PolarPmdProtocol("verity-sense", acc_factor=0.5)
    (block,) = proto.decode(_frame(bytes.fromhex(DELTA_VECTOR)))
    assert block.values[:, 0].tolist() == [-7.5, 10.0, 504.0]


# --------------------------------------------------------------------------- malformed


def _raises(payload: bytes, field: str, proto: pd.PolarPmdProtocol | None = None) -> None:
    with pytest.raises(DecodeError) as info:
        (proto or pd.PolarPmdProtocol()).decode(_frame(payload))
    assert info.value.field == field
    assert 0 <= info.value.offset <= len(payload)
    assert "\n" not in str(info.value)


def test_malformed_frames_raise_with_offset_and_field() -> None:
    raw = bytes.fromhex(RAW_VECTOR)
    delta = bytes.fromhex(DELTA_VECTOR)
    _raises(b"", "header")
    _raises(raw[:9], "header")
    _raises(b"\x05" + raw[1:], "measurement_type")
    _raises(raw[:9] + b"\x07" + raw[10:], "frame_type")
    _raises(raw[:-1], "samples")
    _raises(raw[:10], "samples")
    _raises(delta[:14], "reference_sample")
    _raises(delta[:17], "block_header")
    _raises(delta[:-1], "deltas")
    _raises(delta[:16] + b"\x04\x00", "sample_count")
    _raises(delta[:16] + b"\x40\x01" + bytes(30), "delta_bits")
    with pytest.raises(DecodeError) as info:
        pd.PolarPmdProtocol().decode(_frame(raw, "0000ffff-0000-1000-8000-00805f9b34fb"))
    assert info.value.field == "characteristic_uuid"
    assert pd.PolarPmdProtocol().decode(_frame(b"\xf0\x02\x02\x00\x00", pd.CONTROL_UUID)) == []


# --------------------------------------------------------------------------- control point


ERRORS = [s for s in pd.Status if s not in (pd.Status.SUCCESS, pd.Status.ALREADY_IN_STATE)]


@pytest.mark.parametrize("status", ERRORS, ids=[s.name for s in ERRORS])
def test_every_error_status_raises_with_its_name_and_advice(status: pd.Status) -> None:
    proto = pd.PolarPmdProtocol()
    payload = polar_fw.encode_response(pd.Opcode.START, pd.MeasurementType.ACC, status)
    with pytest.raises(ProtocolError) as info:
        proto.check_response(pd.CONTROL_UUID, payload)
    text = str(info.value)
    assert status.name in text
    assert "START ACC" in text
    assert ":" in text.split(status.name, 1)[1]  # followed by what to do
    assert "\n" not in text


def test_success_already_in_state_and_unknown_status() -> None:
    proto = pd.PolarPmdProtocol()
    proto.check_response(pd.CONTROL_UUID, bytes.fromhex("f0 02 02 00 00"))
    proto.check_response(pd.CONTROL_UUID, bytes.fromhex("f0 03 02 06 00"))
    proto.check_response(pd.DATA_UUID, b"\x00")  # not the control point: ignored
    with pytest.raises(ProtocolError, match="0x2A"):
        proto.check_response(pd.CONTROL_UUID, bytes.fromhex("f0 02 02 2a 00"))
    with pytest.raises(ProtocolError, match="not a response"):
        proto.check_response(pd.CONTROL_UUID, bytes.fromhex("f1 02"))
    with pytest.raises(ProtocolError, match="stopped its measurement"):
        proto.check_response(pd.CONTROL_UUID, bytes.fromhex("01 02"))


def test_settings_answer_is_checked_against_the_configuration() -> None:
    offered = pd.encode_settings([(pd.SettingType.SAMPLE_RATE, [52]),
                                  (pd.SettingType.RESOLUTION, [16]),
                                  (pd.SettingType.RANGE, [8])])
    answer = polar_fw.encode_response(pd.Opcode.GET_SETTINGS, pd.MeasurementType.ACC, 0, offered)
    pd.PolarPmdProtocol("verity-sense").check_response(pd.CONTROL_UUID, answer)
    with pytest.raises(ProtocolError, match=r"sample_rate 52, not 200.*polar.acc_fs_hz"):
        pd.PolarPmdProtocol("h10").check_response(pd.CONTROL_UUID, answer)


def test_measurement_stopped_asks_for_a_restart() -> None:
    proto = pd.PolarPmdProtocol()
    event = proto.on_control(pd.CONTROL_UUID, polar_fw.encode_measurement_stopped([0, 2]))
    assert event == ControlEvent("restart", "Polar sensor stopped measurement: ECG, ACC")
    assert proto.on_control(pd.CONTROL_UUID, bytes.fromhex("f0 02 02 00 00")) is None
    assert proto.on_control(pd.DATA_UUID, b"\x01\x02") is None
    unknown = proto.on_control(pd.CONTROL_UUID, b"\x7e")
    assert unknown is not None
    assert unknown.action == "mark"


# --------------------------------------------------------------------------- configuration


def test_scan_identifies_the_model_from_the_advertised_name() -> None:
    from crampsense.devices.registry import identify  # noqa: PLC0415

    sense = identify("Polar Sense B5A3C21E", [pd.SERVICE_UUID])
    h10 = identify("Polar H10 1234ABCD", ["0000180d-0000-1000-8000-00805f9b34fb"])
    assert isinstance(sense, pd.PolarPmdProtocol)
    assert isinstance(h10, pd.PolarPmdProtocol)
    assert (sense.model, h10.model) == ("verity-sense", "h10")
    assert [c.stream for c in sense.capabilities()] == ["acc"]  # no ECG on a Verity Sense
    assert [c.stream for c in h10.capabilities()] == ["acc", "ecg"]
    assert sense.capabilities()[0].fs_hz == 52.0


def test_models_names_and_options() -> None:
    assert pd.model_from_name("Polar H10 1234ABCD") == "h10"
    assert pd.model_from_name("Polar Sense B5A3C21E") == "verity-sense"
    assert pd.model_from_name("Polar OH1 0A1B2C3D") == "oh1"
    assert pd.model_from_name("Polar Ignite 3") is None
    proto = pd.PolarPmdProtocol()
    assert proto.matches("Polar OH1 0A1B2C3D", [])
    assert proto.matches(None, [pd.SERVICE_UUID.upper()])
    assert not proto.matches("Garmin HRM-Pro", ["0000180d-0000-1000-8000-00805f9b34fb"])
    oh1 = proto.configure({"model": "Polar OH1"})
    assert isinstance(oh1, pd.PolarPmdProtocol)
    assert (oh1.model, oh1.acc_fs_hz, oh1.ecg) == ("oh1", 50, False)
    assert proto.configure({"manufacturer": "Polar Electro Oy"}) is proto
    assert [c.stream for c in proto.capabilities()] == ["acc", "ecg"]
    assert [c.stream for c in oh1.capabilities()] == ["acc"]
    with pytest.raises(ConfigError, match="has no ECG") as info:
        pd.PolarPmdProtocol("oh1", ecg=True)
    assert info.value.key == "polar.ecg"
    with pytest.raises(ConfigError, match="acc_fs_hz=200"):
        pd.PolarPmdProtocol("verity-sense", acc_fs_hz=200)
    with pytest.raises(ConfigError, match="acc_range_g=16"):
        pd.PolarPmdProtocol("h10", acc_range_g=16)
    with pytest.raises(ConfigError, match="unknown Polar model"):
        pd.PolarPmdProtocol("h9")


def test_metadata_rebuilds_the_protocol() -> None:
    proto = pd.PolarPmdProtocol("h10", acc_fs_hz=50, acc_range_g=4, ecg=False)
    meta = dict(proto.metadata())
    again = pd.PolarPmdProtocol.from_metadata(meta)
    assert dict(again.metadata()) == meta
    assert again.capabilities() == proto.capabilities()
    with pytest.raises(ConfigError):
        pd.PolarPmdProtocol.from_metadata({**meta, "acc_fs_hz": "fast"})


def test_profile_agrees_with_the_models() -> None:
    doc = tomllib.loads((PROFILE_DIR / "polar-pmd.toml").read_text())
    assert doc["family"] == pd.PolarPmdProtocol.family
    assert doc["data_uuids"] == [pd.DATA_UUID]
    assert doc["control_uuids"] == [pd.CONTROL_UUID]
    assert doc["match_service_uuids"] == [pd.SERVICE_UUID]
    assert doc["min_mtu"] == pd.MIN_MTU
    for key, spec in pd.MODELS.items():
        table = doc["models"][key]
        assert table["name"].lower() == spec.name_prefix
        assert tuple(table["acc_fs_hz"]) == spec.acc_rates_hz
        assert tuple(table["acc_range_g"]) == spec.acc_ranges_g
        assert tuple(table["acc_resolution_bits"]) == spec.acc_resolutions_bits
        assert table["acc_default_fs_hz"] == spec.acc_default_hz
        assert table["acc_frame_type"] == spec.acc_frame_type
        assert tuple(table.get("ecg_fs_hz", ())) == spec.ecg_rates_hz
        names = {t.name.lower() for t in spec.features}
        assert set(table["features"]) == names
        assert set(spec.acc_rates_hz) <= set(doc["streams"]["acc"]["supported_fs_hz"])


# --------------------------------------------------------------------------- time


def test_spread_sample_times() -> None:
    times = pd.spread_sample_times_ns([10_000, 30_000, 50_000], [2, 4, 4], 1e5)
    # first frame: nominal 1e9/fs = 10 000 ns; then (ts - prev) / n
    assert times.tolist() == [0, 10_000, 15_000, 20_000, 25_000, 30_000,
                              35_000, 40_000, 45_000, 50_000]
    # a clock reset (time going back) falls back to the nominal period
    reset = pd.spread_sample_times_ns([10_000, 500], [2, 2], 1e5, previous_ns=0)
    assert reset.tolist() == [5_000, 10_000, -9_500, 500]
    assert pd.device_ns_to_unix_ns(0) == 946_684_800 * 10**9
    assert pd.unix_ns_to_device_ns(946_684_800 * 10**9 + 7) == 7


def test_batch_decode_equals_decode() -> None:
    rng = np.random.default_rng(1)
    proto = pd.PolarPmdProtocol("h10")
    payloads = [polar_fw.encode_acc_frame(10**18 + i * 10**8, rng.integers(-8000, 8000, (3, 36)))
                for i in range(20)]
    payloads += [polar_fw.encode_ecg_frame(10**18 + i * 10**8, rng.integers(-2000, 2000, 73))
                 for i in range(10)]
    payloads.insert(3, payloads[0][:-2])  # malformed: left to decode
    payloads.insert(5, bytes.fromhex(DELTA_VECTOR))  # compressed: left to decode
    host = np.zeros(len(payloads), np.int64)
    batches = proto.decode_batch(pd.DATA_UUID, payloads, host)
    assert batches is not None
    covered: set[int] = set()
    for b in batches:
        start = 0
        for j, i in enumerate(b.index.tolist()):
            (block,) = proto.decode(_frame(payloads[i]))
            n = int(b.n_samples[j])
            assert block.stream == b.stream
            np.testing.assert_array_equal(block.values, b.values[:, start : start + n])
            assert block.device_ticks == int(b.device_ticks[j])
            start += n
            covered.add(i)
    assert covered == set(range(len(payloads))) - {3, 5}
    assert proto.decode_batch(pd.CONTROL_UUID, payloads, host) is None


# --------------------------------------------------------------------------- simulator


class _Link:
    def __init__(self, mtu: int = 232) -> None:
        self.mtu = mtu
        self.sent: list[tuple[str, bytes]] = []
        self.t_ns = 0

    def notify(self, char_uuid: str, data: bytes) -> None:
        self.sent.append((char_uuid, bytes(data[: self.mtu - 3])))

    def now_ns(self) -> int:
        return self.t_ns


def _sensor(model: str = "h10", **kw: object) -> tuple[PolarSensor, _Link]:
    spec = pd.MODELS[model]
    sim = PolarSensor(ADDR, LegSource(spec.acc_default_hz, 60.0), model=model, **kw)  # type: ignore[arg-type]
    link = _Link()
    sim.on_connect(link)
    sim.set_subscribed(pd.CONTROL_UUID, True)
    sim.set_subscribed(pd.DATA_UUID, True)
    return sim, link


def _answer(sim: PolarSensor, link: _Link, command: bytes) -> bytes:
    link.sent.clear()
    sim.write(pd.CONTROL_UUID, command, with_response=True)
    ((uuid, payload),) = link.sent
    assert uuid == pd.CONTROL_UUID
    return payload


def test_simulator_answers_features_settings_and_every_status() -> None:
    sim, link = _sensor("h10")
    assert sim.read(pd.CONTROL_UUID).hex(" ") == "0f 05 00"
    settings = pd.parse_response(_answer(sim, link, b"\x01\x02")).settings()
    assert settings[pd.SettingType.SAMPLE_RATE] == (25, 50, 100, 200)
    assert settings[pd.SettingType.RANGE] == (2, 4, 8)

    def to_charger() -> None:
        sim.in_charger = True

    def off_body() -> None:
        sim.in_charger, sim.worn = False, False

    def forced() -> None:
        sim.worn = True
        sim.fail_next(pd.Status.INVALID_MTU)

    cases: list[tuple[bytes, pd.Status, Callable[[], None] | None]] = [
        (pd.encode_start_acc(52, 8), pd.Status.INVALID_SAMPLE_RATE, None),
        (pd.encode_start_acc(200, 16), pd.Status.INVALID_RANGE, None),
        (pd.encode_start_acc(200, 8, 12), pd.Status.INVALID_RESOLUTION, None),
        (pd.encode_start_acc(200, 8) + b"\x04\x01\x02", pd.Status.INVALID_NUMBER_OF_CHANNELS,
         None),
        (b"\x02\x02\x00\x01\xc8\x00", pd.Status.INVALID_PARAMETER, None),
        (b"\x02\x02\x00\x01\xc8", pd.Status.INVALID_LENGTH, None),
        (b"\x02", pd.Status.INVALID_LENGTH, None),
        (b"\x09\x02", pd.Status.INVALID_OPCODE, None),
        (b"\x02\x04", pd.Status.INVALID_MEASUREMENT_TYPE, None),
        (b"\x02\x01", pd.Status.NOT_SUPPORTED, None),
        (b"\x03\x02", pd.Status.ALREADY_IN_STATE, None),
        (pd.encode_start_acc(200, 8), pd.Status.DEVICE_IN_CHARGER, to_charger),
        (pd.encode_start_acc(200, 8), pd.Status.INVALID_STATE, off_body),
        (pd.encode_start_acc(200, 8), pd.Status.INVALID_MTU, forced),
        (pd.encode_start_acc(200, 8), pd.Status.SUCCESS, None),
        (pd.encode_start_acc(200, 8), pd.Status.ALREADY_IN_STATE, None),
    ]
    seen = set()
    proto = pd.PolarPmdProtocol()
    for command, status, before in cases:
        if before is not None:
            before()
        answer = _answer(sim, link, command)
        resp = pd.parse_response(answer)
        assert resp.status == status, (command.hex(" "), resp)
        seen.add(status)
        if status not in (pd.Status.SUCCESS, pd.Status.ALREADY_IN_STATE):
            with pytest.raises(ProtocolError, match=status.name):
                proto.check_response(pd.CONTROL_UUID, answer)
    assert seen == set(pd.Status)
    assert sim.streaming == (pd.MeasurementType.ACC,)
    assert pd.parse_response(_answer(sim, link, b"\x03\x02")).ok


def test_simulator_is_silent_below_mtu_232_and_needs_pairing_when_asked() -> None:
    sim, link = _sensor("h10")
    link.mtu = 185
    sim.write(pd.CONTROL_UUID, pd.encode_start_acc(200, 8), with_response=True)
    assert link.sent == []
    assert sim.streaming == ()
    locked, link2 = _sensor("verity-sense", requires_pairing=True)
    with pytest.raises(AttError) as info:
        locked.write(pd.CONTROL_UUID, b"\x01\x02", with_response=True)
    assert info.value.code == 0x05
    locked.paired = True
    assert pd.parse_response(_answer(locked, link2, b"\x01\x02")).ok


def test_simulator_take_off_sends_measurement_stopped() -> None:
    sim, link = _sensor("h10")
    _answer(sim, link, pd.encode_start_acc(200, 8))
    _answer(sim, link, pd.encode_start_ecg())
    link.sent.clear()
    sim.take_off()
    assert link.sent == [(pd.CONTROL_UUID, bytes([0x01, 0x00, 0x02]))]
    event = pd.PolarPmdProtocol().on_control(pd.CONTROL_UUID, link.sent[0][1])
    assert event is not None
    assert event.action == "restart"
    assert pd.parse_response(_answer(sim, link, pd.encode_start_acc(200, 8))).status == (
        pd.Status.INVALID_STATE)
    sim.put_on()
    assert pd.parse_response(_answer(sim, link, pd.encode_start_acc(200, 8))).ok


def test_compressed_frames_fit_the_mtu_and_decode_to_the_source() -> None:
    sim, link = _sensor("verity-sense")
    _answer(sim, link, pd.encode_start_acc(52, 8))
    link.t_ns = 20 * 10**9
    sim.tick(link.t_ns)
    data = [p for u, p in link.sent if u == pd.DATA_UUID]
    assert data
    assert all(len(p) <= 229 and p[9] == 0x81 for p in data)
    proto = pd.PolarPmdProtocol("verity-sense")
    frames = [pd.decode_pmd_frame(p) for p in data]
    values = np.concatenate([f.samples for f in frames], axis=1)
    times = pd.spread_sample_times_ns([f.timestamp_ns for f in frames],
                                      [f.n_samples for f in frames], 52.0)
    t_s = (times - DEFAULT_DEVICE_TIME0_NS) / 1e9
    expected = np.rint(sim.source.acc_mg(0, values.shape[1] + 1)[:, 1:])
    np.testing.assert_array_equal(values, expected)
    np.testing.assert_allclose(t_s, np.arange(1, values.shape[1] + 1) / 52.0, atol=1e-6)
    assert proto.decode(_frame(data[0]))[0].n_samples == frames[0].n_samples


# --------------------------------------------------------------------------- end to end


async def _record(
    world: SimulatedWorld, proto: pd.PolarPmdProtocol, until_s: float,
) -> tuple[IngestSession, ListSink]:
    sink = ListSink()
    device = DeviceInfo(address=ADDR, name="Polar", family="polar-pmd", placement="left-calf")
    return await ingest_world(world, proto, sink, device, until_s), sink


def _world(sim: PolarSensor) -> SimulatedWorld:
    return SimulatedWorld(FakeClock(datetime.fromtimestamp(HOST0_S, tz=UTC)), [sim])


def test_h10_end_to_end_acc_and_ecg_decode_to_the_signal() -> None:
    source = LegSource(200.0, 30.0)
    sim = PolarSensor(ADDR, source, model="h10", ecg_seed=7)
    proto = pd.PolarPmdProtocol("h10")
    session, sink = asyncio.run(_record(_world(sim), proto, 20.0))
    assert session.stats.connects == 1
    data = [f for f in sink.frames if f.characteristic_uuid == pd.DATA_UUID]
    by_type: dict[str, list[pd.PmdFrame]] = {"acc": [], "ecg": []}
    for f in data:
        (block,) = proto.decode(f)
        by_type[block.stream].append(pd.decode_pmd_frame(f.payload))
    for stream, fs, unit_check in (("acc", 200.0, "mg"), ("ecg", 130.0, "uV")):
        frames = by_type[stream]
        assert len(frames) > 10, stream
        values = np.concatenate([f.samples for f in frames], axis=1).astype(np.float64)
        times = pd.spread_sample_times_ns([f.timestamp_ns for f in frames],
                                          [f.n_samples for f in frames], fs)
        mono_s = (times - DEFAULT_DEVICE_TIME0_NS) / 1e9  # boot at simulated 0, no drift
        assert np.all(np.diff(mono_s) > 0)
        assert values.shape[1] >= 15 * fs
        if stream == "acc":
            truth = np.rint(source.acc_at(mono_s))
        else:
            truth = np.rint(synthetic_ecg_uv(mono_s, 7)).reshape(1, -1)
        np.testing.assert_array_equal(values, truth, err_msg=unit_check)
    tl_builder = proto.timeline_builder("acc")
    assert tl_builder is not None
    for f in data:
        for block in proto.decode(f):
            if block.stream == "acc":
                tl_builder.add(block, f.host_time_ns)
    tl = tl_builder.build()
    assert (tl.lost_packets, tl.gaps, tl.clock_resets) == (0, [], 0)
    t0_s = (tl.t0_host_ns / 1e9) - HOST0_S
    assert t0_s == pytest.approx(1 / 200.0, abs=0.1)  # on the host's clock, within latency


def test_mtu_below_232_gets_no_answer_and_the_transport_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ingest, "RESPONSE_TIMEOUT_S", 0.05)
    sim = PolarSensor(ADDR, LegSource(200.0, 30.0), model="h10")
    world = _world(sim)
    world.set_mtu_limit(ADDR, 185)
    session, sink = asyncio.run(_record(world, pd.PolarPmdProtocol("h10"), 5.0))
    assert session.stats.connects == 0
    assert session.stats.failed_attempts >= 1
    error = session.stats.errors[0]
    assert "did not answer" in error
    assert "232" in error
    assert not [f for f in sink.frames if f.characteristic_uuid == pd.DATA_UUID]


def test_pairing_gate_through_bleak() -> None:
    sim = PolarSensor(ADDR, LegSource(52.0, 30.0), model="verity-sense", requires_pairing=True)
    world = _world(sim)
    answers: list[bytes] = []

    async def run() -> None:
        pump = asyncio.create_task(world.run())
        dev = await BleakScanner.find_device_by_address(ADDR, backend=world.scanner_backend)
        assert dev is not None
        async with BleakClient(dev, backend=world.client_backend) as client:
            def on_control(_c: BleakGATTCharacteristic, data: bytearray) -> None:
                answers.append(bytes(data))
            await client.start_notify(pd.CONTROL_UUID, on_control)
            features = await client.read_gatt_char(pd.CONTROL_UUID)
            assert pd.parse_features(features) == pd.MODELS["verity-sense"].features
            with pytest.raises(BleakGATTProtocolError) as info:
                await client.write_gatt_char(pd.CONTROL_UUID, b"\x01\x02", response=True)
            assert info.value.code == 0x05
            sim.paired = True  # what the backend's pair() does
            await client.write_gatt_char(pd.CONTROL_UUID, b"\x01\x02", response=True)
        world.stop()
        await pump

    asyncio.run(run())
    assert len(answers) == 1
    assert pd.parse_response(answers[0]).ok


def test_clock_reset_after_power_cycle_does_not_jump_years() -> None:
    sim = PolarSensor(ADDR, LegSource(50.0, 200.0), model="oh1")
    world = _world(sim)
    world.schedule(60.0, lambda: world.power_off(ADDR))
    world.schedule(70.0, lambda: world.power_on(ADDR))
    proto = pd.PolarPmdProtocol("oh1")
    session, sink = asyncio.run(_record(world, proto, 120.0))
    assert session.stats.connects == 2
    builder = proto.timeline_builder("acc")
    assert builder is not None
    stamps = []
    for f in sink.frames:
        for block in proto.decode(f):
            builder.add(block, f.host_time_ns)
            stamps.append(pd.decode_pmd_frame(f.payload).timestamp_ns)
    # the device clock really went back to 2019-01-01 ...
    assert min(stamps) < pd.CLOCK_RESET_NS + 200 * 10**9 < max(stamps)
    tl = builder.build()
    # ... but the timeline is one 2-minute night with one gap, placed on host time
    assert tl.clock_resets == 1
    assert tl.n_samples / 50.0 == pytest.approx(120.0, abs=3.0)
    ((a, b),) = tl.gaps
    gap_start_s = (tl.sample_time_ns(a) / 1e9) - HOST0_S
    gap_end_s = (tl.sample_time_ns(b) / 1e9) - HOST0_S
    assert gap_start_s == pytest.approx(60.0, abs=0.5)
    assert 70.0 <= gap_end_s <= 75.0
    assert math.isfinite(tl.drift_ppm)


def test_measurement_stopped_by_the_sensor_is_restarted_by_the_transport() -> None:
    sim = PolarSensor(ADDR, LegSource(52.0, 60.0), model="verity-sense")
    world = _world(sim)
    world.schedule(10.0, sim.interrupt)
    proto = pd.PolarPmdProtocol("verity-sense")
    session, sink = asyncio.run(_record(world, proto, 30.0))
    assert session.stats.connects == 1
    assert any(kind == "device-stopped" and "ACC" in detail for kind, detail in sink.marks)
    assert sim.streaming == ()  # stopped again at the end of the session
    stamps = [pd.decode_pmd_frame(f.payload).timestamp_ns for f in sink.frames
              if f.characteristic_uuid == pd.DATA_UUID]
    after_s = (max(stamps) - DEFAULT_DEVICE_TIME0_NS) / 1e9
    assert after_s > 25.0  # streaming resumed after the stop at 10 s
