"""Recorded frames, delivered again byte for byte, at any speed.

A recorded session stores every notification exactly as it arrived. :class:`Resender`
hands those frames to the same consumers live recording feeds (a :class:`FrameSink`, a live
``on_frame`` callback), with their original receive times, either as fast as possible or paced
at ``speed`` times real time on the clock it is given. It is not a transport (nothing is
scanned or connected): it is the recorded side of the same frame stream, used to re-run a
night through newer code or to copy a session; ``crampsense replay`` decodes the same frames
in batches instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Final

from crampsense.clock import Clock
from crampsense.models import Frame
from crampsense.transport.ingest import FrameSink

__all__ = ["Resender"]

#: Pacing waits shorter than this are batched: sleeping per notification (hundreds per
#: second) would cost more than the notifications themselves.
MIN_PACING_SLEEP_S: Final = 0.01


class Resender:
    """Deliver recorded frames again.

    Parameters
    ----------
    frames : iterable of Frame
        In recorded order (``SessionReader.frames()``).
    clock : Clock, optional
        Needed only when ``speed`` is given: the clock to pace on.
    speed : float or None
        ``None``: as fast as possible. Otherwise the multiple of real time, using the frames'
        recorded monotonic receive times (so wall-clock jumps during the recording do not
        distort the pacing).
    """

    def __init__(
        self, frames: Iterable[Frame], *, clock: Clock | None = None, speed: float | None = None
    ) -> None:
        if speed is not None and (speed <= 0 or clock is None):
            msg = f"replay speed must be > 0 with a clock, got speed={speed!r}"
            raise ValueError(msg)
        self._frames = frames
        self._clock = clock
        self._speed = speed

    async def run(
        self,
        sink: FrameSink | None = None,
        *,
        on_frame: Callable[[Frame], None] | None = None,
        stop: asyncio.Event | None = None,
    ) -> int:
        """Deliver every frame; returns how many were delivered (fewer if ``stop`` was set)."""
        delivered = 0
        first_mono: int | None = None
        start_clock = self._clock.monotonic_ns() if self._clock is not None else 0
        for frame in self._frames:
            if stop is not None and stop.is_set():
                break
            if self._speed is not None and self._clock is not None:
                if first_mono is None:
                    first_mono = frame.host_monotonic_ns
                due_s = (frame.host_monotonic_ns - first_mono) / 1e9 / self._speed
                wait_s = due_s - (self._clock.monotonic_ns() - start_clock) / 1e9
                if wait_s >= MIN_PACING_SLEEP_S:
                    await self._clock.sleep(wait_s)
            if sink is not None:
                sink.append(frame)
            if on_frame is not None:
                on_frame(frame)
            delivered += 1
            if delivered % 4096 == 0:
                await asyncio.sleep(0)
        if sink is not None:
            sink.flush()
        return delivered
