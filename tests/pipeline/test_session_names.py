"""Session file names: written by ``session_path_for``, read back by ``session_start_of``."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

from crampsense.models import night_label
from crampsense.pipeline.record import session_path_for, session_start_of


def test_every_name_session_path_for_writes_reads_back(tmp_path: Path) -> None:
    start = datetime(2026, 11, 20, 22, 30, 5, tzinfo=UTC)
    seen = []
    for _ in range(12):  # "-2" ... "-12" once the plain name is taken
        path = session_path_for(tmp_path, start)
        path.write_bytes(b"")
        seen.append(path.name)
        assert session_start_of(path) == start
    assert seen[1].endswith("-2.session")
    assert seen[11].endswith("-12.session")


def test_other_names_are_not_sessions() -> None:
    for name in ("notes.session", "2026-11-20.session", "x-2.session",
                 "2026-11-20T223005Z-two.session", "2026-13-40T223005Z.session"):
        assert session_start_of(Path(name)) is None


def test_a_night_is_labelled_by_the_evening_it_starts() -> None:
    cet = timezone(timedelta(hours=1))
    # 23:30 UTC is 00:30 the next day in CET: still the evening before's night
    assert night_label(datetime(2026, 11, 20, 23, 30, tzinfo=UTC), cet) == date(2026, 11, 20)
    assert night_label(datetime(2026, 11, 20, 21, 0, tzinfo=UTC), cet) == date(2026, 11, 20)
    assert night_label(datetime(2026, 11, 21, 11, 59, tzinfo=cet), cet) == date(2026, 11, 20)
    assert night_label(datetime(2026, 11, 21, 12, 0, tzinfo=cet), cet) == date(2026, 11, 21)
