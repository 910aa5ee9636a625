"""The column layout of detected events, shared by every detection stage.

``EVENT_ROW_SCHEMA`` is what a stage produces (times in seconds from the recording start);
``EVENT_SCHEMA`` adds the wall-clock ``onset``/``offset`` columns that
:func:`~crampsense.detection.detect_cramps` fills from the recording's start time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import polars as pl

__all__ = ["EVENT_ROW_SCHEMA", "EVENT_SCHEMA"]

SchemaMap = Mapping[str, pl.DataType | type[pl.DataType]]

#: One event as a stage emits it.
EVENT_ROW_SCHEMA: Final[SchemaMap] = {
    "onset_s": pl.Float64,
    "offset_s": pl.Float64,
    "duration_s": pl.Float64,
    "leg": pl.String,
    "channels": pl.List(pl.String),
    "peak_rel": pl.Float64,
    "mean_rel": pl.Float64,
    "severity": pl.String,
    "confidence": pl.Float64,
    "kind": pl.String,
    "evidence": pl.String,
    "woke": pl.Boolean,
    "got_up": pl.Boolean,
    "stretched": pl.Boolean,
}

_TIMES: Final[SchemaMap] = {"onset": pl.Datetime("us", "UTC"), "offset": pl.Datetime("us", "UTC")}

#: ``CrampResults.events``: the row schema with the wall-clock times after ``duration_s``.
EVENT_SCHEMA: Final[SchemaMap] = {
    **{k: v for k, v in EVENT_ROW_SCHEMA.items() if k in ("onset_s", "offset_s", "duration_s")},
    **_TIMES,
    **{k: v for k, v in EVENT_ROW_SCHEMA.items()
       if k not in ("onset_s", "offset_s", "duration_s")},
}
