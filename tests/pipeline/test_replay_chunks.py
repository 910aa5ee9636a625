"""Replay in small chunks gives exactly what replay in one chunk gives.

Replay reads one device at a time, :data:`~crampsense.pipeline.replay.DECODE_CHUNK_FRAMES`
frames per query and per ``decode_batch`` call, and builds each device's timelines before the
next device is read. Stateful decoders (the Ganglion's delta chains, Movesense continuations)
must therefore carry their state across chunk boundaries. Here a short recording of every
device family (the zoo, Ganglion on firmware 2 so that its samples are delta-coded) is replayed
in chunks of 7 frames, in chunks larger than the session, and frame by frame: the timelines,
counts, errors and the night must be identical.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from crampsense.devices.timeline import StreamTimeline
from crampsense.pipeline import replay as session_replay
from crampsense.storage.session_log import FrameBatch, SessionReader
from firmware_sims.bedroom import ZOO_GANGLION, ZOO_MOVESENSE
from zoohelp import record_known_zoo

#: Simulated seconds recorded: long enough for every family to send many packets (thousands
#: of frames, so 7-frame chunks cut every stream hundreds of times), short enough to be quick.
RECORD_S = 20.0
#: A chunk size that is prime and smaller than any family's packets per second, so chunk
#: boundaries fall everywhere in the decoders' packet cycles.
TINY_CHUNK_FRAMES = 7

Decoded = tuple[dict[tuple[str, str], StreamTimeline], int, int, list[str]]


@pytest.fixture(scope="module")
def zoo_session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """RECORD_S of every family (known signals, Ganglion firmware 2), through bleak."""
    path = tmp_path_factory.mktemp("chunks") / "zoo.session"
    return record_known_zoo(path, RECORD_S, ganglion_firmware=2)


def _decode(path: Path, *, batch: bool = True) -> Decoded:
    with SessionReader(path) as reader:
        return session_replay.decode_session(reader, batch=batch)


def _assert_same(a: Decoded, b: Decoded) -> None:
    (tl_a, n_a, bad_a, err_a), (tl_b, n_b, bad_b, err_b) = a, b
    assert (n_a, bad_a, err_a) == (n_b, bad_b, err_b)
    assert list(tl_a) == list(tl_b)  # same streams, in the same order
    for key in tl_a:
        for f in dataclasses.fields(StreamTimeline):
            x, y = getattr(tl_a[key], f.name), getattr(tl_b[key], f.name)
            if isinstance(x, np.ndarray):
                assert (x.dtype, x.shape) == (y.dtype, y.shape), (key, f.name)
                assert x.tobytes() == y.tobytes(), (key, f.name)  # bit for bit
            else:
                assert x == y, (key, f.name)


def test_tiny_chunks_replay_exactly_like_one_chunk(
    zoo_session: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with SessionReader(zoo_session) as reader:
        n_frames = reader.frame_count()
        ganglion_frames = reader.frame_count(ZOO_GANGLION)
    assert ganglion_frames > 100 * TINY_CHUNK_FRAMES
    # one chunk per device
    monkeypatch.setattr(session_replay, "DECODE_CHUNK_FRAMES", n_frames + 1)
    whole = _decode(zoo_session)
    analysis_whole = session_replay.analyze_session(zoo_session)

    # tiny chunks: spy on what the reader is asked for and what it yields
    seen: list[FrameBatch] = []
    original = SessionReader.frame_batches

    def spy(self: SessionReader, **kwargs: object) -> Iterator[FrameBatch]:
        for frames in original(self, **kwargs):  # type: ignore[arg-type]
            seen.append(frames)
            yield frames

    monkeypatch.setattr(SessionReader, "frame_batches", spy)
    monkeypatch.setattr(session_replay, "DECODE_CHUNK_FRAMES", TINY_CHUNK_FRAMES)
    tiny = _decode(zoo_session)
    assert seen
    assert max(len(b) for b in seen) == TINY_CHUNK_FRAMES
    assert all(np.unique(b.device_ids).size == 1 for b in seen)  # one device at a time
    assert sum(len(b) for b in seen) == n_frames
    _assert_same(tiny, whole)
    assert whole[2] == 0
    assert (ZOO_GANGLION, "emg") in whole[0]
    assert (ZOO_MOVESENSE, "acc") in whole[0]

    analysis_tiny = session_replay.analyze_session(zoo_session)
    assert analysis_tiny.night == analysis_whole.night
    assert analysis_tiny.results.to_events() == analysis_whole.results.to_events()
    assert analysis_tiny.frames == analysis_whole.frames == n_frames

    # and both are what the reference path (decode frame by frame) gives
    _assert_same(tiny, _decode(zoo_session, batch=False))


def test_interleaved_replay_in_tiny_chunks_is_the_same(
    zoo_session: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the pass damaged or salvaged files take: all devices together, in recorded order
    whole = _decode(zoo_session)
    monkeypatch.setattr(session_replay, "DECODE_CHUNK_FRAMES", TINY_CHUNK_FRAMES)
    with SessionReader(zoo_session) as reader:
        interleaved = session_replay._decode_interleaved(reader, reader.frame_count(), None)
    _assert_same(interleaved, whole)


def test_replay_orders_devices_by_their_share_of_the_first_frames(zoo_session: Path) -> None:
    with SessionReader(zoo_session) as reader:
        sample = reader.frame_counts(limit=session_replay.ORDER_SAMPLE_FRAMES)
        everything = reader.frame_counts()
        assert set(reader.frame_addresses) == set(everything)
        assert sum(everything.values()) == reader.frame_count()
        assert reader.frame_counts(limit=10) == _first_counts(reader, 10)
    assert set(sample) <= set(everything)
    # the Ganglion sends the most notifications (100 packets/s): it is replayed first
    assert max(everything, key=everything.__getitem__) == ZOO_GANGLION


def _first_counts(reader: SessionReader, limit: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    for i, frame in enumerate(reader.frames()):
        if i == limit:
            break
        counts[frame.device_address] = counts.get(frame.device_address, 0) + 1
    return counts


def test_frame_position_counts_frames_up_to_an_id(zoo_session: Path) -> None:
    with SessionReader(zoo_session) as reader:
        batches = list(reader.frame_batches(device_address=ZOO_MOVESENSE, batch_size=50))
        everything = list(reader.frame_batches(batch_size=1000))
    ids = np.concatenate([b.frame_ids for b in everything if b.frame_ids is not None])
    mine = np.concatenate([b.frame_ids for b in batches if b.frame_ids is not None])
    with SessionReader(zoo_session) as reader:
        for frame_id in mine[:: max(1, mine.size // 5)].tolist():
            assert reader.frame_position(frame_id) == int(np.flatnonzero(ids == frame_id)[0]) + 1
