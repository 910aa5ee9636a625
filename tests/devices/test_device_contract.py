"""One contract every device family passes (cases in ``tests/devices/families.py``).

For every family whose modules import, and every stream it must deliver:

- identity: registered, recognised from its simulator's advertisement, capabilities with the
  canonical unit per stream, metadata that rebuilds the protocol, a device profile that
  agrees with the protocol;
- round trip: packets from the family's own encoder decode to the encoded values (within one
  LSB), in the stream's unit, channels and rate; ``decode_batch`` equals ``decode`` bit for bit;
- continuity: consecutive packets give one timeline without loss or gaps (sequence numbers
  and device clocks unwrapped); dropped packets are counted and their samples marked missing;
- the simulator: a known signal streamed through the firmware simulator decodes to what the
  simulator was given, with per-sample times within 0.1 s, and a radio gap shows as a gap;
- malformed packets raise ``DecodeError`` with the offset and field, and a cut packet never
  passes as a whole one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from crampsense.devices import registry
from crampsense.devices.base import DeviceProtocol
from crampsense.errors import ConfigError, DecodeError
from crampsense.models import Frame, SampleBlock
from devices.families import (
    CANONICAL_UNITS,
    CASES,
    WALL0_NS,
    FamilyCase,
    Recorded,
    StreamCase,
    build_timeline,
    decoded_values,
    match_irregular,
    match_timeline,
    run_firmware,
)
from firmware_sims.peripheral import SimulatedPeripheral

ADDRESS = "C5:A3:00:00:0C:01"
#: Simulated seconds per contract run: long enough for every family's slowest stream to send
#: dozens of packets, and to cross the reference band's counter wrap (set 20 s before it).
RUN_S = 30.0
#: Largest error of a per-sample host time (s): the harness delivers packets once per 50 ms
#: step, and the clock model takes the lower envelope of receive latencies.
TIME_TOLERANCE_S = 0.1
#: The radio gap of the gap test (simulated s).
GAP_FROM_S, GAP_TO_S = 12.0, 14.5

FAMILY_IDS = sorted(CASES)  # case names (a family may have several: Polar H10 and Sense)
STREAMS = [(f, s.stream) for f in FAMILY_IDS for s in CASES[f].streams]
TIMELINE_STREAMS = [(f, s.stream) for f in FAMILY_IDS for s in CASES[f].streams if s.timeline]


def _ids(pairs: Sequence[tuple[str, str]]) -> list[str]:
    return [f"{f}-{s}" for f, s in pairs]


def _case(family: str, stream: str) -> tuple[FamilyCase, StreamCase]:
    c = CASES[family]
    return c, c.stream(stream)


def _frames(run_payloads: Sequence[bytes], uuid: str, host: np.ndarray) -> list[Frame]:
    return [
        Frame(ADDRESS, uuid, p, int(h), int(h - WALL0_NS))
        for p, h in zip(run_payloads, host.tolist(), strict=True)
    ]


def _check_decode_error(exc: DecodeError, payload: bytes) -> None:
    assert isinstance(exc.offset, int)
    assert 0 <= exc.offset <= len(payload), (exc.offset, len(payload))
    assert isinstance(exc.field, str)
    assert exc.field
    assert "\n" not in str(exc)


def test_the_two_original_families_have_cases() -> None:
    assert {"crampsense-band", "heart-rate"} <= set(CASES)


def test_every_registered_family_has_a_contract_case() -> None:
    missing = set(registry.families()) - {c.family for c in CASES.values()}
    assert not missing, f"registered families without a contract case: {missing}"


# --------------------------------------------------------------------------- identity


@pytest.mark.parametrize("family", FAMILY_IDS)
def test_identity_capabilities_and_units(family: str) -> None:
    c = CASES[family]
    proto = c.protocol()
    assert proto.family == c.family
    assert registry.FAMILIES[c.family] is type(proto)
    caps = {cap.stream: cap for cap in proto.capabilities()}
    for s in c.streams:
        assert s.unit == CANONICAL_UNITS[s.stream], f"{s.stream} must be in {s.unit}"
        cap = caps[s.stream]
        assert (cap.unit, tuple(cap.channels)) == (s.unit, s.channels)
        assert cap.fs_hz == s.fs_hz
        assert s.char_uuid in {u.lower() for u in proto.data_uuids()}
    for cap in caps.values():
        if cap.stream in CANONICAL_UNITS:
            assert cap.unit == CANONICAL_UNITS[cap.stream], cap
    assert proto.min_mtu >= 23


@pytest.mark.parametrize("family", FAMILY_IDS)
def test_scan_recognises_the_simulator_advertisement(family: str) -> None:
    sim = CASES[family].simulator(ADDRESS, 10.0)
    adv = sim.advertisement()
    found = registry.identify(adv.local_name, list(adv.service_uuids))
    assert found is not None
    assert found.family == CASES[family].family


@pytest.mark.parametrize("family", FAMILY_IDS)
def test_metadata_rebuilds_the_protocol(family: str) -> None:
    c = CASES[family]
    proto = c.protocol()
    meta = dict(proto.metadata())
    rebuilt = type(proto).from_metadata(meta)
    assert dict(rebuilt.metadata()) == meta
    assert rebuilt.capabilities() == proto.capabilities()
    via_registry = registry.protocol_for(c.family, **c.options)
    assert dict(via_registry.metadata()) == meta


@pytest.mark.parametrize("family", FAMILY_IDS)
def test_device_profile_agrees_with_the_protocol(family: str) -> None:
    c = CASES[family]
    profiles = registry.load_profiles()
    assert c.family in profiles, f"devices/profiles/{c.family}.toml is missing"
    registry.check_profile(profiles[c.family])  # against the family's default options
    assert profiles[c.family].default_placement is not None


def test_a_bad_profile_key_is_one_config_error_line(tmp_path: Path) -> None:
    folder = tmp_path
    good = (registry.PROFILE_DIR / "heart-rate.toml").read_text()
    bad = folder / "heart-rate.toml"
    bad.write_text(good.replace("mtu = 23", "mtu = 23\nmtu_size = 23"))
    with pytest.raises(ConfigError, match=r"heart-rate.toml: unknown key 'mtu_size'") as info:
        registry.load_profile(bad)
    assert "\n" not in str(info.value)
    assert info.value.key == "heart-rate.mtu_size"
    bad.write_text(good.replace('unit = "bpm"', 'unit = "Hz"'))
    with pytest.raises(ConfigError, match=r"streams.hr.unit = 'Hz'"):
        registry.check_profile(registry.load_profile(bad))
    bad.write_text(good.replace('channels = ["rr"]', 'channels = ["rr", "x"]'))
    with pytest.raises(ConfigError, match=r"streams.rr.channels"):
        registry.check_profile(registry.load_profile(bad))
    bad.write_text(good.replace('default_placement = "chest"', 'default_placement = "ear"'))
    with pytest.raises(ConfigError, match=r"default_placement 'ear'"):
        registry.load_profile(bad)
    bad.write_text(good.replace("mtu = 23", 'mtu = "big"'))
    with pytest.raises(ConfigError, match=r"mtu = 'big' is not a int"):
        registry.load_profile(bad)


# --------------------------------------------------------------------------- round trip


@pytest.mark.parametrize(("family", "stream"), STREAMS, ids=_ids(STREAMS))
def test_encoder_round_trip_within_one_lsb(family: str, stream: str) -> None:
    c, s = _case(family, stream)
    proto = c.protocol()
    rng = np.random.default_rng(5)
    run = c.encode(stream, rng, 40)
    frames = _frames(run.payloads, run.char_uuid, run.host_time_ns)
    values, counts = decoded_values(proto, frames, stream)
    assert counts == [int(n) for n in run.n_samples if n > 0]
    assert values.shape == run.values.shape
    np.testing.assert_allclose(values, run.values, rtol=0, atol=s.tolerance)
    for frame in frames[:5]:
        for block in proto.decode(frame):
            if block.stream != stream:
                continue
            assert block.unit == s.unit
            assert tuple(block.channels) == s.channels
            assert block.fs_hz == s.fs_hz
            assert block.values.dtype == np.float32
            assert block.device_address == ADDRESS


def _reference(proto: DeviceProtocol, uuid: str, payloads: list[bytes],
               host: np.ndarray) -> list[list[SampleBlock] | None]:
    """``decode`` of every payload in order (``None`` where it raises DecodeError)."""
    out: list[list[SampleBlock] | None] = []
    for p, h in zip(payloads, host.tolist(), strict=True):
        try:
            out.append(proto.decode(Frame(ADDRESS, uuid, p, int(h), 0)))
        except DecodeError:
            out.append(None)
    return out


def _same_as_decode(make: Callable[[], DeviceProtocol], uuid: str, payloads: list[bytes],
                    host: np.ndarray) -> int:
    """decode_batch's covered packets equal decode's blocks bit for bit; returns covered.

    Each path gets its own fresh protocol: a stateful decoder (the Ganglion's delta chain)
    must give the same result however the frames are split between the two."""
    batches = make().decode_batch(uuid, payloads, host)
    if batches is None:
        return 0
    reference = _reference(make(), uuid, payloads, host)
    covered = 0
    for b in batches:
        starts = np.concatenate(([0], np.cumsum(b.n_samples)[:-1]))
        for j, i in enumerate(b.index.tolist()):
            decoded = reference[i]
            assert decoded is not None, f"packet {i} is in a batch but decode rejects it"
            blocks = [x for x in decoded if x.stream == b.stream]
            assert len(blocks) == 1, "a batch packet is one block of its stream"
            block = blocks[0]
            n = int(b.n_samples[j])
            got = b.values[:, starts[j] : starts[j] + n]
            assert got.tobytes() == block.values.astype(np.float32).tobytes()
            assert (b.channels, b.unit, b.fs_hz) == (
                tuple(block.channels), block.unit, block.fs_hz
            )
            assert int(b.sequence[j]) == (-1 if block.sequence is None else block.sequence)
            assert int(b.device_ticks[j]) == (
                -1 if block.device_ticks is None else block.device_ticks
            )
            assert int(b.flags[j]) == block.flags
            covered += 1
    return covered


@pytest.mark.parametrize(("family", "stream"), STREAMS, ids=_ids(STREAMS))
def test_decode_batch_equals_decode(family: str, stream: str) -> None:
    c, _ = _case(family, stream)
    run = c.encode(stream, np.random.default_rng(9), 60)
    payloads = list(run.payloads)
    payloads[7] = payloads[7][:1]  # a malformed packet: left for decode to reject
    _same_as_decode(c.protocol, run.char_uuid, payloads, run.host_time_ns)
    with pytest.raises(DecodeError):
        c.protocol().decode(Frame(ADDRESS, run.char_uuid, payloads[7], 0, 0))


# --------------------------------------------------------------------------- continuity


@pytest.mark.parametrize(("family", "stream"), TIMELINE_STREAMS, ids=_ids(TIMELINE_STREAMS))
def test_consecutive_packets_make_one_timeline_without_loss(family: str, stream: str) -> None:
    c, s = _case(family, stream)
    proto = c.protocol()
    run = c.encode(stream, np.random.default_rng(3), 80)
    tl = build_timeline(proto, _frames(run.payloads, run.char_uuid, run.host_time_ns), stream)
    assert tl is not None
    assert (tl.lost_packets, tl.duplicate_packets, tl.gaps) == (0, 0, [])
    assert tl.n_samples == run.values.shape[1]
    assert tl.valid.all()
    assert tl.unit == s.unit
    assert tl.fs_hz == s.fs_hz
    np.testing.assert_allclose(tl.values, run.values, rtol=0, atol=s.tolerance)
    # per-sample times: each packet's last sample close to its receive time (within 50 ms, or
    # a sample period for slow streams whose samples are assembled over several packets)
    has = run.n_samples > 0
    ends = np.cumsum(run.n_samples)[has] - 1
    lag_s = (run.host_time_ns[has] - tl.sample_time_ns(ends)) / 1e9
    assert np.all(np.abs(lag_s) <= max(0.05, 1.0 / float(s.fs_hz or 1.0))), lag_s


@pytest.mark.parametrize(("family", "stream"), TIMELINE_STREAMS, ids=_ids(TIMELINE_STREAMS))
def test_dropped_packets_are_counted_and_marked_missing(family: str, stream: str) -> None:
    c, s = _case(family, stream)
    proto = c.protocol()
    run = c.encode(stream, np.random.default_rng(4), 120)
    carrying = np.flatnonzero(run.n_samples > 0)  # packets with samples of this stream
    lost_at = [3, 4, 5, 8]  # a run of three and a single one, with packets after both
    lost = set(carrying[lost_at].tolist())
    keep = [i for i in range(len(run.payloads)) if i not in lost]
    frames = _frames([run.payloads[i] for i in keep], run.char_uuid, run.host_time_ns[keep])
    tl = build_timeline(proto, frames, stream)
    assert tl is not None
    assert tl.lost_packets == len(lost)
    starts = np.concatenate(([0], np.cumsum(run.n_samples[carrying])))
    expected_gaps = [(int(starts[3]), int(starts[6])), (int(starts[8]), int(starts[9]))]
    assert tl.gaps == expected_gaps
    assert tl.n_samples == run.values.shape[1]
    missing = np.zeros(tl.n_samples, dtype=bool)
    for a, b in expected_gaps:
        missing[a:b] = True
    np.testing.assert_array_equal(tl.valid, ~missing)
    diff = tl.values.astype(np.float64) - run.values
    if s.offset_after_loss:  # each run after a loss is right up to a constant
        for a, b in ((0, expected_gaps[0][0]), (expected_gaps[0][1], expected_gaps[1][0]),
                     (expected_gaps[1][1], tl.n_samples)):
            diff[:, a:b] -= diff[:, a : a + 1]
    assert np.max(np.abs(diff[:, ~missing])) <= s.tolerance


# --------------------------------------------------------------------------- the simulator


@pytest.fixture(scope="module")
def recordings() -> dict[str, tuple[SimulatedPeripheral, Recorded]]:
    """One RUN_S recording per family: (simulator, Recorded)."""
    out: dict[str, tuple[SimulatedPeripheral, Recorded]] = {}
    for family in FAMILY_IDS:
        c = CASES[family]
        sim = c.simulator(ADDRESS, RUN_S)
        out[family] = (sim, run_firmware(sim, c.protocol(), RUN_S))
    return out


@pytest.mark.parametrize(("family", "stream"), STREAMS, ids=_ids(STREAMS))
def test_simulator_stream_decodes_to_what_it_was_given(
    family: str, stream: str, recordings: dict[str, tuple[SimulatedPeripheral, Recorded]]
) -> None:
    c, s = _case(family, stream)
    sim, rec = recordings[family]
    truth = c.truth(sim, stream)
    proto, frames = rec.protocol, rec.frames
    assert frames, f"{family} sent nothing in {RUN_S} s"
    assert {f.characteristic_uuid for f in frames} <= {u.lower() for u in proto.data_uuids()}
    if not s.timeline:
        values, _ = decoded_values(proto, frames, stream)
        assert values.shape[1] >= 0.8 * RUN_S * (truth.values.shape[1] / RUN_S) - 2
        assert match_irregular(values, truth, s.truth_tol) >= 0
        return
    tl = build_timeline(proto, frames, stream)
    assert tl is not None
    assert (tl.lost_packets, tl.gaps) == (0, [])
    assert tl.unit == s.unit
    assert tl.fs_hz == s.fs_hz
    m = match_timeline(tl, truth, realign_runs=s.host_timed)
    assert m.max_error <= s.truth_tol, m
    assert m.max_time_error_s <= TIME_TOLERANCE_S, m
    assert m.n_valid >= (RUN_S - 1.5) * float(s.fs_hz or 0), m


@pytest.mark.parametrize(("family", "stream"), TIMELINE_STREAMS, ids=_ids(TIMELINE_STREAMS))
def test_simulator_radio_gap_is_a_timeline_gap(family: str, stream: str) -> None:
    c, s = _case(family, stream)
    sim = c.simulator(ADDRESS, RUN_S)

    def drop(uuid: str, t_s: float) -> bool:
        return uuid == s.char_uuid and GAP_FROM_S <= t_s < GAP_TO_S

    rec = run_firmware(sim, c.protocol(), RUN_S, drop=drop)
    assert rec.dropped > 0
    tl = build_timeline(rec.protocol, rec.frames, stream)
    assert tl is not None
    # counted as lost packets (sequence numbers) or as a segment break (a silence longer
    # than timeline.SEQLESS_GAP_S on a stream without them); reported as a gap either way
    assert tl.lost_packets >= 1 or tl.segments == 2
    assert len(tl.gaps) == 1
    fs = float(s.fs_hz or 0)
    a, b = tl.gaps[0]
    gap_from_s = (tl.sample_time_ns(a) - WALL0_NS) / 1e9
    gap_to_s = (tl.sample_time_ns(b) - WALL0_NS) / 1e9
    _, counts = decoded_values(rec.protocol, rec.frames, stream)
    # a packet's span plus the harness step (a Verity Sense frame holds over a second)
    slack_s = max(0.5, float(np.median(counts)) / fs + 0.1)
    assert GAP_FROM_S - slack_s <= gap_from_s <= GAP_FROM_S + slack_s, gap_from_s
    assert GAP_TO_S - slack_s <= gap_to_s <= GAP_TO_S + slack_s, gap_to_s
    assert not tl.valid[a:b].any()
    m = match_timeline(tl, c.truth(sim, stream), offset_per_run=s.offset_after_loss,
                       realign_runs=s.host_timed)
    assert m.max_time_error_s <= TIME_TOLERANCE_S, m
    assert m.max_error <= s.truth_tol
    assert m.n_valid >= (RUN_S - 1.5 - (GAP_TO_S - GAP_FROM_S) - 2 * slack_s) * fs


# --------------------------------------------------------------------------- malformed


@pytest.mark.parametrize("family", FAMILY_IDS)
def test_malformed_packets_raise_decode_error_with_offset_and_field(family: str) -> None:
    c = CASES[family]
    proto = c.protocol()
    cases = c.malformed()
    assert len(cases) >= 3
    for bad in cases:
        with pytest.raises(DecodeError) as info:
            proto.decode(Frame(ADDRESS, bad.char_uuid, bad.payload, WALL0_NS, 0))
        _check_decode_error(info.value, bad.payload)
        if bad.field is not None:
            assert info.value.field == bad.field, (bad.why, str(info.value))


@pytest.mark.parametrize("family", FAMILY_IDS)
def test_empty_notifications_are_rejected_on_every_stream(family: str) -> None:
    c = CASES[family]
    proto = c.protocol()
    for uuid in {s.char_uuid for s in c.streams}:
        with pytest.raises(DecodeError) as info:
            proto.decode(Frame(ADDRESS, uuid, b"", WALL0_NS, 0))
        _check_decode_error(info.value, b"")


@pytest.mark.parametrize(("family", "stream"), STREAMS, ids=_ids(STREAMS))
def test_a_cut_packet_never_passes_as_a_whole_one(family: str, stream: str) -> None:
    c, _ = _case(family, stream)
    run = c.encode(stream, np.random.default_rng(8), 6)
    for payload in run.payloads:
        whole = sum(b.values.size for b in c.protocol().decode(
            Frame(ADDRESS, run.char_uuid, payload, WALL0_NS, 0)))
        for cut in range(len(payload)):
            frame = Frame(ADDRESS, run.char_uuid, payload[:cut], WALL0_NS, 0)
            try:
                blocks = c.protocol().decode(frame)
            except DecodeError as exc:
                _check_decode_error(exc, payload[:cut])
                continue
            got = sum(b.values.size for b in blocks)
            assert got < whole or whole == 0, (cut, len(payload))

