"""Hypothesis fuzzing of every family's decoders (cases in ``tests/devices/families.py``).

Random bytes and mutated real packets (flipped bits, overwritten, inserted and deleted bytes,
cuts, splices of two packets) on every characteristic a family reads:

- ``decode`` returns blocks or raises ``DecodeError`` with an ``offset`` inside the payload
  and a ``field`` name; nothing else escapes (no IndexError, struct.error, ValueError...);
- ``decode_batch`` never raises, covers each packet at most once, and every packet it
  covers equals what ``decode`` gives for it, bit for bit (so the packets it leaves out are
  exactly the ones ``decode`` must judge);
- nothing hangs: every example has a deadline, the whole file a pytest timeout.

The default profile keeps the file near 20 s on two cores; ``-m slow`` runs the same
properties with many more examples.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crampsense.devices.base import DeviceProtocol, PacketBatch
from crampsense.errors import DecodeError
from crampsense.models import Frame, SampleBlock
from devices.families import CASES, WALL0_NS, FamilyCase

ADDRESS = "C5:A3:00:00:0F:01"
CASE_IDS = sorted(CASES)

#: Examples per property by default: 8 cases × 4 properties × this many at ~1-5 ms each keeps
#: the file within its ~20 s budget with Hypothesis' own overhead.
FAST_EXAMPLES = 80
#: Examples per property under ``-m slow`` (minutes, for a thorough run before a release).
SLOW_EXAMPLES = 3000
#: A single decode of one notification taking longer than this is a hang (a 244-byte packet
#: decodes in well under a millisecond).
DEADLINE = timedelta(milliseconds=400)

settings.register_profile(
    "crampsense-fuzz",
    max_examples=FAST_EXAMPLES,
    deadline=DEADLINE,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)
settings.register_profile(
    "crampsense-fuzz-slow",
    max_examples=SLOW_EXAMPLES,
    deadline=DEADLINE,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    # CI runs the same 3000 examples every time (a failure means the code changed); set
    # CRAMPSENSE_FUZZ_EXPLORE=1 to draw new ones, as a random run found the Movesense
    # signalling-NaN bug.
    derandomize=os.environ.get("CRAMPSENSE_FUZZ_EXPLORE") != "1",
)
FAST = settings(settings.get_profile("crampsense-fuzz"))
SLOW = settings(settings.get_profile("crampsense-fuzz-slow"))

#: Real packets per case and characteristic, from the family's own encoders.
_SEEDS: dict[str, dict[str, list[bytes]]] = {}


def _seeds(case: FamilyCase) -> dict[str, list[bytes]]:
    if case.name not in _SEEDS:
        rng = np.random.default_rng(17)
        out: dict[str, list[bytes]] = {}
        for s in case.streams:
            run = case.encode(s.stream, rng, 12)
            out.setdefault(run.char_uuid, []).extend(run.payloads)
        for bad in case.malformed():
            out.setdefault(bad.char_uuid, []).append(bad.payload)
        _SEEDS[case.name] = out
    return _SEEDS[case.name]


def _uuids(case: FamilyCase, proto: DeviceProtocol) -> list[str]:
    wanted = {u.lower() for u in (*proto.data_uuids(), *proto.control_uuids())}
    wanted |= {s.char_uuid for s in case.streams}
    return sorted(wanted)


def _check_error(exc: DecodeError, payload: bytes) -> None:
    assert isinstance(exc.offset, int), exc
    assert 0 <= exc.offset <= len(payload), (exc.offset, len(payload), str(exc))
    assert isinstance(exc.field, str)
    assert exc.field, str(exc)


def _decode(proto: DeviceProtocol, uuid: str, payload: bytes) -> list[SampleBlock] | None:
    """``decode`` of one payload: its blocks, or ``None`` after checking a DecodeError."""
    try:
        blocks = proto.decode(Frame(ADDRESS, uuid, payload, WALL0_NS, 0))
    except DecodeError as exc:
        _check_error(exc, payload)
        return None
    for b in blocks:
        assert isinstance(b, SampleBlock)
        assert b.values.ndim == 2
        assert b.values.shape[0] == len(b.channels)
        assert b.values.dtype == np.float32
    return blocks


def _check_batch(make: Callable[[], DeviceProtocol], uuid: str, payloads: list[bytes]) -> None:
    """Batch path and per-frame path, each with a fresh protocol (stateful decoders such as
    the Ganglion's must agree however the frames are split between the two)."""
    host = WALL0_NS + np.arange(len(payloads), dtype=np.int64) * 10_000_000
    batches = make().decode_batch(uuid, payloads, host)  # must not raise at all
    if batches is None:
        return
    proto = make()
    reference = [_decode(proto, uuid, p) for p in payloads]
    seen: set[tuple[str, int]] = set()
    for b in batches:
        assert isinstance(b, PacketBatch)
        assert b.index.dtype == np.int64
        assert np.all(np.diff(b.index) > 0), "indices strictly increasing"
        assert b.values.shape == (len(b.channels), int(b.n_samples.sum()))
        starts = np.concatenate(([0], np.cumsum(b.n_samples)[:-1]))
        for j, i in enumerate(b.index.tolist()):
            assert (b.stream, i) not in seen
            seen.add((b.stream, i))
            blocks = reference[i]
            assert blocks is not None, f"packet {i} is in a batch but decode rejects it"
            same = [x for x in blocks if x.stream == b.stream]
            assert len(same) == 1
            got = b.values[:, starts[j] : starts[j] + int(b.n_samples[j])]
            assert got.tobytes() == same[0].values.tobytes()


# --------------------------------------------------------------------------- strategies


@st.composite
def _mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A real packet after 1-4 random edits (or a splice of two)."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "cut", "splice"]))
        pos = draw(st.integers(0, max(len(data), 1)))
        if kind == "flip" and data:
            data[pos % len(data)] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            data[pos % len(data)] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete" and data:
            del data[pos % len(data)]
        elif kind == "cut":
            del data[pos:]
        elif kind == "splice":
            other = draw(st.sampled_from(seeds))
            data = data[:pos] + other[draw(st.integers(0, len(other))):]
    return bytes(data)


def _random_decode(case: FamilyCase) -> Callable[..., None]:
    proto = case.protocol()
    uuids = _uuids(case, proto)

    @given(uuid=st.sampled_from(uuids), payload=st.binary(max_size=300))
    def check(uuid: str, payload: bytes) -> None:
        _decode(proto, uuid, payload)

    return check


def _mutated_decode(case: FamilyCase) -> Callable[..., None]:
    proto = case.protocol()
    seeds = _seeds(case)

    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        uuid = data.draw(st.sampled_from(sorted(seeds)))
        _decode(proto, uuid, data.draw(_mutated(seeds[uuid])))

    return check


def _batch(case: FamilyCase) -> Callable[..., None]:
    """decode_batch over lists mixing real, mutated and random packets (real ones repeated,
    so that groups reach the batch threshold)."""
    seeds = _seeds(case)

    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        uuid = data.draw(st.sampled_from(sorted(seeds)))
        pool = seeds[uuid]
        one = st.one_of(
            st.sampled_from(pool), _mutated(pool), st.binary(max_size=64),
        )
        base = data.draw(st.sampled_from(pool))
        payloads = data.draw(st.lists(one, max_size=12))
        payloads += [base] * data.draw(st.integers(0, 12))
        payloads = data.draw(st.permutations(payloads))
        _check_batch(case.protocol, uuid, list(payloads))

    return check


def _batch_foreign(case: FamilyCase) -> Callable[..., None]:
    """decode_batch on any characteristic (incl. foreign ones) with random payloads."""
    proto = case.protocol()
    uuids = [*_uuids(case, proto), "0000ffff-0000-1000-8000-00805f9b34fb"]

    @given(uuid=st.sampled_from(uuids),
           payloads=st.lists(st.binary(max_size=64), max_size=20))
    def check(uuid: str, payloads: list[bytes]) -> None:
        _check_batch(case.protocol, uuid, payloads)

    return check


#: Failures the fuzzer found in modules this file does not own, reported to their owner;
#: non-strict, so a fix shows as XPASS and the mark can go.
#: (Empty: the two Movesense issues it found, a DecodeError offset beyond a continuation and
#: a RuntimeWarning for huge float32 values, were fixed in 559db04 and 724c1b0.)
KNOWN_ISSUES: dict[tuple[str, str], str] = {}


def _params(slow: bool) -> list[object]:
    out: list[object] = []
    for name in CASE_IDS:
        for prop in sorted(PROPERTIES):
            issue = KNOWN_ISSUES.get((name, prop))
            marks = [pytest.mark.xfail(reason=issue, strict=False)] if issue else []
            if slow:
                marks.append(pytest.mark.slow)
            out.append(pytest.param(name, prop, marks=marks, id=f"{name}-{prop}"))
    return out


PROPERTIES = {
    "random_decode": _random_decode,
    "mutated_decode": _mutated_decode,
    "batch_equals_decode": _batch,
    "batch_any_characteristic": _batch_foreign,
}


@pytest.mark.parametrize(("name", "prop"), _params(slow=False))
def test_decoders_only_raise_decode_error(name: str, prop: str) -> None:
    FAST(PROPERTIES[prop](CASES[name]))()


@pytest.mark.parametrize(("name", "prop"), _params(slow=True))
def test_decoders_only_raise_decode_error_many_examples(name: str, prop: str) -> None:
    SLOW(PROPERTIES[prop](CASES[name]))()


@pytest.mark.parametrize("name", CASE_IDS)
def test_seeds_are_real_packets_that_decode(name: str) -> None:
    """The mutation seeds include whole, valid packets (else the fuzzing is blind)."""
    case = CASES[name]
    proto = case.protocol()
    decoded = 0
    for uuid, payloads in _seeds(case).items():
        for p in payloads:
            blocks = _decode(proto, uuid, p)
            decoded += bool(blocks)
    assert decoded >= 12
