"""The project's own journal: intake, activity, medication and self-reported cramps.

A journal is a plain UTF-8 text file, one entry per line, written by hand at the bedside or by
``crampsense log``. The grammar is documented in ``docs/journal.md``; in short::

    # comments start with '#', blank lines are ignored
    2026-11-20 07:45        water 500 ml
    2026-11-20 12:30+01:00  magnesium citrate 300 mg
    2026-11-20 17:10        exercise run 45 min 10 km "easy, hilly"
    2026-11-21 07:10        cramp left calf 3 min severe "woke at 3, had to stand"

Every amount is normalised to one unit per kind when parsed (:data:`KIND_UNITS`), so the
summaries never convert anything. Times without an offset are wall time in the ``tz`` passed
to :func:`parse_journal`; lines written by :func:`append_entry` always carry their offset.

Writing is append-only: :func:`append_entry` validates the entry by formatting it and reading
it back *before* it touches the file, then appends one line and fsyncs. Existing lines are
never rewritten, so a bad entry cannot corrupt or drop what is already stored.
"""

from __future__ import annotations

import difflib
import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from importlib import resources
from pathlib import Path
from typing import Final

import polars as pl

from crampsense.errors import JournalError, StorageError
from crampsense.storage.files import append_line_durable

__all__ = [
    "CAFFEINE_MG_PER_CUP",
    "ETHANOL_G_PER_DRINK",
    "KINDS",
    "KIND_UNITS",
    "MAX_AMOUNT_PER_ENTRY",
    "JournalEntry",
    "append_entry",
    "entries_frame",
    "example_journal_text",
    "format_entry",
    "parse_journal",
    "parse_journal_partial",
    "parse_log_args",
    "read_journal",
    "read_journal_partial",
]

logger = logging.getLogger(__name__)

#: Milligrams of caffeine in one "cup": an 8 fl oz (237 ml) cup of brewed coffee holds about
#: 95 mg (USDA FoodData Central, "Beverages, coffee, brewed"). Log mg for tea or espresso.
CAFFEINE_MG_PER_CUP: Final = 95.0
#: Grams of ethanol in one standard drink. The US definition (NIAAA) is 14 g; the UK unit is
#: 8 g and Australia's standard drink 10 g, so people outside the US should log drinks or g.
ETHANOL_G_PER_DRINK: Final = 14.0
#: Millilitres in one US fluid ounce (21 CFR 101.9(b)(5)(viii) rounds to 30; this is exact).
ML_PER_FL_OZ: Final = 29.5735295625
#: Kilometres in one statute mile.
KM_PER_MILE: Final = 1.609344
#: Normalised amounts are rounded to this many decimals, far below any meaningful intake, so
#: that a formatted line reads back as exactly the same number.
AMOUNT_DECIMALS: Final = 3
#: A bare ``HH:MM`` given to ``crampsense log`` that would lie more than this far in the future
#: means that time *yesterday* (``21:30`` logged at 00:40 is last evening). Five minutes absorbs
#: a clock that runs a little ahead of the person's watch.
FUTURE_TOLERANCE: Final = timedelta(minutes=5)

#: The unit every kind is normalised to (``None``: the kind carries no amount).
KIND_UNITS: Final[dict[str, str | None]] = {
    "water": "ml",
    "magnesium": "mg",
    "potassium": "mg",
    "calcium": "mg",
    "sodium": "mg",
    "caffeine": "mg",
    "alcohol": "drinks",
    "medication": None,  # unit depends on the dose form: mg, ml, IU or tablet
    "exercise": "min",
    "steps": "steps",
    "note": None,
    "cramp": "s",
    "symptom": None,
}
KINDS: Final[tuple[str, ...]] = tuple(KIND_UNITS)
#: The most one entry may hold, in the kind's unit: far above any real intake in one sitting,
#: so only slips of the keyboard (an extra zero or five) are refused. Water: 10 l (fatal
#: hyponatraemia has followed less); electrolytes: 20 g; caffeine: 3 g (a lethal dose is
#: about 10 g, severe toxicity from about 1.2 g); alcohol: 30 standard drinks.
MAX_AMOUNT_PER_ENTRY: Final[dict[str, float]] = {
    "water": 10_000.0,
    "magnesium": 20_000.0,
    "potassium": 20_000.0,
    "calcium": 20_000.0,
    "sodium": 20_000.0,
    "caffeine": 3_000.0,
    "alcohol": 30.0,
}
_NEGATIVE_RE: Final = re.compile(r"^-(?:\d+(?:[.,]\d+)?|[.,]\d+)[a-zA-Zµ_]*$")

_WATER_UNITS: Final[dict[str, float]] = {
    "ml": 1.0, "milliliter": 1.0, "milliliters": 1.0, "millilitre": 1.0, "millilitres": 1.0,
    "l": 1000.0, "liter": 1000.0, "liters": 1000.0, "litre": 1000.0, "litres": 1000.0,
    "fl_oz": ML_PER_FL_OZ, "floz": ML_PER_FL_OZ,
}
_MASS_MG_UNITS: Final[dict[str, float]] = {
    "mg": 1.0, "g": 1000.0, "mcg": 0.001, "µg": 0.001, "ug": 0.001,
}
_CAFFEINE_UNITS: Final[dict[str, float]] = {
    **_MASS_MG_UNITS, "cup": CAFFEINE_MG_PER_CUP, "cups": CAFFEINE_MG_PER_CUP,
}
_ALCOHOL_UNITS: Final[dict[str, float]] = {
    "drink": 1.0, "drinks": 1.0, "g": 1.0 / ETHANOL_G_PER_DRINK,
}
_DURATION_MIN_UNITS: Final[dict[str, float]] = {
    "s": 1 / 60, "sec": 1 / 60, "secs": 1 / 60, "second": 1 / 60, "seconds": 1 / 60,
    "min": 1.0, "mins": 1.0, "minute": 1.0, "minutes": 1.0,
    "h": 60.0, "hr": 60.0, "hrs": 60.0, "hour": 60.0, "hours": 60.0,
}
_DISTANCE_KM_UNITS: Final[dict[str, float]] = {
    "km": 1.0, "m": 0.001, "mi": KM_PER_MILE, "mile": KM_PER_MILE, "miles": KM_PER_MILE,
}
# Medication doses: (normalised unit, factor). Mass goes to mg; other forms keep their unit.
_DOSE_UNITS: Final[dict[str, tuple[str, float]]] = {
    **{u: ("mg", f) for u, f in _MASS_MG_UNITS.items()},
    "ml": ("ml", 1.0),
    "iu": ("IU", 1.0),
    **dict.fromkeys(
        ("tablet", "tablets", "tab", "tabs", "pill", "pills", "capsule", "capsules"),
        ("tablet", 1.0),
    ),
}
# What each amount-carrying kind accepts, and how the error message names the choices.
_QUANTITY_KINDS: Final[dict[str, tuple[dict[str, float], str]]] = {
    "water": (_WATER_UNITS, "ml, l or fl_oz"),
    "magnesium": (_MASS_MG_UNITS, "mg or g"),
    "potassium": (_MASS_MG_UNITS, "mg or g"),
    "calcium": (_MASS_MG_UNITS, "mg or g"),
    "sodium": (_MASS_MG_UNITS, "mg or g"),
    "caffeine": (_CAFFEINE_UNITS, f"mg, g or cups (1 cup = {CAFFEINE_MG_PER_CUP:g} mg)"),
    "alcohol": (_ALCOHOL_UNITS, f"drinks or g (1 drink = {ETHANOL_G_PER_DRINK:g} g ethanol)"),
}
_EXAMPLES: Final[dict[str, str]] = {
    "water": "water 500 ml",
    "magnesium": "magnesium 300 mg",
    "potassium": "potassium 400 mg",
    "calcium": "calcium 500 mg",
    "sodium": "sodium 1 g",
    "caffeine": "caffeine coffee 2 cups",
    "alcohol": "alcohol wine 1 drink",
    "medication": "medication atorvastatin 20 mg",
    "exercise": "exercise run 45 min 10 km",
    "steps": "steps 8400",
    "note": 'note "pizza for dinner"',
    "cramp": "cramp left calf 3 min severe",
    "symptom": "symptom numbness left foot",
}
CRAMP_LEGS: Final[tuple[str, ...]] = ("left", "right", "both")
CRAMP_SITES: Final[tuple[str, ...]] = (
    "calf", "foot", "toes", "shin", "thigh", "hamstring", "quadriceps", "leg",
)
SEVERITIES: Final[tuple[str, ...]] = ("mild", "moderate", "severe")

_NUMBER_RE: Final = re.compile(r"^(?:\d+(?:\.\d+)?|\.\d+)$")
_NUMBER_UNIT_RE: Final = re.compile(r"^(\d+(?:\.\d+)?|\.\d+)([a-zA-Zµ_]+)$")
_DECIMAL_COMMA_RE: Final = re.compile(r"^\d+,\d+[a-zA-Zµ_]*$")
_DATE_RE: Final = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIME_RE: Final = re.compile(
    r"^(?P<h>\d{1,2}):(?P<m>\d{2})(?::(?P<s>\d{2}))?(?P<off>Z|[+-]\d{2}:?\d{2})?$"
)
_OFFSET_RE: Final = re.compile(r"^(?:Z|[+-]\d{2}:?\d{2})$")
_TOKEN_RE: Final = re.compile(r'"((?:[^"\\]|\\.)*)"|(#.*)|([^\s"]+)|(")', re.DOTALL)
_ESCAPE_RE: Final = re.compile(r"\\(.)")


@dataclass(frozen=True)
class JournalEntry:
    """One journal line, with its amount already in the kind's unit.

    Attributes
    ----------
    time : datetime
        Timezone-aware time of the entry (the offset it was written with, or the reader's tz).
    kind : str
        One of :data:`KINDS`.
    amount : float or None
        Amount in ``unit``: ml water, mg minerals and caffeine, standard drinks of alcohol,
        minutes of exercise, steps, seconds of a self-reported cramp, the medication dose.
    unit : str or None
        :data:`KIND_UNITS` of the kind (medication: ``mg``, ``ml``, ``IU`` or ``tablet``).
    name : str or None
        What: the drink or product (``"coffee"``), medication name, exercise kind (``"run"``),
        cramp site (``"left calf"``), symptom words (``"numbness left foot"``).
    note : str or None
        Free text (the quoted part of a line; the whole text of a ``note`` entry).
    line : int or None
        1-based line number in the file it was read from; ``None`` for new entries.
    distance_km : float or None
        Exercise distance, when logged (km).
    severity : str or None
        Self-reported cramp severity: ``"mild"``, ``"moderate"`` or ``"severe"``.
    """

    time: datetime
    kind: str
    amount: float | None
    unit: str | None
    name: str | None
    note: str | None
    line: int | None = None
    distance_km: float | None = None
    severity: str | None = None


# --------------------------------------------------------------------------- parsing helpers


def _tokenize(text: str) -> tuple[list[str], str | None]:
    """Split a line body into bare words and the one quoted note.

    ``#`` at the start of a word begins a comment. A quoted note may hold ``\\"`` and ``\\\\``
    escapes and must be the last thing on the line.
    """
    words: list[str] = []
    note: str | None = None
    for match in _TOKEN_RE.finditer(text):
        quoted, comment, word, stray = match.groups()
        if comment is not None:
            break
        if stray is not None:
            raise JournalError(
                "unterminated quote; close the note with a double quote (\") or remove it"
            )
        if note is not None:
            extra = word if word is not None else f'"{quoted}"'
            raise JournalError(
                f"unexpected {extra!r} after the quoted note; the note must come last"
            )
        if quoted is not None:
            note = _ESCAPE_RE.sub(r"\1", quoted)
        elif word is not None:
            words.append(word)
    return words, note


def _parse_number(token: str, what: str) -> float:
    if _DECIMAL_COMMA_RE.match(token):
        raise JournalError(
            f"number {token!r} for {what} uses a comma; write decimals with a point, "
            f"e.g. {token.replace(',', '.')}"
        )
    if not _NUMBER_RE.match(token):
        raise JournalError(f"expected a number for {what}, got {token!r}")
    return float(token)


def _is_number(token: str) -> bool:
    return bool(_NUMBER_RE.match(token) or _DECIMAL_COMMA_RE.match(token))


def _split_attached_units(words: list[str]) -> list[str]:
    """``500ml`` -> ``500 ml`` (people write both)."""
    out: list[str] = []
    for word in words:
        m = _NUMBER_UNIT_RE.match(word)
        if m:
            out.extend(m.groups())
        else:
            out.append(word)
    return out


def _round(value: float) -> float:
    return round(value, AMOUNT_DECIMALS)


def _unit_factor(unit: str, units: dict[str, float], kind: str, allowed: str) -> float:
    factor = units.get(unit.lower())
    if factor is None:
        raise JournalError(f"unknown unit {unit!r} for {kind}; use {allowed}")
    return factor


def _name_or_none(words: Sequence[str]) -> str | None:
    return " ".join(words) if words else None


def _first_number(words: Sequence[str]) -> int | None:
    return next((i for i, w in enumerate(words) if _is_number(w)), None)


def _trailing(kind: str, words: Sequence[str], after: str) -> JournalError:
    return JournalError(
        f"unexpected {' '.join(words)!r} after {after!r} in a {kind} entry; "
        'put free text in double quotes, e.g. "felt fine"'
    )


@dataclass(frozen=True)
class _Body:
    amount: float | None = None
    unit: str | None = None
    name: str | None = None
    note: str | None = None
    distance_km: float | None = None
    severity: str | None = None


def _parse_quantity(kind: str, words: list[str], note: str | None) -> _Body:
    units, allowed = _QUANTITY_KINDS[kind]
    i = _first_number(words)
    negative = next((w for w in words if _NEGATIVE_RE.match(w)), None)
    if negative is not None and (i is None or words.index(negative) < i):
        raise JournalError(
            f"amounts cannot be negative ({negative}); log what you had, e.g. "
            f"'{_EXAMPLES[kind]}'"
        )
    if i is None:
        raise JournalError(f"{kind} needs an amount and a unit, e.g. '{_EXAMPLES[kind]}'")
    value = _parse_number(words[i], kind)
    if i + 1 >= len(words):
        raise JournalError(f"missing unit after {words[i]} for {kind}; use {allowed}")
    factor = _unit_factor(words[i + 1], units, kind, allowed)
    if i + 2 < len(words):
        raise _trailing(kind, words[i + 2:], f"{words[i]} {words[i + 1]}")
    amount = _round(value * factor)
    most = MAX_AMOUNT_PER_ENTRY[kind]
    if amount > most:
        raise JournalError(
            f"{words[i]} {words[i + 1]} of {kind} in one entry is more than "
            f"{most:g} {KIND_UNITS[kind]}; check the amount (a typo?)"
        )
    return _Body(
        amount=amount, unit=KIND_UNITS[kind], name=_name_or_none(words[:i]), note=note,
    )


def _parse_medication(words: list[str], note: str | None) -> _Body:
    i = _first_number(words)
    name_words = words if i is None else words[:i]
    if not name_words:
        raise JournalError(
            "medication needs a name before the dose, e.g. 'medication atorvastatin 20 mg'"
        )
    if i is None:
        return _Body(name=" ".join(name_words), note=note)
    value = _parse_number(words[i], "the medication dose")
    allowed = "mg, g, mcg, ml, IU or tablets"
    if i + 1 >= len(words):
        raise JournalError(f"missing unit after the dose {words[i]}; use {allowed}")
    spec = _DOSE_UNITS.get(words[i + 1].lower())
    if spec is None:
        raise JournalError(f"unknown unit {words[i + 1]!r} for medication; use {allowed}")
    if i + 2 < len(words):
        raise _trailing("medication", words[i + 2:], f"{words[i]} {words[i + 1]}")
    unit, factor = spec
    return _Body(amount=_round(value * factor), unit=unit, name=" ".join(name_words), note=note)


def _parse_exercise(words: list[str], note: str | None) -> _Body:
    i = _first_number(words)
    if i is None:
        raise JournalError(
            f"exercise needs a duration, e.g. '{_EXAMPLES['exercise']}'"
        )
    name = _name_or_none(words[:i])
    minutes: float | None = None
    km: float | None = None
    rest = words[i:]
    while rest:
        if not _is_number(rest[0]):
            raise _trailing("exercise", rest, " ".join(words[:-len(rest)]))
        value = _parse_number(rest[0], "exercise")
        if len(rest) < 2:
            raise JournalError(
                f"missing unit after {rest[0]} for exercise; use min or h for the duration "
                "and km, m or mi for the distance"
            )
        unit = rest[1].lower()
        if unit in _DURATION_MIN_UNITS and minutes is None:
            minutes = value * _DURATION_MIN_UNITS[unit]
        elif unit in _DISTANCE_KM_UNITS and km is None:
            km = value * _DISTANCE_KM_UNITS[unit]
        elif unit in _DURATION_MIN_UNITS or unit in _DISTANCE_KM_UNITS:
            what = "durations" if unit in _DURATION_MIN_UNITS else "distances"
            raise JournalError(f"exercise has two {what}; give one duration and one distance")
        else:
            raise JournalError(
                f"unknown unit {rest[1]!r} for exercise; use min or h for the duration "
                "and km, m or mi for the distance"
            )
        rest = rest[2:]
    if minutes is None:
        raise JournalError(
            f"exercise needs a duration as well as a distance, e.g. '{_EXAMPLES['exercise']}'"
        )
    return _Body(
        amount=_round(minutes), unit="min", name=name, note=note,
        distance_km=None if km is None else _round(km),
    )


def _parse_steps(words: list[str], note: str | None) -> _Body:
    if not words:
        raise JournalError("steps needs a count, e.g. 'steps 8400'")
    count = words[0]
    if "," in count and count.replace(",", "").isdigit():
        plain = count.replace(",", "")
        raise JournalError(f"write the step count {count!r} without separators, e.g. {plain}")
    if not count.isdigit():
        raise JournalError(f"steps needs a whole number, got {count!r}; e.g. 'steps 8400'")
    extra = words[1:]
    if extra and extra[0].lower() in ("step", "steps"):
        extra = extra[1:]
    if extra:
        raise _trailing("steps", extra, count)
    return _Body(amount=float(int(count)), unit="steps", note=note)


def _parse_cramp(words: list[str], note: str | None) -> _Body:
    leg: str | None = None
    site: str | None = None
    severity: str | None = None
    seconds: float | None = None
    k = 0
    while k < len(words):
        word = words[k].lower()
        if word in CRAMP_LEGS and leg is None:
            leg = word
        elif word in CRAMP_SITES and site is None:
            site = word
        elif word in SEVERITIES and severity is None:
            severity = word
        elif _is_number(word) and seconds is None:
            value = _parse_number(word, "the cramp duration")
            if k + 1 >= len(words) or words[k + 1].lower() not in _DURATION_MIN_UNITS:
                got = repr(words[k + 1]) if k + 1 < len(words) else "nothing"
                raise JournalError(
                    f"cramp duration {word} needs a unit s, min or h, got {got}"
                )
            seconds = value * _DURATION_MIN_UNITS[words[k + 1].lower()] * 60.0
            k += 1
        else:
            raise JournalError(
                f"unexpected {words[k]!r} in a cramp entry; write leg ({', '.join(CRAMP_LEGS)}), "
                f"site ({', '.join(CRAMP_SITES)}), duration (3 min) and severity "
                f"({', '.join(SEVERITIES)}), each at most once, and free text in double quotes"
            )
        k += 1
    name = " ".join(w for w in (leg, site) if w is not None) or None
    return _Body(
        amount=None if seconds is None else _round(seconds),
        unit=None if seconds is None else "s",
        name=name, note=note, severity=severity,
    )


def _parse_symptom(words: list[str], note: str | None) -> _Body:
    if not words:
        raise JournalError("symptom needs words, e.g. 'symptom numbness left foot'")
    return _Body(name=" ".join(words), note=note)


def _parse_note(words: list[str], note: str | None) -> _Body:
    text = " ".join([*words, *([note] if note is not None else [])])
    if not text:
        raise JournalError("note needs text, e.g. 'note \"pizza for dinner\"'")
    return _Body(note=text)


_BODY_PARSERS: Final[dict[str, Callable[[list[str], str | None], _Body]]] = {
    "medication": _parse_medication,
    "exercise": _parse_exercise,
    "steps": _parse_steps,
    "cramp": _parse_cramp,
    "symptom": _parse_symptom,
    "note": _parse_note,
}


def _parse_body(words: list[str], note: str | None) -> tuple[str, _Body]:
    """Parse ``kind args... ["note"]`` (the part of a line after its time)."""
    if not words:
        raise JournalError(
            f"missing the kind after the time; use one of {', '.join(KINDS)}"
        )
    kind = words[0].lower()
    if kind not in KIND_UNITS:
        close = difflib.get_close_matches(kind, KINDS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise JournalError(f"unknown kind {words[0]!r}; {hint}use one of {', '.join(KINDS)}")
    args = _split_attached_units(words[1:])
    if kind in _QUANTITY_KINDS:
        return kind, _parse_quantity(kind, args, note)
    return kind, _BODY_PARSERS[kind](args, note)


def _parse_offset(text: str) -> timezone:
    if text == "Z":
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:])
    if hours > 23 or minutes > 59:
        raise JournalError(f"invalid UTC offset {text!r}; write +HH:MM, e.g. +01:00")
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _parse_date(token: str) -> date:
    if not _DATE_RE.match(token):
        raise JournalError(f"expected a date YYYY-MM-DD at the start, got {token!r}")
    try:
        return date.fromisoformat(token)
    except ValueError as exc:
        raise JournalError(f"invalid date {token!r}; write a real date as YYYY-MM-DD") from exc


def _parse_clock(token: str, offset_token: str | None) -> tuple[time, timezone | None]:
    m = _TIME_RE.match(token)
    if not m:
        raise JournalError(f"expected a time HH:MM after the date, got {token!r}")
    hour, minute, second = int(m["h"]), int(m["m"]), int(m["s"] or 0)
    if hour > 23 or minute > 59 or second > 59:
        raise JournalError(f"invalid time {token!r}; hours 00-23, minutes 00-59")
    off = m["off"]
    if off is not None and offset_token is not None:
        raise JournalError(f"two UTC offsets ({off} and {offset_token}); write one")
    offset = off or offset_token
    return time(hour, minute, second), None if offset is None else _parse_offset(offset)


def _localize(day: date, clock: time, fixed: timezone | None, tz: tzinfo) -> datetime:
    """Attach the written offset, or ``tz``; refuse wall times that ``tz`` skips (DST)."""
    naive = datetime.combine(day, clock)
    if fixed is not None:
        return naive.replace(tzinfo=fixed)
    aware = naive.replace(tzinfo=tz)
    if aware.utcoffset() is None:
        raise JournalError(f"time zone {tz!r} gives no UTC offset; pass a zoneinfo.ZoneInfo")
    back = aware.astimezone(UTC).astimezone(tz)
    if back.replace(tzinfo=None) != naive:
        raise JournalError(
            f"{naive:%Y-%m-%d %H:%M} does not exist in {tz} (the clocks went forward); "
            "write the UTC offset, e.g. 02:30+01:00"
        )
    return aware


def _take_time(tokens: list[str]) -> tuple[str, str | None, list[str]]:
    """Split ``HH:MM[offset] [offset] rest...`` off a token list."""
    if not tokens:
        raise JournalError("expected a time HH:MM after the date")
    if len(tokens) > 1 and _OFFSET_RE.match(tokens[1]):
        return tokens[0], tokens[1], tokens[2:]
    return tokens[0], None, tokens[1:]


def _entry_from_line(text: str, tz: tzinfo, line: int | None) -> JournalEntry | None:
    """Parse one line; ``None`` for blank and comment lines. Raises bare JournalError."""
    words, note = _tokenize(text)
    if not words:
        if note is not None:
            raise JournalError("a line needs a date, time and kind before the quoted note")
        return None
    day = _parse_date(words[0])
    clock_token, offset_token, rest = _take_time(words[1:])
    clock, fixed = _parse_clock(clock_token, offset_token)
    when = _localize(day, clock, fixed, tz)
    kind, body = _parse_body(rest, note)
    return JournalEntry(
        time=when, kind=kind, amount=body.amount, unit=body.unit, name=body.name,
        note=body.note, line=line, distance_km=body.distance_km, severity=body.severity,
    )


# --------------------------------------------------------------------------- reading


def parse_journal_partial(
    text: str, *, tz: tzinfo, source: str = "journal"
) -> tuple[list[JournalEntry], list[JournalError]]:
    """Parse a journal, keeping every good line and collecting an error per bad line.

    For summaries that should still show what they can; :func:`parse_journal` is the strict
    form. Parameters and messages are as in :func:`parse_journal`.

    Returns
    -------
    entries : list of JournalEntry
        The good lines, in file order.
    errors : list of JournalError
        One per bad line, each with ``line`` set and a message ``"<source> line N: ..."``.
    """
    entries: list[JournalEntry] = []
    errors: list[JournalError] = []
    # Split on "\n" only: str.splitlines would also break at U+2028, form feeds and the like,
    # which may sit inside a note.
    for number, raw in enumerate(text.removeprefix("\ufeff").split("\n"), start=1):
        try:
            entry = _entry_from_line(raw.removesuffix("\r"), tz, number)
        except JournalError as exc:
            errors.append(JournalError(f"{source} line {number}: {exc}", line=number))
            continue
        if entry is not None:
            entries.append(entry)
    return entries, errors


def parse_journal(text: str, *, tz: tzinfo, source: str = "journal") -> list[JournalEntry]:
    """Parse journal text into entries (grammar: ``docs/journal.md``).

    Parameters
    ----------
    text : str
        The whole file. Blank lines and ``#`` comments are skipped.
    tz : tzinfo
        Time zone of lines written without a UTC offset (the person's local zone).
    source : str
        Name used in error messages (``"journal.txt"``).

    Returns
    -------
    list of JournalEntry
        In file order (not sorted by time), each with its ``line`` number.

    Raises
    ------
    JournalError
        At the first bad line, with ``line`` set and a message such as
        ``"journal.txt line 12: unknown unit 'lbs' for water; use ml, l or fl_oz"``.

    Examples
    --------
    >>> from datetime import UTC
    >>> [e] = parse_journal("2026-11-20 07:45 water 0.5 l", tz=UTC)
    >>> (e.kind, e.amount, e.unit, e.time.isoformat())
    ('water', 500.0, 'ml', '2026-11-20T07:45:00+00:00')
    """
    entries, errors = parse_journal_partial(text, tz=tz, source=source)
    if errors:
        raise errors[0]
    return entries


def read_journal(path: Path, *, tz: tzinfo) -> list[JournalEntry]:
    """Read and parse a journal file; a missing file is an empty journal.

    Raises
    ------
    JournalError
        If the file exists but cannot be read (permissions, a directory, not UTF-8), or a
        line does not parse (the message names the file and the line).
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise JournalError(
            f"cannot read journal {path}: {exc.strerror or exc}; check that it is a readable file"
        ) from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise JournalError(
            f"{path} line {line}: not UTF-8 text (byte {exc.start}); save the journal as UTF-8",
            line=line,
        ) from exc
    return parse_journal(text, tz=tz, source=str(path))


def read_journal_partial(
    path: Path, *, tz: tzinfo, must_exist: bool = False
) -> tuple[list[JournalEntry], list[JournalError]]:
    """Read a journal keeping every good line; one error per bad line (for summaries).

    A summary shows what it can: a bad line is skipped and reported, it does not hide the
    night. A file that cannot be read at all still raises.

    Parameters
    ----------
    path : Path
    tz : tzinfo
    must_exist : bool
        ``True`` when the person named the file: a missing file is then an error (a typo must
        not read as an empty journal); ``False`` for the default journal, which may not exist
        yet.

    Raises
    ------
    JournalError
        The file cannot be read, is not UTF-8, or (``must_exist``) does not exist.
    """
    if must_exist and not path.exists():
        raise JournalError(
            f"journal {path} does not exist; check the path (the default journal is "
            "<data dir>/journal.txt)"
        )
    try:
        return read_journal(path, tz=tz), []
    except JournalError as exc:
        if exc.line is None:
            raise
        try:
            text = path.read_bytes().decode("utf-8-sig")
        except (OSError, UnicodeDecodeError):
            raise exc from None
    return parse_journal_partial(text, tz=tz, source=str(path))


# --------------------------------------------------------------------------- writing


def _fmt_number(value: float) -> str:
    text = f"{value:.{AMOUNT_DECIMALS}f}".rstrip("0").rstrip(".")
    return text or "0"


def _fmt_offset(when: datetime) -> str:
    offset = when.utcoffset()
    if offset is None:
        raise JournalError(
            f"entry time {when.isoformat()} has no time zone; give it a tzinfo"
        )
    total_min = round(offset.total_seconds() / 60)
    sign = "-" if total_min < 0 else "+"
    hours, minutes = divmod(abs(total_min), 60)
    return f"{sign}{hours:02d}:{minutes:02d}"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_entry(entry: JournalEntry) -> str:
    """Format an entry as one journal line (no newline), with an explicit UTC offset.

    Amounts are written in the kind's normalised unit, so reading the line back gives the same
    entry (:func:`append_entry` checks this before writing).

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> format_entry(JournalEntry(datetime(2026, 11, 20, 17, 10, tzinfo=UTC), "exercise",
    ...                           45.0, "min", "run", "easy", distance_km=10.0))
    '2026-11-20 17:10+00:00  exercise run 45 min 10 km "easy"'
    """
    when = entry.time
    clock = f"{when:%H:%M}" if when.second == 0 else f"{when:%H:%M:%S}"
    parts: list[str] = [entry.kind]
    if entry.kind == "note":
        return f"{when:%Y-%m-%d} {clock}{_fmt_offset(when)}  note {_quote(entry.note or '')}"
    parts += [entry.name] if entry.name else []
    if entry.kind == "cramp":
        if entry.amount is not None:
            whole_min = entry.unit == "s" and entry.amount >= 60 and entry.amount % 60 == 0
            parts += (
                [_fmt_number(entry.amount / 60), "min"] if whole_min
                else [_fmt_number(entry.amount), entry.unit or "s"]
            )
        parts += [entry.severity] if entry.severity else []
    elif entry.amount is not None:
        parts.append(_fmt_number(entry.amount))
        if entry.kind == "alcohol" and entry.unit == "drinks" and entry.amount == 1:
            parts.append("drink")
        elif entry.kind != "steps" and entry.unit:
            parts.append(entry.unit)
    if entry.distance_km is not None:
        parts += [_fmt_number(entry.distance_km), "km"]
    if entry.note is not None:
        parts.append(_quote(entry.note))
    return f"{when:%Y-%m-%d} {clock}{_fmt_offset(when)}  {' '.join(parts)}"


def _same(a: JournalEntry, b: JournalEntry) -> bool:
    """Equal apart from the line number (times compare as instants)."""
    return replace(a, line=None) == replace(b, line=None)


def _validate_for_writing(entry: JournalEntry) -> str:
    """Return the entry's line, or raise if it would not read back as the same entry."""
    if entry.amount is not None and not (math.isfinite(entry.amount) and entry.amount >= 0):
        raise JournalError(
            f"cannot log {entry.kind} amount {entry.amount!r}; amounts are finite and not "
            "negative"
        )
    for label, text in (("name", entry.name), ("note", entry.note)):
        if text is not None and ("\n" in text or "\r" in text):
            raise JournalError(f"cannot log a {label} with a line break ({text!r}); use one line")
    if entry.name is not None and ('"' in entry.name or "#" in entry.name):
        raise JournalError(
            f"cannot log the name {entry.name!r}: names cannot hold '#' or double quotes; "
            "put such text in the note"
        )
    if entry.name is not None and (numbers := [w for w in entry.name.split() if _is_number(w)]):
        raise JournalError(
            f"cannot log the name {entry.name!r}: a number on its own ({numbers[0]}) would read "
            "as the amount; join it to a word (b12) or put it in the note"
        )
    line = format_entry(entry)
    try:
        back = _entry_from_line(line, UTC, None)
    except JournalError as exc:
        raise JournalError(f"cannot log {line.split('  ', 1)[-1]!r}: {exc}") from exc
    if back is None or not _same(back, replace(entry, time=entry.time.replace(microsecond=0))):
        raise JournalError(
            f"cannot log {entry.kind} entry: it would read back differently as {line!r}; "
            f"write amounts in {KIND_UNITS.get(entry.kind) or 'the dose unit'} and keep "
            "numbers out of names"
        )
    return line


def append_entry(path: Path, entry: JournalEntry) -> None:
    """Append one entry to a journal file as a formatted line, and fsync it.

    The entry is validated first (formatted and read back); nothing is written if it would not
    read back as the same entry. Existing bytes are never rewritten: if the file lacks a final
    newline one is added before the new line. A new file is created 0600 and new directories
    0700; an existing file is set to 0600.

    Raises
    ------
    JournalError
        If the entry is invalid, or the file cannot be written (the file is left as it was,
        apart from, at worst, the one incomplete new line on a full disk).
    """
    line = _validate_for_writing(entry)
    try:
        append_line_durable(path, line.encode("utf-8"))
    except StorageError as exc:
        reason = str(exc).replace(f"cannot append to {path}", f"cannot append to journal {path}")
        raise JournalError(f"{reason}; then log the entry again") from exc
    logger.debug("appended journal line to %s: %s", path, line)


# --------------------------------------------------------------------------- crampsense log


def _resolve_time(spec: Sequence[str], now: datetime) -> datetime:
    """``[today|yesterday|YYYY-MM-DD] HH:MM[offset] [offset]`` relative to ``now``."""
    tokens = list(spec)
    if not tokens:
        raise JournalError("empty time; write HH:MM, 'yesterday HH:MM' or 'YYYY-MM-DD HH:MM'")
    tz = now.tzinfo
    if tz is None:
        raise JournalError("the current time has no time zone; this is a bug, please report it")
    explicit_day: date | None = None
    first = tokens[0].lower()
    if first in ("today", "yesterday"):
        explicit_day = now.date() - timedelta(days=1 if first == "yesterday" else 0)
        tokens = tokens[1:]
    elif _DATE_RE.match(tokens[0]):
        explicit_day = _parse_date(tokens[0])
        tokens = tokens[1:]
    clock_token, offset_token, rest = _take_time(tokens)
    if rest:
        raise JournalError(f"unexpected {' '.join(rest)!r} in the time; write HH:MM")
    clock, fixed = _parse_clock(clock_token, offset_token)
    day = explicit_day or now.date()
    when = _localize(day, clock, fixed, tz)
    if explicit_day is None and when > now + FUTURE_TOLERANCE:
        when = _localize(day - timedelta(days=1), clock, fixed, tz)
    if when > now + FUTURE_TOLERANCE:
        raise JournalError(
            f"time {when:%Y-%m-%d %H:%M} is in the future; log things that already happened"
        )
    return when


def _is_time_word(token: str) -> bool:
    """Whether a word starts a time spec (it may hold the whole spec: ``"yesterday 21:30"``)."""
    first = token.split(maxsplit=1)[0] if token.strip() else ""
    return bool(_TIME_RE.match(first) or _DATE_RE.match(first)) or first.lower() in (
        "today", "yesterday"
    )


def _leading_time_len(words: Sequence[str]) -> int:
    """How many leading words form a time spec (0 if none)."""
    n = 0
    if words and (words[0].lower() in ("today", "yesterday") or _DATE_RE.match(words[0])):
        n = 1
    if len(words) > n and _TIME_RE.match(words[n]):
        n += 1
        if len(words) > n and _OFFSET_RE.match(words[n]):
            n += 1
        return n
    return 0


def parse_log_args(
    args: Sequence[str],
    *,
    now: datetime,
    at: str | None = None,
    note: str | None = None,
) -> JournalEntry:
    """Parse the words of ``crampsense log ...`` into one entry (nothing is written).

    The words are a journal line without its date and time: ``water 500 ml``,
    ``exercise run 45 min 10 km``, ``cramp left calf 3 min severe``. The time is, in order of
    precedence:

    - ``at`` (the CLI's ``--at``), or trailing words ``at TIME`` / ``--at TIME``
      (``--at=TIME``), or leading words ``TIME``: each a time spec
      ``[today|yesterday|YYYY-MM-DD] HH:MM[+HH:MM]``; only one may be given;
    - otherwise ``now``, to the minute.

    A bare ``HH:MM`` later than ``now`` (beyond :data:`FUTURE_TOLERANCE`) means yesterday.
    Free text: a word containing spaces (the shell's quotes kept it together), a word in
    literal double quotes, or ``note=``. A single word holding the whole entry (``"water 500
    ml"``) is parsed as a journal line body, quotes included.

    Parameters
    ----------
    args : sequence of str
        The words after ``log``.
    now : datetime
        Timezone-aware current time; its zone is the zone of the entry.
    at : str, optional
        Time spec, as above.
    note : str, optional
        Free text for the entry.

    Raises
    ------
    JournalError
        For any bad word, with ``line=None``; the message starts ``cannot log '...'``.
    """
    words = list(args)
    shown = " ".join(words)
    try:
        return _parse_log_words(words, now=now, at=at, note=note)
    except JournalError as exc:
        raise JournalError(f"cannot log {shown!r}: {exc}") from exc


def _parse_log_words(
    words: list[str], *, now: datetime, at: str | None, note: str | None
) -> JournalEntry:
    if now.tzinfo is None or now.utcoffset() is None:
        raise JournalError("the current time has no time zone; this is a bug, please report it")
    notes: list[str] = [] if note is None else [note]
    if len(words) == 1 and any(ch.isspace() for ch in words[0].strip()):
        # the whole entry as one word: a journal line body, quotes included
        words, quoted = _tokenize(words[0])
        notes += [] if quoted is None else [quoted]
    for k, word in enumerate(words):  # --note TEXT / --note=TEXT, passed through by the CLI
        if word.startswith("--note="):
            notes.append(word[len("--note="):])
            words = words[:k] + words[k + 1:]
            break
        if word == "--note":
            if k + 1 >= len(words):
                raise JournalError("--note needs a text after it")
            notes.append(words[k + 1])
            words = words[:k] + words[k + 2:]
            break
    specs: list[list[str]] = [at.split()] if at is not None else []
    # trailing --at / at
    for k, word in enumerate(words):
        if word.startswith("--at="):
            specs.append(word[len("--at="):].split())
            words = words[:k]
            break
        if word in ("--at", "at") and k + 1 < len(words) and _is_time_word(words[k + 1]):
            specs.append(" ".join(words[k + 1:]).split())
            words = words[:k]
            break
    n_lead = _leading_time_len(words)
    if n_lead:
        specs.append(words[:n_lead])
        words = words[n_lead:]
    if len(specs) > 1:
        raise JournalError("more than one time given; give the time once")
    try:
        when = _resolve_time(specs[0], now) if specs else now.replace(second=0, microsecond=0)
    except JournalError as exc:
        if at is None:
            raise
        raise JournalError(
            f"--at {at!r} is not a time ({exc}); write HH:MM, 'yesterday HH:MM' or "
            "'YYYY-MM-DD HH:MM'"
        ) from exc

    body_words: list[str] = []
    for word in words:
        if len(word) >= 2 and word.startswith('"') and word.endswith('"'):
            notes.append(word[1:-1])
        elif any(ch.isspace() for ch in word):
            notes.append(word)
        else:
            body_words.append(word)
    if len(notes) > 1:
        raise JournalError("more than one note given; put all free text in one quoted note")
    kind, body = _parse_body(body_words, notes[0] if notes else None)
    entry = JournalEntry(
        time=when, kind=kind, amount=body.amount, unit=body.unit, name=body.name,
        note=body.note, line=None, distance_km=body.distance_km, severity=body.severity,
    )
    _validate_for_writing(entry)
    return entry


# --------------------------------------------------------------------------- tables

ENTRY_SCHEMA: Final = pl.Schema(
    {
        "time": pl.Datetime("us", "UTC"),
        "kind": pl.String(),
        "amount": pl.Float64(),
        "unit": pl.String(),
        "name": pl.String(),
        "note": pl.String(),
        "distance_km": pl.Float64(),
        "severity": pl.String(),
        "line": pl.Int64(),
    }
)


def entries_frame(entries: Sequence[JournalEntry]) -> pl.DataFrame:
    """Journal entries as a polars table, sorted by time.

    Returns
    -------
    polars.DataFrame
        Columns ``time`` (Datetime[us, UTC]), ``kind``, ``amount`` (Float64, in ``unit``),
        ``unit``, ``name``, ``note``, ``distance_km`` (Float64), ``severity``, ``line``
        (Int64, null for entries not read from a file). Empty input gives an empty table
        with this schema.
    """
    columns = {
        "time": [e.time.astimezone(UTC) for e in entries],
        "kind": [e.kind for e in entries],
        "amount": [e.amount for e in entries],
        "unit": [e.unit for e in entries],
        "name": [e.name for e in entries],
        "note": [e.note for e in entries],
        "distance_km": [e.distance_km for e in entries],
        "severity": [e.severity for e in entries],
        "line": [e.line for e in entries],
    }
    return pl.DataFrame(columns, schema=ENTRY_SCHEMA).sort("time", maintain_order=True)


def example_journal_text() -> str:
    """The bundled example journal (30 days ending 2026-11-20, times in UTC)."""
    return (
        resources.files("crampsense")
        .joinpath("data/example_journal.txt")
        .read_text(encoding="utf-8")
    )
