"""Stream timelines: wraps, exact loss, duplicates, reorder, resets, reconnects, drift, wall jumps.

Synthetic packets carry their true grid position as their sample values (``values[0]`` is the
sample index on the device's grid, ``values[1]`` its negative), so every placement can be
checked exactly.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crampsense.devices.timeline import StreamTimeline, TimelineBuilder
from crampsense.errors import ConfigError, DecodeError
from crampsense.models import SampleBlock

HOST0_NS = 1_736_980_200 * 10**9
TICK_HZ = 1_000_000
SEQ_MOD = 2**16
TICK_MOD = 2**32


@dataclass
class Packet:
    index: int  # true grid position of the first sample (device samples since part start)
    ticks: int  # unwrapped device counter (µs) of the first sample
    seq: int  # unwrapped sequence number
    host_ns: int  # host receive time
    flags: int = 0


def part(
    n_packets: int,
    *,
    fs: float = 1000.0,
    spp: int = 58,
    index0: int = 0,
    tick0: int = 0,
    seq0: int = 0,
    start_s: float = 0.0,
    drift_ppm: float = 0.0,
    latency_ms: float = 5.0,
    jitter_ms: float = 3.0,
    seed: int = 0,
) -> list[Packet]:
    """Packets of one connection: device counter ``tick0`` at true time ``start_s``."""
    rng = np.random.default_rng(seed)
    k = np.arange(n_packets)
    first = k * spp
    ticks = tick0 + np.rint(first * (TICK_HZ / fs)).astype(np.int64)
    emission_dev_s = (first + spp - 1) / fs
    true_s = start_s + emission_dev_s / (1.0 + drift_ppm * 1e-6)
    host = (
        HOST0_NS
        + np.rint(true_s * 1e9).astype(np.int64)
        + np.rint((latency_ms + rng.exponential(jitter_ms, n_packets)) * 1e6).astype(np.int64)
    )
    return [
        Packet(index0 + int(f), int(t), seq0 + int(i), int(h))
        for i, (f, t, h) in enumerate(zip(first, ticks, host, strict=True))
    ]


def build(
    packets: list[Packet],
    *,
    fs: float = 1000.0,
    spp: int = 58,
    with_seq: bool = True,
    with_ticks: bool = True,
    mask: int = 0,
) -> StreamTimeline:
    b = TimelineBuilder("emg", fs, TICK_HZ, SEQ_MOD, TICK_MOD, lead_off_mask=mask)
    offsets = np.arange(spp, dtype=np.float32)
    for p in packets:
        v = p.index + offsets
        block = SampleBlock(
            "AA", "emg", ("gm", "gl"), "uV", fs, np.vstack([v, -v]),
            device_ticks=p.ticks % TICK_MOD if with_ticks else None,
            sequence=p.seq % SEQ_MOD if with_seq else None,
            flags=p.flags,
        )
        b.add(block, p.host_ns)
    assert len(b) == len(packets)
    return b.build()


def expected_gaps(kept_index: list[int], spp: int) -> list[tuple[int, int]]:
    gaps = []
    for a, b in itertools.pairwise(kept_index):
        if b > a + spp:
            gaps.append((a + spp - kept_index[0], b - kept_index[0]))
    return gaps


# --------------------------------------------------------------------------- basics


def test_clean_stream_is_continuous_and_anchored() -> None:
    tl = build(part(500))
    assert tl.n_samples == 500 * 58
    np.testing.assert_array_equal(tl.values[0], np.arange(500 * 58))
    np.testing.assert_array_equal(tl.values[1], -np.arange(500 * 58))
    assert tl.values.dtype == np.float32
    assert tl.valid.all()
    assert (tl.lost_packets, tl.duplicate_packets, tl.gaps) == (0, 0, [])
    assert (tl.segments, tl.clock_resets) == (1, 0)
    # sample 0 at true time 0; receive latency is at least 5 ms
    assert 5e6 <= tl.t0_host_ns - HOST0_NS <= 6e6
    assert (tl.stream, tl.channels, tl.unit, tl.fs_hz) == ("emg", ("gm", "gl"), "uV", 1000.0)
    assert tl.sample_time_ns(1000) - tl.sample_time_ns(0) == 10**9


def test_empty_builder_gives_an_empty_timeline() -> None:
    tl = TimelineBuilder("acc", 50.0, 1e6, SEQ_MOD, TICK_MOD).build()
    assert tl.n_samples == 0
    assert tl.values.shape[1] == 0
    assert tl.gaps == []


# --------------------------------------------------------------------------- loss and wraps


def test_loss_is_exact_across_a_sequence_wrap() -> None:
    packets = part(300, seq0=65_500)
    dropped = {p.seq for p in packets if p.seq % SEQ_MOD in (65534, 65535, 0, 1)}
    dropped |= {65_500 + i for i in (100, 101, 102, 103, 104, 250)}
    kept = [p for p in packets if p.seq not in dropped]
    tl = build(kept)
    assert tl.lost_packets == len(dropped) == 10
    assert tl.gaps == expected_gaps([p.index for p in kept], 58)
    assert len(tl.gaps) == 3
    assert tl.n_samples == 300 * 58
    received = np.concatenate([np.arange(p.index, p.index + 58) for p in kept])
    assert tl.valid.sum() == received.size
    np.testing.assert_array_equal(tl.values[0, received], received)
    assert not tl.valid[~np.isin(np.arange(tl.n_samples), received)].any()


def test_loss_is_exact_across_a_tick_wrap() -> None:
    # the counter wraps between packets 9 and 10; packets 9-11 and 40 are lost
    packets = part(100, tick0=TICK_MOD - 10 * 58_000 + 123, seq0=7)
    kept = [p for i, p in enumerate(packets) if i not in (9, 10, 11, 40)]
    tl = build(kept)
    assert tl.lost_packets == 4
    assert tl.gaps == [(9 * 58, 12 * 58), (40 * 58, 41 * 58)]
    assert tl.n_samples == 100 * 58
    assert tl.segments == 1


def test_loss_across_many_wraps_is_never_negative() -> None:
    # 2 samples per packet at 1000 Hz: the sequence wraps every 131 s; 150 s has a wrap
    packets = part(75_000, spp=2, tick0=TICK_MOD - 5_000_000, seq0=60_000, jitter_ms=1.0)
    rng = np.random.default_rng(5)
    drop = set(rng.choice(75_000, size=750, replace=False).tolist()) - {0, 74_999}
    kept = [p for i, p in enumerate(packets) if i not in drop]
    tl = build(kept, spp=2)
    assert tl.lost_packets == len(drop)
    assert tl.n_samples == 150_000
    assert tl.valid.sum() == 2 * len(kept)


def test_duplicates_are_dropped_first_arrival_wins() -> None:
    packets = part(200)
    stream = list(packets)
    for i in (3, 50, 51, 120, 199):  # BlueZ double callbacks: right after the original
        stream.insert(stream.index(packets[i]) + 1, Packet(**packets[i].__dict__))
    late = [Packet(**packets[i].__dict__) for i in (10, 11, 12)]
    for p in late:
        p.host_ns += 2 * 10**9
    stream.extend(late)
    tl = build(stream)
    assert tl.duplicate_packets == 8
    assert tl.lost_packets == 0
    assert tl.n_samples == 200 * 58
    np.testing.assert_array_equal(tl.values[0], np.arange(200 * 58))


def test_reordered_packets_are_placed_by_sequence() -> None:
    packets = part(200)
    stream = list(packets)
    for i in (5, 60, 61 + 40):
        stream[i], stream[i + 1] = stream[i + 1], stream[i]
    moved = stream.pop(30)
    stream.insert(40, moved)
    first = stream.pop(0)  # even the very first packet arrives late
    stream.insert(3, first)
    tl = build(stream)
    assert (tl.lost_packets, tl.duplicate_packets, tl.gaps, tl.segments) == (0, 0, [], 1)
    np.testing.assert_array_equal(tl.values[0], np.arange(200 * 58))
    assert 5e6 <= tl.t0_host_ns - HOST0_NS <= 6e6


# --------------------------------------------------------------------------- segments


def test_clock_reset_starts_a_new_segment_placed_by_host_time() -> None:
    a = part(300, tick0=3_000_000_000, seq0=10_000)
    start2_s = 300 * 58 / 1000 + 5.0
    b = part(300, tick0=42, seq0=0, start_s=start2_s, index0=round(start2_s * 1000), seed=1)
    tl = build(a + b)
    assert (tl.segments, tl.clock_resets, tl.lost_packets) == (2, 1, 0)
    assert len(tl.gaps) == 1
    gap_a, gap_b = tl.gaps[0]
    assert gap_a == 300 * 58
    assert abs(gap_b - round(start2_s * 1000)) <= 3, "host-time placement: within latency jitter"
    assert tl.values[0, gap_b] == round(start2_s * 1000)


@pytest.mark.parametrize("gap_s", [0.3, 40.0, 3000.0, 3 * 3600.0 + 17.0])
@pytest.mark.parametrize("drift_ppm", [0.0, 30.0])
def test_reconnect_gap_bounds_are_exact_when_the_device_clock_runs_on(
    gap_s: float, drift_ppm: float
) -> None:
    """The band restarts its sequence at 0 on START after a reconnect; its counter runs on.

    3000 s is more than half the 71.6-min tick wrap (device time alone is ambiguous) and
    3 h spans several wraps: the host's elapsed time picks the right number of wraps.
    """
    fs, spp = 50.0, 39
    a = part(400, fs=fs, spp=spp, tick0=4_000_000_000, seq0=300, drift_ppm=drift_ppm)
    end_a_dev_s = 400 * spp / fs
    start2_dev_s = end_a_dev_s + gap_s + 0.0123  # START is not aligned to the sample grid
    tick2 = 4_000_000_000 + round(start2_dev_s * TICK_HZ)
    index2 = round(start2_dev_s * fs)
    b = part(
        400, fs=fs, spp=spp, tick0=tick2, seq0=0, start_s=start2_dev_s / (1 + drift_ppm * 1e-6),
        index0=index2, drift_ppm=drift_ppm, seed=2,
    )
    tl = build(a + b, fs=fs, spp=spp)
    assert (tl.clock_resets, tl.lost_packets) == (0, 0)
    assert tl.segments == 2
    assert tl.gaps == [(400 * spp, index2)]
    assert tl.n_samples == index2 + 400 * spp
    np.testing.assert_array_equal(tl.values[0, index2:], np.arange(index2, index2 + 400 * spp))


def test_a_sequence_restart_without_host_silence_still_splits_segments() -> None:
    a = part(100, tick0=10**9, seq0=5)
    b = part(100, tick0=10**9 + 100 * 58_000 + 500_000, seq0=0, start_s=5.8 + 0.5,
             index0=5800 + 500)
    tl = build(a + b)
    assert (tl.segments, tl.clock_resets, tl.lost_packets) == (2, 0, 0)
    assert tl.gaps == [(5800, 6300)]


# --------------------------------------------------------------------------- time model


def test_host_wall_clock_jumps_do_not_change_intervals() -> None:
    packets = part(4000, drift_ppm=0.0)  # 232 s
    for p in packets[2500:]:
        p.host_ns += 3600 * 10**9  # an NTP/DST step forward
    for p in packets[3200:3300]:
        p.host_ns -= 90 * 10**9  # and a brief step back
    tl = build(packets)
    assert tl.n_samples == 4000 * 58
    assert (tl.gaps, tl.lost_packets, tl.segments, tl.clock_resets) == ([], 0, 1, 0)
    np.testing.assert_array_equal(tl.values[0], np.arange(4000 * 58))
    assert tl.sample_time_ns(1000) - tl.sample_time_ns(0) == 10**9
    assert 5e6 <= tl.t0_host_ns - HOST0_NS <= 6e6, "anchored to the longest step-free stretch"


def test_wall_jump_during_a_long_recording_keeps_the_drift() -> None:
    packets = part(25_000, fs=500.0, drift_ppm=-50.0, jitter_ms=8.0)  # 48 min
    for p in packets[:4000]:
        p.host_ns -= 7200 * 10**9  # the host clock was 2 h behind until NTP fixed it
    tl = build(packets, fs=500.0)
    assert tl.drift_ppm == pytest.approx(-50.0, abs=3.0)
    assert tl.n_samples == 25_000 * 58
    assert 5e6 - 2e6 <= tl.t0_host_ns - HOST0_NS <= 6e6 + 2e6


@pytest.mark.parametrize("drift_ppm", [-50.0, 0.0, 50.0])
def test_drift_is_recovered_within_a_few_ppm_despite_latency_outliers(drift_ppm: float) -> None:
    fs = 200.0
    packets = part(25_000, fs=fs, drift_ppm=drift_ppm, jitter_ms=15.0, seed=9)  # 2 h
    rng = np.random.default_rng(4)
    for i in rng.choice(len(packets), size=500, replace=False):
        packets[i].host_ns += int(rng.uniform(0.5, 3.0) * 1e9)  # stalls and retries
    tl = build(packets, fs=fs)
    assert tl.drift_ppm == pytest.approx(drift_ppm, abs=3.0)
    assert abs(tl.t0_host_ns - HOST0_NS - 5e6) <= 3e6
    # the last sample's host time is right to within milliseconds after 2 h
    last = tl.n_samples - 1
    true_last_ns = HOST0_NS + last / fs / (1 + drift_ppm * 1e-6) * 1e9
    assert abs(int(tl.sample_time_ns(last)) - true_last_ns - 5e6) <= 5e6


# --------------------------------------------------------------------------- other inputs


def test_streams_without_sequence_numbers_count_loss_from_device_time() -> None:
    packets = part(300, tick0=TICK_MOD - 50 * 58_000)
    kept = [p for i, p in enumerate(packets) if i not in (49, 50, 51, 200)]
    tl = build(kept, with_seq=False)
    assert tl.lost_packets == 4
    assert tl.gaps == [(49 * 58, 52 * 58), (200 * 58, 201 * 58)]


def test_streams_without_device_ticks_fall_back_to_host_time() -> None:
    tl = build(part(100, jitter_ms=0.0), with_seq=False, with_ticks=False)
    assert tl.n_samples == pytest.approx(100 * 58, abs=2)
    assert tl.lost_packets == 0


def test_flagged_packets_are_invalid_only_under_the_mask() -> None:
    packets = part(50)
    for i in (10, 11, 30):
        packets[i].flags = 0x01
    packets[20].flags = 0x08  # clock-not-set: informational
    tl = build(packets, mask=0x07)
    invalid = np.flatnonzero(~tl.valid)
    want = np.concatenate([np.arange(i * 58, (i + 1) * 58) for i in (10, 11, 30)])
    np.testing.assert_array_equal(invalid, want)
    assert tl.gaps == [], "flagged samples were received"
    assert build(packets, mask=0).valid.all()


def test_bad_input_is_rejected_with_project_errors() -> None:
    b = TimelineBuilder("emg", 1000.0, 1e6, SEQ_MOD, TICK_MOD)
    ok = SampleBlock("AA", "emg", ("gm", "gl"), "uV", 1000.0, np.zeros((2, 4), np.float32), 0, 0)
    b.add(ok, HOST0_NS)
    with pytest.raises(DecodeError, match="one TimelineBuilder per stream") as info:
        b.add(SampleBlock("AA", "acc", ("x",), "mg", 50.0, np.zeros((1, 4), np.float32)), 0)
    assert info.value.field == "stream"
    with pytest.raises(DecodeError) as info:
        b.add(SampleBlock("AA", "emg", ("gm",), "uV", 1000.0, np.zeros((1, 4), np.float32)), 0)
    assert info.value.field == "channels"
    b.add(SampleBlock("AA", "emg", ("gm", "gl"), "uV", 1000.0, np.zeros((2, 0), np.float32)), 0)
    assert len(b) == 1, "empty blocks are ignored"
    with pytest.raises(ConfigError):
        TimelineBuilder("emg", 0.0, 1e6, SEQ_MOD, TICK_MOD)
    with pytest.raises(ConfigError):
        TimelineBuilder("emg", 1000.0, 1e6, 2, TICK_MOD)


def test_a_clock_reset_days_away_is_refused_not_allocated() -> None:
    a = part(10, tick0=5, seq0=0)
    b = part(10, tick0=77_777, seq0=0, start_s=5 * 86_400.0, index0=0)
    with pytest.raises(DecodeError, match="split the recording") as info:
        build(a + b)
    assert info.value.field == "host_time_ns"


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_drop=st.integers(0, 40),
    n_dup=st.integers(0, 10),
    n_swap=st.integers(0, 10),
    seq0=st.integers(0, SEQ_MOD - 1),
    tick0=st.integers(0, TICK_MOD - 1),
)
def test_random_loss_duplicates_and_reorder_are_counted_exactly(
    seed: int, n_drop: int, n_dup: int, n_swap: int, seq0: int, tick0: int
) -> None:
    rng = np.random.default_rng(seed)
    packets = part(400, spp=10, seq0=seq0, tick0=tick0, seed=seed % 1000)
    drop = set(rng.choice(np.arange(1, 399), size=n_drop, replace=False).tolist())
    stream = [p for i, p in enumerate(packets) if i not in drop]
    for i in rng.integers(0, len(stream), size=n_dup).tolist():
        stream.insert(i + int(rng.integers(0, 5)), Packet(**stream[i].__dict__))
    for i in rng.integers(1, len(stream) - 1, size=n_swap).tolist():
        stream[i], stream[i + 1] = stream[i + 1], stream[i]
    tl = build(stream, spp=10)
    assert tl.lost_packets == n_drop
    assert tl.duplicate_packets == n_dup
    kept = sorted(i for i in range(400) if i not in drop)
    assert tl.gaps == expected_gaps([i * 10 for i in kept], 10)
    received = np.concatenate([np.arange(i * 10, i * 10 + 10) for i in kept])
    np.testing.assert_array_equal(tl.values[0, received], received)
    assert tl.valid.sum() == received.size


def _same_timeline(a: StreamTimeline, b: StreamTimeline) -> bool:
    return (
        np.array_equal(a.values, b.values)
        and np.array_equal(a.valid, b.valid)
        and (a.t0_host_ns, a.lost_packets, a.duplicate_packets, a.gaps, a.drift_ppm,
             a.segments, a.clock_resets)
        == (b.t0_host_ns, b.lost_packets, b.duplicate_packets, b.gaps, b.drift_ppm,
            b.segments, b.clock_resets)
    )


@pytest.mark.parametrize(("with_seq", "with_ticks"), [(True, True), (False, True), (True, False)])
def test_build_leaves_the_packets_intact_and_parts_join_in_order(
    with_seq: bool, with_ticks: bool
) -> None:
    # build computes in place on views of the stored packet fields and joins the stored
    # parts one at a time: building twice, or adding more and building again, must see the
    # packets exactly as added (a write through a view would corrupt the second build)
    spp = 10
    packets = part(300, spp=spp, tick0=TICK_MOD - 50_000, seq0=SEQ_MOD - 100, seed=3)
    packets += part(200, spp=spp, tick0=123, seq0=7, start_s=400.0, index0=0, seed=4)
    stream = [p for i, p in enumerate(packets) if i % 37 != 5]
    stream.insert(40, Packet(**stream[38].__dict__))  # a duplicate
    stream[60].flags = 1
    offsets = np.arange(spp, dtype=np.float32)

    def columns(ps: list[Packet]) -> dict[str, object]:
        v = np.concatenate([p.index + offsets for p in ps])
        return {
            "stream": "emg", "channels": ("gm", "gl"), "unit": "uV",
            "values": np.vstack([v, -v]), "n_samples": [spp] * len(ps),
            "sequence": [p.seq % SEQ_MOD for p in ps] if with_seq else None,
            "device_ticks": [p.ticks % TICK_MOD for p in ps] if with_ticks else None,
            "flags": [p.flags for p in ps], "host_time_ns": [p.host_ns for p in ps],
        }

    def fresh() -> TimelineBuilder:
        return TimelineBuilder("emg", 1000.0, TICK_HZ, SEQ_MOD, TICK_MOD, lead_off_mask=1)

    whole = fresh()
    whole.add_many(**columns(stream))  # type: ignore[arg-type]
    pieced = fresh()
    for i, (a, b) in enumerate(itertools.pairwise([0, 50, 51, 120, 300, 420])):
        if i == 1:  # one packet through add, between add_many parts
            p = stream[a]
            v = p.index + offsets
            pieced.add(SampleBlock("AA", "emg", ("gm", "gl"), "uV", 1000.0, np.vstack([v, -v]),
                                   device_ticks=p.ticks % TICK_MOD if with_ticks else None,
                                   sequence=p.seq % SEQ_MOD if with_seq else None,
                                   flags=p.flags), p.host_ns)
        else:
            pieced.add_many(**columns(stream[a:b]))  # type: ignore[arg-type]
    first = pieced.build()
    assert first.duplicate_packets >= 1
    assert first.lost_packets > 0
    assert not first.valid.all()
    assert _same_timeline(first, pieced.build())
    assert len(pieced) == 420
    pieced.add_many(**columns(stream[420:]))  # type: ignore[arg-type]
    assert _same_timeline(pieced.build(), whole.build())
    assert not _same_timeline(first, whole.build())
