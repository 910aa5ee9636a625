"""Clocks, passed in wherever time is read.

The recorder, the transport and the firmware simulators never call :func:`time.time`
themselves: they take a :class:`Clock`. :class:`SystemClock` reads the host; :class:`FakeClock`
is advanced by hand or by a simulator, so a whole night replays in seconds with realistic
receive times.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "FakeClock", "SystemClock", "datetime_from_ns", "ns_from_datetime"]


@runtime_checkable
class Clock(Protocol):
    """What every component needs from a clock."""

    def now_ns(self) -> int:
        """Wall-clock time, nanoseconds since the Unix epoch (UTC). May jump."""
        ...

    def monotonic_ns(self) -> int:
        """Monotonic time in nanoseconds; never goes backwards."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        ...


class SystemClock:
    """The host's clocks."""

    def now_ns(self) -> int:
        return time.time_ns()

    def monotonic_ns(self) -> int:
        return time.monotonic_ns()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class FakeClock:
    """A clock that only moves when told to.

    ``sleep`` advances the clock and yields to the event loop once, so code that waits on this
    clock runs as fast as the CPU allows while seeing consistent times.

    Parameters
    ----------
    start : datetime
        Timezone-aware wall-clock start.
    """

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            msg = "FakeClock needs a timezone-aware start time"
            raise ValueError(msg)
        self._wall0_ns = ns_from_datetime(start)
        self._elapsed_ns = 0
        self._wall_offset_ns = 0

    def now_ns(self) -> int:
        return self._wall0_ns + self._elapsed_ns + self._wall_offset_ns

    def monotonic_ns(self) -> int:
        return self._elapsed_ns

    def advance(self, seconds: float) -> None:
        """Move both clocks forward by ``seconds`` (must be >= 0)."""
        if seconds < 0:
            msg = f"cannot advance a clock by a negative amount ({seconds} s)"
            raise ValueError(msg)
        self._elapsed_ns += round(seconds * 1e9)

    def jump_wall(self, seconds: float) -> None:
        """Step only the wall clock (an NTP step or a DST mistake); monotonic time is unchanged."""
        self._wall_offset_ns += round(seconds * 1e9)

    async def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)


def datetime_from_ns(ns: int) -> datetime:
    """Unix nanoseconds to a UTC datetime (microsecond resolution)."""
    return datetime.fromtimestamp(ns // 1000 / 1e6, tz=UTC)


def ns_from_datetime(dt: datetime) -> int:
    """A timezone-aware datetime to Unix nanoseconds."""
    if dt.tzinfo is None:
        msg = f"naive datetime {dt.isoformat()} has no timezone"
        raise ValueError(msg)
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
