"""Batch replay equals per-frame replay, bit for bit.

The fast replay path reads column batches (``SessionReader.frame_batches``), decodes them with
the families' vectorised ``decode_batch`` and feeds ``TimelineBuilder.add_many``; the reference
path reads ``Frame`` objects and calls ``decode`` and ``add`` once per frame. Every test here
compares the two: on a night recorded through bleak from the simulators (a dropped link, a
smaller MTU after the reconnect, lead-off), on the same night with garbage, duplicated,
reordered and foreign frames spliced in, and on generated packets (Hypothesis).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import struct
from collections.abc import Sequence
from pathlib import Path
from unittest import mock

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crampsense.clock import FakeClock, datetime_from_ns
from crampsense.devices import heart_rate as hr_module
from crampsense.devices import reference_band as rb
from crampsense.devices.base import DeviceProtocol, PacketBatch
from crampsense.devices.gatt import BATTERY_LEVEL_UUID, HEART_RATE_MEASUREMENT_UUID
from crampsense.devices.heart_rate import HeartRateProtocol
from crampsense.devices.timeline import StreamTimeline, TimelineBuilder
from crampsense.errors import CorruptFileError, DecodeError
from crampsense.models import DeviceInfo, Frame, SampleBlock
from crampsense.pipeline import replay as session_replay
from crampsense.pipeline.replay import decode_session
from crampsense.storage.session_log import SessionReader, SessionWriter
from crampsense.transport.ble import BleTransport
from crampsense.transport.ingest import IngestSession, ReconnectPolicy
from firmware_sims import reference_band as band_fw
from firmware_sims.bedroom import BAND_LEFT, HR_STRAP, bedroom
from firmware_sims.heart_rate import encode_heart_rate_measurement
from firmware_sims.night import NightSpec, generate_night

EMG_FS_HZ = 500
NIGHT_S = 600.0
DROP_AT_S = 200.0
#: After the reconnect the band gets a smaller MTU, so its packets change length mid-night.
SMALL_MTU = 100

Decoded = tuple[dict[tuple[str, str], StreamTimeline], int, int, list[str]]

_BAND = DeviceInfo(address=BAND_LEFT, name="band", family="crampsense-band",
                   placement="left-calf")
_STRAP = DeviceInfo(address=HR_STRAP, name="strap", family="heart-rate", placement="chest")


# --------------------------------------------------------------------------- helpers


async def _record(path: Path) -> None:
    """Record the left band and the HR strap for NIGHT_S simulated seconds, through bleak."""
    spec = NightSpec(seed=5, duration_s=NIGHT_S, emg_fs_hz=EMG_FS_HZ, n_cramps=1,
                     lookalikes=("lead_off", "roll_over"))
    world = bedroom(generate_night(spec), include=lambda a: a in (BAND_LEFT, HR_STRAP))

    def drop() -> None:
        world.set_mtu_limit(BAND_LEFT, SMALL_MTU)
        world.drop_link(BAND_LEFT)

    world.schedule(DROP_AT_S, drop)
    clock = world.central_clock
    transport = BleTransport(scanner_backend=world.scanner_backend,
                             client_backend=world.client_backend)
    stop = asyncio.Event()
    world.schedule(NIGHT_S, lambda: (stop.set(), world.stop()))
    band = rb.ReferenceBandProtocol(emg_fs_hz=EMG_FS_HZ)
    strap = HeartRateProtocol()
    with SessionWriter(path, clock=clock, metadata={"start_ns": str(clock.now_ns())}) as w:
        sessions = []
        for device, protocol in ((_BAND, band), (_STRAP, strap)):
            w.add_device(device, protocol.metadata())
            sessions.append(IngestSession(transport, protocol, w, device, clock=clock,
                                          policy=ReconnectPolicy(scan_timeout_s=1.0)))
        tasks = [asyncio.create_task(s.run(stop)) for s in sessions]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(s.connected.wait() for s in sessions)), 2.0)
        pump = asyncio.create_task(world.run())
        await asyncio.gather(*tasks)
        world.stop()
        await pump


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("replay") / "night.session"
    asyncio.run(_record(path))
    return path


def _decode(path: Path, *, batch: bool, progress: list[tuple[int, int]] | None = None) -> Decoded:
    def record(done: int, total: int) -> None:
        assert progress is not None
        progress.append((done, total))

    with SessionReader(path) as reader:
        return decode_session(reader, batch=batch,
                              progress=record if progress is not None else None)


def _assert_same_timeline(a: StreamTimeline, b: StreamTimeline) -> None:
    for f in dataclasses.fields(StreamTimeline):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype, f.name
            assert x.shape == y.shape, f.name
            assert x.tobytes() == y.tobytes(), f.name  # bit for bit, NaN and -0.0 included
        else:
            assert x == y, f.name


def _assert_same(a: Decoded, b: Decoded) -> None:
    (tl_a, n_a, bad_a, err_a), (tl_b, n_b, bad_b, err_b) = a, b
    assert (n_a, bad_a, err_a) == (n_b, bad_b, err_b)
    assert list(tl_a) == list(tl_b)  # same streams, created in the same order
    for key in tl_a:
        _assert_same_timeline(tl_a[key], tl_b[key])


def _copy_session(src: Path, dst: Path, frames: Sequence[Frame]) -> None:
    """A session with ``src``'s devices and metadata but the given frames."""
    with SessionReader(src) as reader:
        meta = {k: v for k, v in reader.metadata.items()
                if k not in ("format_version", "created_host_time_ns", "created_utc")}
        devices = [(d, reader.device_metadata(d.address)) for d in reader.devices]
    clock = FakeClock(datetime_from_ns(frames[0].host_time_ns))
    with SessionWriter(dst, clock=clock, commit_interval_s=3600.0, metadata=meta) as w:
        for device, proto in devices:
            w.add_device(device, proto)
        for frame in frames:
            w.append(frame)


# --------------------------------------------------------------------------- recorded nights


def test_batch_replay_equals_per_frame_on_a_recorded_night(
    night: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(session_replay, "PROGRESS_EVERY_FRAMES", 1000)
    calls_frame: list[tuple[int, int]] = []
    calls_batch: list[tuple[int, int]] = []
    per_frame = _decode(night, batch=False, progress=calls_frame)
    batch = _decode(night, batch=True, progress=calls_batch)
    _assert_same(batch, per_frame)
    assert calls_batch == calls_frame
    assert calls_batch[-1] == (batch[1], batch[1])

    timelines, _, bad, _ = batch
    assert bad == 0
    emg = timelines[(BAND_LEFT, "emg")]
    assert len(emg.gaps) == 1  # the dropped link
    assert emg.segments == 2
    assert emg.valid.mean() > 0.5
    # lead-off flagged: some received samples are invalid
    received = np.ones(emg.n_samples, dtype=np.bool_)
    for a, b in emg.gaps:
        received[a:b] = False
    assert not emg.valid[received].all()
    assert set(timelines) == {(BAND_LEFT, "emg"), (BAND_LEFT, "acc")}  # hr/status: no grid
    with SessionReader(night) as reader:
        lengths = {len(f.payload) for f in reader.frames()
                   if f.characteristic_uuid == rb.EMG_UUID}
        hr_frames = sum(1 for f in reader.frames() if f.device_address == HR_STRAP)
    assert len(lengths) == 2  # the smaller MTU after the reconnect
    assert hr_frames > 100


def test_analysis_is_the_same_through_either_path(
    night: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = session_replay.analyze_session(night)
    reference = session_replay.decode_session

    def per_frame(reader: SessionReader, *, progress: object = None) -> Decoded:
        del progress
        return reference(reader, batch=False)

    monkeypatch.setattr(session_replay, "decode_session", per_frame)
    slow = session_replay.analyze_session(night)
    assert fast.night == slow.night
    assert (fast.frames, fast.undecodable_frames) == (slow.frames, slow.undecodable_frames)


def _garbage(frames: list[Frame]) -> list[Frame]:
    """The recorded frames with malformed, duplicated, reordered and foreign frames spliced in.

    Returns them in the order they are to be stored.
    """
    emg = [i for i, f in enumerate(frames) if f.characteristic_uuid == rb.EMG_UUID]
    good = frames[emg[100]]
    p = good.payload

    def like(payload: bytes, uuid: str = rb.EMG_UUID, address: str = BAND_LEFT) -> Frame:
        return dataclasses.replace(good, payload=payload, characteristic_uuid=uuid,
                                   device_address=address)

    status = band_fw.encode_status_packet(3, 1000, 0, 80, 31.0)
    bad = [
        like(b""),
        like(p[:5]),  # shorter than the header
        like(p[:-2]),  # truncated samples
        like(p + b"\x00\x00"),  # trailing bytes
        like(bytes([0x21]) + p[1:]),  # protocol version 2
        like(bytes([0x12]) + p[1:]),  # an acc packet on the emg characteristic
        like(bytes([0x1F]) + p[1:]),  # unknown stream id
        like(p[:8] + b"\x00" + p[9:]),  # zero samples announced
        like(p[:8] + bytes([p[8] + 1]) + p[9:]),  # one sample too many announced
        like(status[:9] + b"\xc8" + status[10:], rb.STATUS_UUID),  # battery 200 %
        like(status + b"\x00", rb.STATUS_UUID),  # status of 13 bytes
        like(p, "0000abcd-0000-1000-8000-00805f9b34fb"),  # not a band characteristic
        like(b"\x00", HEART_RATE_MEASUREMENT_UUID, HR_STRAP),  # rate missing
        like(b"\x10\x48\x01", HEART_RATE_MEASUREMENT_UUID, HR_STRAP),  # odd RR tail
        like(b"\x00\x48\x01", HEART_RATE_MEASUREMENT_UUID, HR_STRAP),  # trailing byte
        like(b"\x65", BATTERY_LEVEL_UUID, HR_STRAP),  # battery 101 %
    ]
    out = list(frames)
    # a run of 12 broken packets of one length, so that the batch path sees a whole group
    # of them (rejected together, then each rejected again by decode)
    run = [like(bytes([0x21]) + p[1:]) for _ in range(12)]
    out[emg[3000] : emg[3000]] = run
    for k, frame in enumerate(bad):
        at = emg[200 + 37 * k]
        out.insert(at, frame)
    # duplicates (first arrival wins) and two packets swapped (reorder)
    out.insert(emg[4000], frames[emg[3990]])
    a, b = emg[5000], emg[5001]
    out[a], out[b] = out[b], out[a]
    # a device that is not in the session, and a control indication
    out.insert(emg[600], dataclasses.replace(good, device_address="AA:AA:AA:AA:AA:AA"))
    out.insert(emg[700], like(bytes([1, 0x81, 0]), rb.CONTROL_UUID))
    return out


def test_malformed_frames_are_counted_and_reported_like_per_frame(
    night: Path, tmp_path: Path
) -> None:
    with SessionReader(night) as reader:
        frames = list(reader.frames())
    spliced = _garbage(frames)
    path = tmp_path / "garbage.session"
    _copy_session(night, path, spliced)
    per_frame = _decode(path, batch=False)
    batch = _decode(path, batch=True)
    _assert_same(batch, per_frame)
    _, n, bad, errors = batch
    assert n == len(spliced)
    assert bad == 16 + 12 + 1  # the broken frames, the run, the unknown device
    assert len(errors) == 5
    assert errors[0].startswith("frame ")
    emg = batch[0][(BAND_LEFT, "emg")]
    assert emg.duplicate_packets == 1


def test_every_error_message_matches_with_small_batches(
    night: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # errors straddle batch boundaries: their order and numbering must not change
    with SessionReader(night) as reader:
        frames = list(reader.frames())
    spliced = _garbage(frames)
    path = tmp_path / "garbage.session"
    _copy_session(night, path, spliced)
    monkeypatch.setattr(session_replay, "MAX_REPORTED_ERRORS", 100)
    monkeypatch.setattr(session_replay, "DECODE_CHUNK_FRAMES", 997)
    batch = _decode(path, batch=True)
    per_frame = _decode(path, batch=False)
    _assert_same(batch, per_frame)
    assert len(batch[3]) == batch[2] - 1  # every decode error (the unknown device has none)
    # the interleaved pass (damaged or salvaged files) numbers and orders them the same way
    with SessionReader(path) as reader:
        interleaved = session_replay._decode_interleaved(reader, reader.frame_count(), None)
    _assert_same(interleaved, per_frame)


# --------------------------------------------------------------------------- frame batches


@pytest.mark.parametrize("batch_size", [1, 7, 20_000])
def test_frame_batches_hold_the_frames_in_order(night: Path, batch_size: int) -> None:
    with SessionReader(night) as reader:
        frames = list(reader.frames())
        batches = list(reader.frame_batches(batch_size=batch_size))
        only_strap = [b.frame(i) for b in reader.frame_batches(device_address=HR_STRAP)
                      for i in range(len(b))]
        assert list(reader.frame_batches(device_address="00:00:00:00:00:00")) == []
        strap = list(reader.frames(device_address=HR_STRAP))
    assert all(len(b) <= batch_size for b in batches)
    assert [b.start for b in batches] == list(
        np.cumsum([0] + [len(b) for b in batches[:-1]])
    )
    assert [b.frame(i) for b in batches for i in range(len(b))] == frames
    assert only_strap == strap


def test_frame_batches_read_the_same_intact_prefix_of_a_cut_file(
    night: Path, tmp_path: Path
) -> None:
    data = night.read_bytes()
    path = tmp_path / "cut.session"
    path.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(CorruptFileError):
        SessionReader(path)
    with SessionReader(path, salvage=True) as reader:
        frames = list(reader.frames())
        batched = [b.frame(i) for b in reader.frame_batches(batch_size=500)
                   for i in range(len(b))]
        assert reader.recovered_frames == len(frames)
        decoded = decode_session(reader)
        reference = decode_session(reader, batch=False)
    assert len(frames) > 1000
    assert batched == frames
    _assert_same(decoded, reference)


# --------------------------------------------------------------------------- decode_batch


def _assert_batches_match_decode(
    protocol: DeviceProtocol, uuid: str, payloads: list[bytes]
) -> list[PacketBatch]:
    """Every packet a batch covers is exactly what decode gives; decode rejects none of them."""
    host = np.arange(len(payloads), dtype=np.int64)
    batches = protocol.decode_batch(uuid, payloads, host)
    assert batches is not None
    for b in batches:
        assert np.all(np.diff(b.index) > 0)
        starts = np.concatenate(([0], np.cumsum(b.n_samples)))
        assert b.values.shape == (len(b.channels), starts[-1])
        for j, i in enumerate(b.index.tolist()):
            frame = Frame(BAND_LEFT, uuid, payloads[i], int(host[i]), int(host[i]))
            blocks = [x for x in protocol.decode(frame) if x.stream == b.stream]
            assert len(blocks) == 1
            block = blocks[0]
            assert (block.channels, block.unit, block.fs_hz) == (b.channels, b.unit, b.fs_hz)
            assert block.sequence == (None if b.sequence[j] < 0 else b.sequence[j])
            assert block.device_ticks == (None if b.device_ticks[j] < 0 else b.device_ticks[j])
            assert block.flags == b.flags[j]
            got = b.values[:, starts[j] : starts[j + 1]]
            assert got.dtype == block.values.dtype
            assert np.ascontiguousarray(got).tobytes() == np.ascontiguousarray(
                block.values).tobytes()
    return batches


def _band_packet(draw: st.DrawFn, stream: rb.StreamId, n: int) -> bytes:
    n_ch = len(rb._CHANNELS_BY_STREAM[stream])
    counts = np.array(
        draw(st.lists(st.integers(-32768, 32767), min_size=n * n_ch, max_size=n * n_ch)),
        dtype=np.int16,
    ).reshape(n_ch, n)
    return band_fw.encode_data_packet(stream, draw(st.integers(0, 65535)),
                                 draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 255)),
                                 counts)


def _mutate(draw: st.DrawFn, payload: bytes) -> bytes:
    kind = draw(st.sampled_from(["byte", "cut", "extend", "count"]))
    if kind == "byte" and payload:
        at = draw(st.integers(0, len(payload) - 1))
        return payload[:at] + bytes([draw(st.integers(0, 255))]) + payload[at + 1 :]
    if kind == "cut":
        return payload[: draw(st.integers(0, max(len(payload) - 1, 0)))]
    if kind == "count" and len(payload) > 8:
        return payload[:8] + bytes([draw(st.integers(0, 255))]) + payload[9:]
    return payload + draw(st.binary(min_size=1, max_size=7))


@st.composite
def _band_payloads(draw: st.DrawFn) -> tuple[rb.StreamId, list[bytes]]:
    stream = draw(st.sampled_from([rb.StreamId.EMG, rb.StreamId.ACC, rb.StreamId.STATUS]))
    sizes = draw(st.lists(st.integers(1, 6), min_size=1, max_size=3))
    payloads: list[bytes] = []
    for _ in range(draw(st.integers(0, 40))):
        if stream is rb.StreamId.STATUS:
            p = band_fw.encode_status_packet(draw(st.integers(0, 65535)),
                                        draw(st.integers(0, 2**32 - 1)),
                                        draw(st.integers(0, 255)), draw(st.integers(0, 100)),
                                        draw(st.floats(-300.0, 300.0)))
            if draw(st.booleans()):  # battery beyond 100 % is rejected by decode
                p = p[:9] + bytes([draw(st.integers(0, 255))]) + p[10:]
        else:
            p = _band_packet(draw, stream, draw(st.sampled_from(sizes)))
        if draw(st.integers(0, 9)) == 0:
            p = _mutate(draw, p)
        if draw(st.integers(0, 19)) == 0:
            p = draw(st.binary(max_size=40))
        payloads.append(p)
    return stream, payloads


_UUID_OF = {rb.StreamId.EMG: rb.EMG_UUID, rb.StreamId.ACC: rb.IMU_UUID,
            rb.StreamId.STATUS: rb.STATUS_UUID}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_band_payloads(), st.sampled_from([1, rb._MIN_BATCH_PACKETS]))
def test_band_decode_batch_is_decode_for_mixed_lengths(
    case: tuple[rb.StreamId, list[bytes]], min_group: int
) -> None:
    stream, payloads = case
    protocol = rb.ReferenceBandProtocol(emg_fs_hz=EMG_FS_HZ, imu_fs_hz=50)
    # with groups of one allowed, every malformed packet meets the vectorised checks
    with mock.patch.object(rb, "_MIN_BATCH_PACKETS", min_group):
        batches = _assert_batches_match_decode(protocol, _UUID_OF[stream], payloads)
    covered = {int(i) for b in batches for i in b.index}
    # the fast path is used: a valid packet is left out only in a length shared by too few
    lengths = [len(p) for p in payloads]
    for i, p in enumerate(payloads):
        frame = Frame(BAND_LEFT, _UUID_OF[stream], p, 0, 0)
        try:
            protocol.decode(frame)
        except DecodeError:
            assert i not in covered
            continue
        assert i in covered or lengths.count(len(p)) < min_group


def test_band_decode_batch_leaves_control_and_foreign_characteristics_to_decode() -> None:
    protocol = rb.ReferenceBandProtocol()
    host = np.zeros(1, dtype=np.int64)
    assert protocol.decode_batch(rb.CONTROL_UUID, [b"\x01\x81\x00"], host) is None
    assert protocol.decode_batch("0000abcd-0000-1000-8000-00805f9b34fb", [b""], host) is None
    assert protocol.decode_batch(rb.EMG_UUID.upper(), [], host[:0]) == []


@st.composite
def _hr_payloads(draw: st.DrawFn) -> list[bytes]:
    layouts = draw(st.lists(
        st.tuples(st.booleans(), st.sampled_from([None, False, True]), st.booleans(),
                  st.integers(0, 3)),
        min_size=1, max_size=3,
    ))
    payloads: list[bytes] = []
    for _ in range(draw(st.integers(0, 40))):
        u16, contact, energy, n_rr = draw(st.sampled_from(layouts))
        p = encode_heart_rate_measurement(
            draw(st.integers(0, 65535 if u16 else 255)),
            contact_detected=contact,
            energy_expended_kj=draw(st.integers(0, 65535)) if energy else None,
            rr_ticks=draw(st.lists(st.integers(0, 65535), min_size=n_rr, max_size=n_rr)),
            hr_u16=u16,
        )
        if draw(st.integers(0, 9)) == 0:
            p = _mutate(draw, p)
        if p and draw(st.integers(0, 9)) == 0:  # reserved flag bits, or RR flag with no RR
            p = bytes([p[0] | draw(st.sampled_from([0x20, 0x40, 0x80, 0x10, 0x02]))]) + p[1:]
        payloads.append(p)
    return payloads


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_hr_payloads(), st.sampled_from([1, hr_module._MIN_BATCH_PACKETS]))
def test_heart_rate_decode_batch_is_decode(payloads: list[bytes], min_group: int) -> None:
    protocol = HeartRateProtocol()
    with mock.patch.object(hr_module, "_MIN_BATCH_PACKETS", min_group):
        batches = _assert_batches_match_decode(protocol, HEART_RATE_MEASUREMENT_UUID, payloads)
    covered = {int(i) for b in batches for i in b.index}
    for i, p in enumerate(payloads):
        frame = Frame(HR_STRAP, HEART_RATE_MEASUREMENT_UUID, p, 0, 0)
        try:
            protocol.decode(frame)
        except DecodeError:
            assert i not in covered
            continue
        if min_group == 1:
            assert i in covered


def test_heart_rate_battery_and_default_families_decode_per_frame() -> None:
    host = np.zeros(1, dtype=np.int64)
    assert HeartRateProtocol().decode_batch(BATTERY_LEVEL_UUID, [b"\x50"], host) is None
    assert HeartRateProtocol().decode_batch("2a37", [], host[:0]) == []

    # the base class's default: "decode each frame"
    assert DeviceProtocol.decode_batch(HeartRateProtocol(), "2a37", [b"\x00\x48"], host) is None


# --------------------------------------------------------------------------- add_many


@st.composite
def _stream(draw: st.DrawFn) -> list[tuple[int, int, int, int, int]]:
    """Packets as (sequence, ticks, n_samples, flags, host_ns) with loss, dups and reorder."""
    spp = draw(st.integers(1, 5))
    period_us = 1_000_000 // 100
    seq0 = draw(st.integers(0, 65535))
    tick0 = draw(st.integers(0, 2**32 - 1))
    out = []
    for k in range(draw(st.integers(0, 120))):
        n = spp if draw(st.integers(0, 9)) else draw(st.integers(0, 6))
        out.append((
            (seq0 + k) % 65536,
            (tick0 + k * spp * period_us) % 2**32,
            n,
            draw(st.sampled_from([0, 0, 0, 1, 4])),
            1_700_000_000_000_000_000 + k * spp * period_us * 1000 + draw(st.integers(0, 10**7)),
        ))
    for _ in range(draw(st.integers(0, 5))):
        if len(out) > 2:
            op = draw(st.sampled_from(["drop", "dup", "swap"]))
            i = draw(st.integers(0, len(out) - 2))
            if op == "drop":
                del out[i]
            elif op == "dup":
                out.insert(draw(st.integers(i, len(out))), out[i])
            else:
                out[i], out[i + 1] = out[i + 1], out[i]
    return out


def _builder() -> TimelineBuilder:
    return TimelineBuilder("emg", 100.0, 1e6, 65536, 2**32, lead_off_mask=0x1)


@settings(max_examples=100, deadline=None)
@given(_stream(), st.data())
def test_add_many_builds_the_timeline_add_builds(
    packets: list[tuple[int, int, int, int, int]], data: st.DataObject
) -> None:
    rng = np.random.default_rng(len(packets))
    values = [rng.normal(size=(2, n)).astype(np.float32) for _, _, n, _, _ in packets]
    one_by_one = _builder()
    for (seq, ticks, _n, flags, host), v in zip(packets, values, strict=True):
        one_by_one.add(SampleBlock(BAND_LEFT, "emg", ("gm", "gl"), "uV", 100.0, v,
                                      device_ticks=ticks, sequence=seq, flags=flags), host)
    # the same packets in random chunks, some through add and some through add_many
    mixed = _builder()
    cuts = sorted(data.draw(st.lists(st.integers(0, len(packets)), max_size=6)))
    for a, b in zip([0, *cuts], [*cuts, len(packets)], strict=True):
        chunk = packets[a:b]
        if data.draw(st.booleans()) or not chunk:
            cols: list[npt.NDArray[np.int64]] = [
                np.array([p[j] for p in chunk], dtype=np.int64) for j in range(5)
            ]
            mixed.add_many(
                stream="emg", channels=("gm", "gl"), unit="uV",
                values=np.concatenate([np.zeros((2, 0), np.float32), *values[a:b]], axis=1),
                n_samples=cols[2], sequence=cols[0], device_ticks=cols[1], flags=cols[3],
                host_time_ns=cols[4],
            )
        else:
            for (seq, ticks, _n, flags, host), v in zip(chunk, values[a:b], strict=True):
                mixed.add(SampleBlock(BAND_LEFT, "emg", ("gm", "gl"), "uV", 100.0, v,
                                         device_ticks=ticks, sequence=seq, flags=flags), host)
    assert len(mixed) == len(one_by_one)
    _assert_same_timeline(mixed.build(), one_by_one.build())


def test_add_many_without_sequence_or_ticks_is_add_without_them() -> None:
    host = 1_700_000_000_000_000_000 + np.arange(50, dtype=np.int64) * 40_000_000
    values = np.arange(2 * 200, dtype=np.float32).reshape(2, 200)
    bulk = _builder()
    bulk.add_many(stream="emg", channels=("gm", "gl"), unit="uV", values=values,
                  n_samples=np.full(50, 4), sequence=None, device_ticks=None,
                  flags=np.zeros(50), host_time_ns=host)
    single = _builder()
    for k in range(50):
        single.add(SampleBlock(BAND_LEFT, "emg", ("gm", "gl"), "uV", 100.0,
                                  values[:, 4 * k : 4 * k + 4]), int(host[k]))
    _assert_same_timeline(bulk.build(), single.build())


def test_add_many_rejects_what_add_rejects() -> None:
    b = _builder()
    ok = {"channels": ("gm", "gl"), "unit": "uV", "values": np.zeros((2, 4), np.float32),
          "n_samples": [2, 2], "sequence": [0, 1], "device_ticks": [0, 20_000],
          "flags": [0, 0], "host_time_ns": [0, 20_000_000]}
    with pytest.raises(DecodeError, match="'acc' packets given to the 'emg' timeline"):
        b.add_many(stream="acc", **ok)
    with pytest.raises(DecodeError, match="does not match the 4 value columns"):
        b.add_many(stream="emg", **{**ok, "n_samples": [2, 3]})
    with pytest.raises(DecodeError, match="flags has 1 entries for 2 packets"):
        b.add_many(stream="emg", **{**ok, "flags": [0]})
    with pytest.raises(DecodeError, match="expected \\(n_channels, n\\)"):
        b.add_many(stream="emg", **{**ok, "values": np.zeros(4, np.float32)})
    b.add_many(stream="emg", **ok)
    with pytest.raises(DecodeError, match="differ from the stream's"):
        b.add_many(stream="emg", **{**ok, "channels": ("x", "y")})
    assert len(b) == 2


def test_status_batch_lead_off_columns_follow_the_flags() -> None:
    packets = [band_fw.encode_status_packet(k, 1000 * k, flags, 50, 30.0)
               for k, flags in enumerate([0, 1, 2, 3] * 4)]
    batches = _assert_batches_match_decode(rb.ReferenceBandProtocol(), rb.STATUS_UUID, packets)
    (status,) = batches
    assert status.values[2].tolist() == [0.0, 1.0, 0.0, 1.0] * 4
    assert status.values[3].tolist() == [0.0, 0.0, 1.0, 1.0] * 4
    assert struct.unpack_from("<H", packets[5], 1)[0] == status.sequence[5] == 5
