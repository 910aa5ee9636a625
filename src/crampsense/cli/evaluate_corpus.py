"""Real-recording checks of ``crampsense evaluate``: public EMG recordings read in place.

The synthetic corpus lives in ``firmware_sims.night.corpus`` and its scoring in
:mod:`crampsense.detection.scoring`; printing is in :mod:`crampsense.cli.evaluate`.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np

__all__ = ["burst_checks", "find_data_dir", "hold_checks", "real_checks"]

# --- real recordings ---------------------------------------------------------------------------
#
# Read in place from ../shared/data (never copied into the repository); see its README for
# sources and licences: Silva et al. 2024 (CC0), PhysioNet emgdb (ODC-By 1.0), BioSPPy (BSD-3).

#: Sample rate of the lower-limb holds (Hz; dataset README).
HOLD_FS_HZ: Final = 2000.0
#: Quiet synthetic floor padded before and after each 10-s hold (s): the detector's floor needs
#: minutes of rest, a 10-s file has none.
REAL_PAD_S: Final = 60.0
#: The hold stands this many times above the padded floor: the middle of the 2-8x that night
#: cramps reached over baseline (DETECTION.md), chosen before looking at any result.
REAL_HOLD_CONTRAST: Final = 5.0
#: Activation onset must lie within this of the force onset (s) (issue 3).
ONSET_TOLERANCE_S: Final = 0.5
#: Force is smoothed over this long (s) before its onset is read: longer than the load cell's
#: sample noise, far shorter than the 0.3-1 s rise of a hold.
FORCE_SMOOTH_S: Final = 0.05
#: The force plateau is its median over this part of the 10-s hold (s).
FORCE_PLATEAU_S: Final = (3.0, 8.0)
#: Force onset = the last time before the force first reaches half its rise at which it was
#: still within this fraction of the rise above its pre-hold minimum.
FORCE_ONSET_FRACTION: Final = 0.1
#: A rise smaller than this (dNm) is not a hold onset inside the file.
FORCE_MIN_RISE_DNM: Final = 2.0
#: The onset is inside the file only if the force was still low this long after the start (s);
#: otherwise the recording began mid-rise and the file start is the only reference.
FORCE_MIN_REST_S: Final = 0.1
#: A hold is sustained if one activation covers at least this share of it (onset to file end).
SUSTAINED_FRACTION: Final = 0.8
#: The activation stage on real holds uses the detector's defaults except the minimum
#: duration: a 10-s hold whose force starts 1-2 s into the file is only 8-9 s long.
HOLD_MIN_DURATION_S: Final = 5.0
#: Bursts: the activation stage with this minimum duration (s) shows they are seen at all.
BURST_MIN_DURATION_S: Final = 0.5
#: (array, column, label): tibialis anterior is raw bipolar EMG during the shin hold; the
#: gastrocnemius column is an envelope (never negative, 2.44-unit steps) during the calf hold.
HOLDS: Final = (("emg_ta", 2, "shin TA"), ("emg_lg", 3, "calf GL"))
#: Reference band of the in-band RMS used to scale the padded floor (Hz; DETECTION.md).
REAL_BAND_HZ: Final = (20.0, 450.0)


def find_data_dir(explicit: Path | str | None = None) -> Path | None:
    """The shared real-data folder: ``explicit``, else ``<repo>/../shared/data``, else None.

    ``<repo>`` is the checkout holding this file (``/work/main`` -> ``/work/shared/data``).
    """
    if explicit is not None:
        p = Path(explicit)
        return p if p.is_dir() else None
    here = Path(__file__).resolve()
    for parent in here.parents:
        cand = parent.parent / "shared" / "data"
        if (parent / "pyproject.toml").exists() and cand.is_dir():
            return cand
    cwd = Path.cwd().parent / "shared" / "data"
    return cwd if cwd.is_dir() else None


def _band_rms(x: np.ndarray, fs_hz: float) -> float:
    from scipy import signal  # noqa: PLC0415

    sos = signal.butter(4, REAL_BAND_HZ, btype="bandpass", fs=fs_hz, output="sos")
    return float(np.sqrt(np.mean(signal.sosfiltfilt(sos, x) ** 2)))


def force_onset_s(force: np.ndarray, fs_hz: float) -> tuple[float | None, str]:
    """Hold onset from the load-cell force of one hold.

    Returns ``(onset_s, reference)``: ``reference`` is ``"force"`` when the file holds a rest
    before the rise, else ``onset_s`` is 0 and ``reference`` says why the file start is used.
    """
    f = np.asarray(force, dtype=np.float64)
    ok = np.isfinite(f)
    if ok.sum() < f.size // 2:
        return 0.0, "file start: force missing"
    f = np.interp(np.arange(f.size), np.flatnonzero(ok), f[ok])
    w = max(1, round(FORCE_SMOOTH_S * fs_hz))
    padded = np.pad(f, (w // 2, w - 1 - w // 2), mode="edge")  # no zero-padding dip at the ends
    sm = np.convolve(padded, np.ones(w) / w, mode="valid")
    a, b = (round(t * fs_hz) for t in FORCE_PLATEAU_S)
    plateau = float(np.median(sm[a:b]))
    reached = np.flatnonzero(sm[:a] >= plateau)
    low = float(sm[: int(reached[0]) if reached.size and reached[0] > 0 else a].min())
    rise = plateau - low
    if rise < FORCE_MIN_RISE_DNM:
        return 0.0, "file start: no rise"
    half = np.flatnonzero(sm >= low + 0.5 * rise)
    first_half = int(half[0]) if half.size else a
    quiet = np.flatnonzero(sm[:first_half] <= low + FORCE_ONSET_FRACTION * rise)
    if quiet.size == 0 or quiet[-1] < FORCE_MIN_REST_S * fs_hz:
        return 0.0, "file start: rising"
    return float(quiet[-1] + 1) / fs_hz, "force"


def _hold_signal(data: Any, array: str, column: int, rng: np.random.Generator) -> np.ndarray:
    x: np.ndarray = np.nan_to_num(np.asarray(data[array][:, column], dtype=np.float64))
    if array == "emg_lg":  # an envelope: give it an interference pattern of that amplitude
        x = rng.standard_normal(x.size) * x
    out: np.ndarray = x - x.mean()
    return out


def hold_checks(data_dir: Path) -> list[dict[str, Any]]:
    """Sustained calf and shin holds of Silva et al. 2024 through the activation stage.

    Each 10-s hold is padded with 60 s of white floor at 1/5 of the hold's in-band RMS on each
    side. The shin channel is raw EMG; the calf channel is an envelope (rectified and smoothed
    at source), so white noise is multiplied by it (an interference pattern of that
    amplitude): that check is model-based. The onset reference is the force onset when the file
    starts at rest, else the file start.

    Returns
    -------
    list of dict
        ``subject``, ``muscle``, ``reference``, ``force_onset_s``, ``spans``,
        ``activation_onset_s``, ``activation_end_s``, ``onset_error_s``, ``covered``,
        ``sustained``, ``onset_ok``, ``detector_events``, ``detector_onset_error_s``,
        ``passed`` (times in s from the start of the real data).
    """
    from crampsense.detection import (  # noqa: PLC0415
        DetectionParams,
        LegSignals,
        detect_cramps,
        emg_activation,
    )

    files = sorted((Path(data_dir) / "lowerlimb_semg_elderly").glob("subject_*.npz"))
    rows: list[dict[str, Any]] = []
    params = DetectionParams(min_duration_s=HOLD_MIN_DURATION_S)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for path in files:
        with np.load(path) as data:
            for k, (array, column, label) in enumerate(HOLDS):
                rng = np.random.default_rng([int(path.stem[-2:]), k])
                x = _hold_signal(data, array, column, rng)
                force = np.asarray(data["force_dnm"][:, column], dtype=np.float64)
                onset_ref, reference = force_onset_s(force, HOLD_FS_HZ)
                a, b = (round(t * HOLD_FS_HZ) for t in FORCE_PLATEAU_S)
                level = _band_rms(x[a:b], HOLD_FS_HZ)
                pad_n = round(REAL_PAD_S * HOLD_FS_HZ)
                # white noise keeps (450 - 20) / 1000 of its power in the band at 2000 Hz
                frac = (REAL_BAND_HZ[1] - REAL_BAND_HZ[0]) / (HOLD_FS_HZ / 2.0)
                floor = rng.standard_normal(2 * pad_n) * level / REAL_HOLD_CONTRAST / math.sqrt(
                    frac)
                sig = np.concatenate([floor[:pad_n], x, floor[pad_n:]]).astype(np.float32)
                spans = emg_activation(sig, HOLD_FS_HZ, params=params)
                hold_s = x.size / HOLD_FS_HZ
                need = SUSTAINED_FRACTION * (hold_s - (onset_ref or 0.0))
                best = (spans.sort("duration_s", descending=True).row(0, named=True)
                        if spans.height else None)
                on = best["start_s"] - REAL_PAD_S if best else None
                end = best["end_s"] - REAL_PAD_S if best else None
                covered = (min(float(end), hold_s) - max(float(on), onset_ref or 0.0)
                           if on is not None and end is not None else 0.0)
                err = on - (onset_ref or 0.0) if on is not None else None
                events = detect_cramps([LegSignals("left", sig[None, :], HOLD_FS_HZ)],
                                       start=start).events
                det_err = (float(events["onset_s"][0]) - REAL_PAD_S - (onset_ref or 0.0)
                           if events.height else None)
                sustained = spans.height == 1 and covered >= need
                onset_ok = err is not None and abs(err) <= ONSET_TOLERANCE_S
                rows.append({
                    "subject": path.stem, "muscle": label, "reference": reference,
                    "force_onset_s": onset_ref, "spans": spans.height,
                    "activation_onset_s": on, "activation_end_s": end, "onset_error_s": err,
                    "covered_s": covered, "sustained": sustained, "onset_ok": onset_ok,
                    "detector_events": events.height, "detector_onset_error_s": det_err,
                    "passed": bool(sustained and onset_ok),
                })
    return rows


def _read_two_columns(path: Path) -> tuple[np.ndarray, float]:
    """PhysioNet emgdb text: ``time_s value_mV`` per line; corrupt lines are skipped."""
    t: list[float] = []
    v: list[float] = []
    with path.open("rb") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) != 2:
                continue
            try:
                a, b = float(parts[0]), float(parts[1])
            except ValueError:
                continue
            t.append(a)
            v.append(b)
    fs = 1.0 / float(np.median(np.diff(t)))
    return np.asarray(v) * 1000.0, fs  # mV -> µV


def burst_checks(data_dir: Path) -> list[dict[str, Any]]:
    """Short needle (PhysioNet emgdb) and surface (BioSPPy) bursts: seen, but never cramps.

    Each recording goes through the whole detector with default parameters, as it is (its own
    rest is its floor; no padding). The activation stage with a 0.5-s minimum shows that the
    bursts are seen as activity at all.

    Returns
    -------
    list of dict
        ``recording``, ``fs_hz``, ``duration_s``, ``bursts_seen`` (activation spans >= 0.5 s),
        ``longest_burst_s``, ``cramps`` (detector events), ``passed`` (no cramp).
    """
    from crampsense.detection import (  # noqa: PLC0415
        DetectionParams,
        LegSignals,
        detect_cramps,
        emg_activation,
    )

    root = Path(data_dir)
    recs: list[tuple[str, np.ndarray, float]] = []
    for name in ("healthy", "myopathy", "neuropathy"):
        p = root / "physionet_emgdb" / f"emg_{name}.txt"
        if p.exists():
            x, fs = _read_two_columns(p)
            recs.append((f"emgdb {name} (needle)", x, fs))
    p = root / "biosppy_examples" / "emg_1.txt"
    if p.exists():
        raw = np.loadtxt(p, comments="#")
        x = raw[:, -1] if raw.ndim == 2 else raw
        recs.append(("biosppy emg_1 (surface)", np.asarray(x, dtype=np.float64), 1000.0))
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = []
    for name, x, fs in recs:
        sig = (x - x.mean()).astype(np.float32)
        spans = emg_activation(sig, fs, params=DetectionParams(
            min_duration_s=BURST_MIN_DURATION_S))
        events = detect_cramps([LegSignals("left", sig[None, :], fs)], start=start).events
        rows.append({"recording": name, "fs_hz": fs, "duration_s": x.size / fs,
                     "bursts_seen": spans.height,
                     "longest_burst_s": float(spans["duration_s"].to_numpy().max())
                     if spans.height else 0.0,
                     "cramps": events.height, "passed": events.height == 0})
    return rows


def real_checks(data_dir: Path) -> dict[str, Any]:
    """Both real-data checks; ``{"data_dir", "holds", "bursts", "passed"}``."""
    holds = hold_checks(data_dir)
    bursts = burst_checks(data_dir)
    return {"data_dir": str(data_dir), "holds": holds, "bursts": bursts,
            "passed": all(r["passed"] for r in holds + bursts) and bool(holds) and bool(bursts)}
