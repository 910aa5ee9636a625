"""Heart Rate Service: spec vectors, malformed input, fuzzing, the strap end to end via bleak."""

from __future__ import annotations

import asyncio
import importlib
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from bleak import BleakClient, BleakScanner
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.exc import BleakGATTProtocolError
from hypothesis import given, settings
from hypothesis import strategies as st

from crampsense.clock import FakeClock
from crampsense.devices import registry
from crampsense.devices.gatt import (
    BATTERY_LEVEL_UUID,
    BODY_SENSOR_LOCATION_UUID,
    DEVICE_INFORMATION_UUIDS,
    HEART_RATE_CONTROL_POINT_UUID,
    HEART_RATE_MEASUREMENT_UUID,
    HEART_RATE_SERVICE_UUID,
    decode_battery_level,
    decode_dis_string,
)
from crampsense.devices.heart_rate import (
    FLAG_CONTACT_DETECTED,
    HeartRateMeasurement,
    HeartRateProtocol,
    decode_body_sensor_location,
    decode_heart_rate_measurement,
)
from crampsense.devices.registry import PROFILE_DIR
from crampsense.errors import ConfigError, DecodeError, DeviceError
from crampsense.models import Frame
from firmware_sims.heart_rate import (
    SLEEP_HR_MAX_BPM,
    SLEEP_HR_MIN_BPM,
    HeartRateStrap,
    encode_heart_rate_measurement,
    sleeping_hr_bpm,
)
from firmware_sims.world import SimulatedWorld

ROOT = Path(__file__).resolve().parents[2]
STRAP = "HR:00:00:00:00:01"
T0 = datetime(2025, 1, 10, 22, 0, tzinfo=UTC)


def frame(payload: bytes, uuid: str = HEART_RATE_MEASUREMENT_UUID) -> Frame:
    return Frame(STRAP, uuid, payload, host_time_ns=0, host_monotonic_ns=0)


# ---------------------------------------------------------------------- spec vectors


def test_vector_u8_rate_contact_two_rr() -> None:
    m = decode_heart_rate_measurement(bytes.fromhex("16 48 37 04 07 03"))
    assert m.heart_rate_bpm == 72
    assert m.contact_supported
    assert m.contact_detected
    assert m.energy_expended_kj is None
    assert m.rr_ticks == (0x0437, 0x0307)
    assert m.rr_intervals_s == (1079 / 1024, 775 / 1024)
    assert [round(s, 3) for s in m.rr_intervals_s] == [1.054, 0.757]
    assert round(m.rr_intervals_s[0], 4) == 1.0537
    assert round(m.rr_intervals_s[1], 4) == 0.7568


def test_vector_u16_rate_energy_one_rr() -> None:
    m = decode_heart_rate_measurement(bytes.fromhex("19 48 01 2C 01 00 04"))
    assert m.heart_rate_bpm == 328
    assert m.energy_expended_kj == 300
    assert m.rr_intervals_s == (1.0,)
    assert not m.contact_supported
    assert m.hr_u16


def test_encoder_reproduces_the_spec_vectors() -> None:
    assert encode_heart_rate_measurement(
        72, contact_detected=True, rr_ticks=[0x0437, 0x0307]
    ) == bytes.fromhex("16 48 37 04 07 03")
    assert encode_heart_rate_measurement(
        328, energy_expended_kj=300, rr_intervals_s=[1.0]
    ) == bytes.fromhex("19 48 01 2C 01 00 04")


@pytest.mark.parametrize(
    ("hex_payload", "offset", "field"),
    [
        ("", 0, "flags"),
        ("00", 1, "heart_rate"),
        ("01 48", 1, "heart_rate"),  # u16 rate cut short
        ("08 48 2c", 2, "energy_expended"),
        ("10 48 37 04 07", 4, "rr_interval"),  # odd RR tail
        ("00 48 00", 2, "trailing"),  # bytes without the RR flag
    ],
)
def test_malformed_measurements_raise_decode_error_with_offset_and_field(
    hex_payload: str, offset: int, field: str
) -> None:
    with pytest.raises(DecodeError) as err:
        decode_heart_rate_measurement(bytes.fromhex(hex_payload))
    assert (err.value.offset, err.value.field) == (offset, field)
    assert f"byte {offset}" in str(err.value)


def test_reserved_flag_bits_are_ignored_and_rr_flag_may_carry_none() -> None:
    m = decode_heart_rate_measurement(bytes([0xE0 | 0x10, 60]))
    assert (m.heart_rate_bpm, m.rr_ticks) == (60, ())


def test_encoder_rejects_values_that_do_not_fit() -> None:
    with pytest.raises(DecodeError, match="heart rate 70000"):
        encode_heart_rate_measurement(70000)
    with pytest.raises(DecodeError, match="RR interval"):
        encode_heart_rate_measurement(60, rr_intervals_s=[70.0])
    with pytest.raises(DecodeError, match="RR interval"):
        encode_heart_rate_measurement(60, rr_intervals_s=[float("nan")])
    with pytest.raises(DecodeError, match="energy"):
        encode_heart_rate_measurement(60, energy_expended_kj=-1)


def test_battery_location_and_dis_helpers() -> None:
    assert decode_battery_level(b"\x57") == 87
    for bad in (b"", b"\x01\x02", b"\x65"):
        with pytest.raises(DecodeError, match="battery level"):
            decode_battery_level(bad)
    assert decode_body_sensor_location(b"\x01") == "chest"
    with pytest.raises(DecodeError, match="reserved"):
        decode_body_sensor_location(b"\x07")
    assert decode_dis_string(b"H10\x00\x00") == "H10"
    with pytest.raises(DecodeError) as err:
        decode_dis_string(b"ok\xff", field="model")
    assert (err.value.offset, err.value.field) == (2, "model")
    assert set(DEVICE_INFORMATION_UUIDS) == {
        "manufacturer", "model", "serial", "hardware", "firmware", "software",
    }


# ---------------------------------------------------------------------- fuzzing


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_only_ever_raise_decode_error(payload: bytes) -> None:
    try:
        m = decode_heart_rate_measurement(payload)
    except DecodeError as exc:
        offset = exc.offset
        assert 0 <= offset <= len(payload)
        return
    assert 0 <= m.heart_rate_bpm <= 0xFFFF
    assert len(m.rr_ticks) <= len(payload) // 2
    blocks = HeartRateProtocol().decode(frame(payload))
    assert blocks[0].stream == "hr"


@settings(max_examples=200, deadline=None)
@given(
    hr=st.integers(0, 0xFFFF),
    contact=st.sampled_from([None, True, False]),
    energy=st.none() | st.integers(0, 0xFFFF),
    rr=st.lists(st.integers(0, 0xFFFF), max_size=9),
    u16=st.booleans(),
)
def test_encode_decode_round_trip(
    hr: int, contact: bool | None, energy: int | None, rr: list[int], u16: bool
) -> None:
    payload = encode_heart_rate_measurement(
        hr, contact_detected=contact, energy_expended_kj=energy, rr_ticks=rr, hr_u16=u16
    )
    m = decode_heart_rate_measurement(payload)
    assert m == HeartRateMeasurement(
        heart_rate_bpm=hr,
        contact_supported=contact is not None,
        contact_detected=bool(contact),
        energy_expended_kj=energy,
        rr_ticks=tuple(rr),
        hr_u16=u16 or hr > 255,
    )
    assert encode_heart_rate_measurement(
        m.heart_rate_bpm, contact_detected=contact, energy_expended_kj=m.energy_expended_kj,
        rr_ticks=m.rr_ticks, hr_u16=m.hr_u16,
    ) == payload


# ---------------------------------------------------------------------- protocol + registry


def test_protocol_decodes_frames_into_hr_rr_energy_and_battery_blocks() -> None:
    proto = HeartRateProtocol()
    blocks = proto.decode(frame(bytes.fromhex("1E 48 2C 01 37 04 07 03")))
    assert [(b.stream, b.unit, b.channels) for b in blocks] == [
        ("hr", "bpm", ("hr",)), ("rr", "s", ("rr",)), ("energy", "kJ", ("energy",)),
    ]
    assert blocks[0].values.tolist() == [[72.0]]
    assert blocks[0].values.dtype == np.float32
    assert blocks[0].flags & FLAG_CONTACT_DETECTED
    assert blocks[1].values.tolist() == [[1079 / 1024, 775 / 1024]]  # exact in float32
    assert blocks[2].values.tolist() == [[300.0]]
    assert all(b.fs_hz is None and b.device_address == STRAP for b in blocks)
    assert [b.stream for b in proto.decode(frame(b"\x00\x3c"))] == ["hr"]
    battery = proto.decode(frame(b"\x50", BATTERY_LEVEL_UUID))
    assert (battery[0].stream, battery[0].unit, battery[0].values.tolist()) == (
        "battery", "percent", [[80.0]],
    )
    with pytest.raises(DecodeError, match="characteristic"):
        proto.decode(frame(b"\x00\x3c", BODY_SENSOR_LOCATION_UUID))


def test_protocol_identity_and_commands() -> None:
    proto = HeartRateProtocol()
    assert proto.family == "heart-rate"
    assert proto.matches(None, ["180D"])
    assert proto.matches("strap", [HEART_RATE_SERVICE_UUID.upper()])
    assert not proto.matches("Polar H10", ["180f"])
    assert proto.data_uuids() == (HEART_RATE_MEASUREMENT_UUID,)
    assert proto.control_uuids() == ()
    assert proto.start_commands(0) == ()
    assert proto.stop_commands() == ()
    assert [(c.stream, c.unit) for c in proto.capabilities()] == [("hr", "bpm"), ("rr", "s")]


def test_registry_identifies_and_builds_protocols() -> None:
    assert "heart-rate" in registry.families()
    found = registry.identify("strap", ["0000180d-0000-1000-8000-00805f9b34fb"])
    assert isinstance(found, HeartRateProtocol)
    assert registry.identify("kettle", ["1234"]) is None
    assert isinstance(registry.protocol_for("heart-rate"), HeartRateProtocol)
    with pytest.raises(DeviceError, match=r"known families are: .*heart-rate"):
        registry.protocol_for("toaster")
    with pytest.raises(ConfigError, match="does not accept options"):
        registry.protocol_for("heart-rate", bogus=1)


def test_registry_registers_the_reference_band_when_its_module_exists() -> None:
    if not (ROOT / "src" / "crampsense" / "devices" / "reference_band.py").exists():
        pytest.skip("reference band module not written yet")
    module = importlib.import_module("crampsense.devices.reference_band")  # fails loudly if broken
    importlib.reload(registry)
    assert registry.FAMILIES.get("crampsense-band") is module.ReferenceBandProtocol
    assert registry.families()[0] == "crampsense-band", "the specific family is tried first"


def test_device_profile_agrees_with_the_protocol() -> None:
    profile = tomllib.loads((PROFILE_DIR / "heart-rate.toml").read_text())
    proto = HeartRateProtocol()
    assert profile["family"] == proto.family
    assert profile["data_uuids"] == list(proto.data_uuids())
    assert profile["match_service_uuids"] == [HEART_RATE_SERVICE_UUID]
    assert {s: v["unit"] for s, v in profile["streams"].items()} == {
        "hr": "bpm", "rr": "s", "energy": "kJ", "battery": "percent",
    }
    assert profile["streams"]["rr"]["scale"] == 1 / 1024
    assert profile["device_information"] == dict(DEVICE_INFORMATION_UUIDS)


# ---------------------------------------------------------------------- the strap via bleak


def test_sleeping_trace_stays_in_range_and_is_seeded() -> None:
    t = np.arange(0, 10 * 3600, 1.0)
    hr = sleeping_hr_bpm(t, seed=7)
    assert SLEEP_HR_MIN_BPM <= hr.min() < hr.max() <= SLEEP_HR_MAX_BPM
    assert hr.max() - hr.min() > 3.0  # it varies
    assert np.abs(np.diff(hr)).max() < 0.1  # slowly (bpm per second)
    np.testing.assert_array_equal(hr, sleeping_hr_bpm(t, seed=7))
    assert not np.array_equal(hr, sleeping_hr_bpm(t, seed=8))


def _contiguous_in(part: list[int], whole: list[int]) -> bool:
    n = len(part)
    return any(whole[i : i + n] == part for i in range(len(whole) - n + 1))


def test_strap_round_trip_through_bleak_decodes_the_true_beats() -> None:
    strap = HeartRateStrap(STRAP, "strap-1", seed=11)
    world = SimulatedWorld(FakeClock(T0), [strap], client_mtu=23)
    proto = HeartRateProtocol()
    frames: list[Frame] = []

    def on_hr(char: BleakGATTCharacteristic, data: bytearray) -> None:
        frames.append(
            Frame(STRAP, char.uuid, bytes(data), world.clock.now_ns(), world.clock.monotonic_ns())
        )

    async def body() -> dict[str, str]:
        pump = asyncio.create_task(world.run())
        dev = await BleakScanner.find_device_by_address(STRAP, 2.0, backend=world.scanner_backend)
        assert dev is not None
        found = registry.identify(dev.name, [HEART_RATE_SERVICE_UUID])
        assert isinstance(found, HeartRateProtocol)
        async with BleakClient(dev, backend=world.client_backend) as client:
            info = {
                k: decode_dis_string(await client.read_gatt_char(u), field=k)
                for k, u in DEVICE_INFORMATION_UUIDS.items()
                if client.services.get_characteristic(u) is not None
            }
            assert decode_body_sensor_location(
                await client.read_gatt_char(BODY_SENSOR_LOCATION_UUID)
            ) == "chest"
            assert decode_battery_level(await client.read_gatt_char(BATTERY_LEVEL_UUID)) == 100
            await client.start_notify(HEART_RATE_MEASUREMENT_UUID, on_hr)
            await world.wait_s(600.0)
        world.stop()
        await pump
        return info

    info = asyncio.run(body())
    assert info["firmware"] == "1.4.2"
    assert info["serial"] == "HR0000000001"
    assert len(frames) == pytest.approx(600, abs=2)
    assert max(len(f.payload) for f in frames) <= 20  # MTU 23
    blocks = [b for f in frames for b in proto.decode(f)]
    hr = np.concatenate([b.values[0] for b in blocks if b.stream == "hr"])
    assert SLEEP_HR_MIN_BPM <= hr.min() <= hr.max() <= SLEEP_HR_MAX_BPM
    rr_ticks = [
        round(float(v) * 1024) for b in blocks if b.stream == "rr" for v in b.values[0]
    ]
    true_ticks = [round(float(d) * 1024) for d in np.diff([0.0, *strap.beats_s])]  # beat at 0
    assert len(rr_ticks) > 500
    assert _contiguous_in(rr_ticks, true_ticks), "decoded RR must be the strap's beats, in order"
    energy = [b.values[0, 0] for b in blocks if b.stream == "energy"]
    assert len(energy) == pytest.approx(60, abs=1)
    assert energy == sorted(energy)


def test_strap_contact_battery_drain_and_control_point() -> None:
    strap = HeartRateStrap(STRAP, "strap-1", battery_percent=50.0, battery_drain_percent_per_h=2.0)
    world = SimulatedWorld(FakeClock(T0), [strap], tick_s=1.0)
    hr_payloads: list[bytes] = []
    battery: list[int] = []

    async def body() -> None:
        pump = asyncio.create_task(world.run())
        async with BleakClient(STRAP, backend=world.client_backend) as client:
            await client.start_notify(
                HEART_RATE_MEASUREMENT_UUID, lambda c, d: hr_payloads.append(bytes(d))
            )
            await client.start_notify(
                BATTERY_LEVEL_UUID, lambda c, d: battery.append(decode_battery_level(d))
            )
            world.schedule(30.0, lambda: setattr(strap, "contact", False))
            await world.wait_s(2 * 3600.0)
            await client.write_gatt_char(HEART_RATE_CONTROL_POINT_UUID, b"\x01", response=True)
            with pytest.raises(BleakGATTProtocolError) as err:
                await client.write_gatt_char(
                    HEART_RATE_CONTROL_POINT_UUID, b"\x02", response=True
                )
            assert err.value.code == 0x80
        world.stop()
        await pump

    asyncio.run(body())
    decoded = [decode_heart_rate_measurement(p) for p in hr_payloads]
    assert decoded[0].contact_detected
    assert decoded[0].heart_rate_bpm > 0
    late = decoded[60:]
    assert all(m.contact_supported and not m.contact_detected for m in late)
    assert all(m.heart_rate_bpm == 0 and m.rr_ticks == () for m in late)
    assert battery == [49, 48, 47, 46]  # 2 %/h over 2 h, one notification per whole percent
    assert strap.finished() is False


def test_finite_strap_finishes_and_the_world_stops_by_itself() -> None:
    strap = HeartRateStrap(STRAP, duration_s=120.0)
    world = SimulatedWorld(FakeClock(T0), [strap], tick_s=0.5)

    async def body() -> None:
        async with BleakClient(STRAP, backend=world.client_backend) as client:
            await client.start_notify(HEART_RATE_MEASUREMENT_UUID, lambda c, d: None)
            await asyncio.wait_for(world.run(), 5.0)

    asyncio.run(body())
    assert strap.finished()
    assert world.stopped
    assert world.clock.monotonic_ns() == pytest.approx(120e9, abs=1e9)
