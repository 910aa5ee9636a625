"""EMG conditioning: band-pass (+ measured-hum notch), artefact-gated RMS envelope, floor.

The stages are separate functions so they can be tested and reused on their own:

- :func:`emg_envelope` band-passes each channel in hop-aligned chunks with carried filter state
  (bounded memory, no whole-night float64 copy) and returns the 1-s RMS envelope at 10 Hz,
  with invalid spans (gaps, lead-off, saturation) marked per 0.1-s step.
- :func:`emg_floor` estimates each channel's adaptive floor.
- :func:`emg_activation` runs the hysteresis on the envelope ratio of one muscle and returns
  the active spans (used by the cramp detector and on its own for real recordings).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final

import numpy as np
import polars as pl
from numpy.typing import NDArray
from scipy import signal

from crampsense.detection.params import DetectionParams
from crampsense.errors import DetectionError

__all__ = [
    "REASON_GAP",
    "REASON_LEAD_OFF",
    "REASON_NAMES",
    "REASON_SATURATED",
    "REASON_VALID",
    "Envelope",
    "design_filter",
    "emg_activation",
    "emg_envelope",
    "emg_floor",
    "hysteresis_spans",
    "measure_hum",
]

logger = logging.getLogger(__name__)

REASON_VALID: Final = 0
REASON_LEAD_OFF: Final = 1  # flagged by the caller or a flat line
REASON_GAP: Final = 2  # NaN / missing samples
REASON_SATURATED: Final = 3  # most of the step at the channel's rail
REASON_NAMES: Final = {REASON_LEAD_OFF: "lead-off", REASON_GAP: "gap",
                       REASON_SATURATED: "saturated"}

#: Lowest EMG rate accepted (Hz): the 20 Hz band edge needs 0.45 x fs > 1.5 x 20 Hz, and AASM
#: 2018 asks for 200 Hz anyway.
MIN_EMG_FS_HZ: Final = 100.0
#: Hops per filtering chunk: 2000 steps (200 s) keeps the float64 working set at a few MB.
CHUNK_HOPS: Final = 2000
#: A step counts as saturated when more than this fraction of its samples sit at the rail.
SATURATED_FRACTION: Final = 0.5
#: Samples within 0.5 % of the channel's largest magnitude are "at the rail".
RAIL_FRACTION: Final = 0.995
#: Hum test: one 2-s segment every 30 s (7 % of the night) is enough to catch hum lasting a
#: minute or more; 2 s gives 0.5 Hz bins.
HUM_SEGMENT_S: Final = 2.0
HUM_EVERY_S: Final = 30.0
#: A line must be seen in at least this many segments (a single segment can be a fluke).
HUM_MIN_SEGMENTS: Final = 2
#: Neighbouring bins used as the local noise level around a candidate line (Hz).
HUM_NEIGHBOUR_HZ: Final = (2.0, 10.0)
MAINS_HZ: Final = (50.0, 60.0)
#: Blocks with less than this valid fraction give no floor value.
FLOOR_MIN_VALID: Final = 0.5
#: Windows with fewer valid blocks than this give no floor (interpolated from neighbours).
FLOOR_MIN_BLOCKS: Final = 3


@dataclass(frozen=True, slots=True, eq=False)
class Envelope:
    """Artefact-gated RMS envelope of several channels at the hop rate.

    Attributes
    ----------
    rms_uv : ndarray of float64, shape (n_channels, n_hops)
        1-s RMS (µV) centred on each 0.1-s step; ``nan`` where any step in the window is
        invalid.
    hop_ms_uv2 : ndarray of float64, shape (n_channels, n_hops)
        Mean square of the filtered signal in each step (µV²); ``nan`` where invalid.
    reason : ndarray of uint8, shape (n_channels, n_hops)
        0 valid, else one of ``REASON_LEAD_OFF``, ``REASON_GAP``, ``REASON_SATURATED``.
    hop_s : float
        Step length (s); step ``k`` covers ``[k * hop_s, (k + 1) * hop_s)``.
    notch_hz : tuple of tuple of float
        Mains lines notched, per channel (empty when no hum was measured).
    band_hz : tuple of float
        Band-pass edges actually used.
    """

    rms_uv: NDArray[np.float64]
    hop_ms_uv2: NDArray[np.float64]
    reason: NDArray[np.uint8]
    hop_s: float
    notch_hz: tuple[tuple[float, ...], ...]
    band_hz: tuple[float, float]

    @property
    def n_hops(self) -> int:
        return int(self.rms_uv.shape[1])


def design_filter(fs_hz: float, params: DetectionParams,
                  notch_hz: tuple[float, ...] = ()) -> tuple[NDArray[np.float64],
                                                             tuple[float, float]]:
    """Butterworth band-pass (plus optional notches) as second-order sections.

    Parameters
    ----------
    fs_hz : float
        Sample rate (Hz), at least 100 Hz.
    params : DetectionParams
    notch_hz : tuple of float
        Mains lines to notch (Hz).

    Returns
    -------
    sos : ndarray, shape (n_sections, 6)
    band_hz : (low, high)
        The band actually used: the upper edge is ``min(band_high_hz, 0.45 * fs_hz)``.
    """
    if not np.isfinite(fs_hz) or fs_hz < MIN_EMG_FS_HZ:
        raise DetectionError(
            f"EMG sample rate {fs_hz!r} Hz is too low for the 20 Hz analysis band; "
            f"record EMG at {MIN_EMG_FS_HZ:g} Hz or more (200 Hz or more recommended)"
        )
    high = min(params.band_high_hz, 0.45 * fs_hz)
    low = params.band_low_hz
    if high <= low * 1.5:
        raise DetectionError(
            f"band {low:g}-{high:g} Hz is too narrow at fs = {fs_hz:g} Hz; "
            "lower band_low_hz or record at a higher rate"
        )
    sos = signal.butter(int(params.filter_order), [low, high], btype="bandpass", fs=fs_hz,
                        output="sos")
    parts = [np.asarray(sos, dtype=np.float64)]
    for f in notch_hz:
        b, a = signal.iirnotch(f, params.notch_q, fs=fs_hz)
        parts.append(np.asarray(signal.tf2sos(b, a), dtype=np.float64))
    return np.concatenate(parts, axis=0), (float(low), float(high))


def measure_hum(x: NDArray[np.floating], fs_hz: float, *, invalid: NDArray[np.bool_] | None,
                params: DetectionParams) -> tuple[float, ...]:
    """Find mains lines (50/60 Hz and harmonics inside the band) that are actually present.

    One 2-s segment every 30 s is windowed (Hann) and Fourier transformed; a candidate line
    counts when its bin stands ``hum_peak_ratio`` times above the median of the bins 2-10 Hz
    away in at least two segments.

    Parameters
    ----------
    x : ndarray, shape (n,)
        Raw EMG of one channel.
    fs_hz : float
    invalid : ndarray of bool, shape (n,), or None
        Samples to ignore.
    params : DetectionParams

    Returns
    -------
    tuple of float
        Line frequencies (Hz) to notch, possibly empty.
    """
    seg_n = round(HUM_SEGMENT_S * fs_hz)
    every_n = round(HUM_EVERY_S * fs_hz)
    n_seg = x.size // every_n if x.size >= every_n else int(x.size >= seg_n)
    if n_seg == 0:
        return ()
    starts = np.arange(n_seg) * every_n
    idx = starts[:, None] + np.arange(seg_n)[None, :]
    segs = np.asarray(x[idx], dtype=np.float64)
    ok = np.isfinite(segs).all(axis=1)
    if invalid is not None:
        ok &= ~invalid[idx].any(axis=1)
    segs = segs[ok]
    if segs.shape[0] == 0:
        return ()
    segs -= segs.mean(axis=1, keepdims=True)
    power = np.abs(np.fft.rfft(segs * np.hanning(seg_n)[None, :], axis=1)) ** 2
    freqs = np.fft.rfftfreq(seg_n, 1.0 / fs_hz)
    high = min(params.band_high_hz, 0.45 * fs_hz)
    found: list[float] = []
    for base in MAINS_HZ:
        for f in np.arange(base, high, base):
            k = int(np.argmin(np.abs(freqs - f)))
            dist = np.abs(freqs - f)
            neigh = (dist >= HUM_NEIGHBOUR_HZ[0]) & (dist <= HUM_NEIGHBOUR_HZ[1])
            local = np.median(power[:, neigh], axis=1)
            line = power[:, max(k - 1, 0):k + 2].max(axis=1)
            hits = int(np.count_nonzero(line > params.hum_peak_ratio * np.maximum(local, 1e-30)))
            if hits >= min(HUM_MIN_SEGMENTS, segs.shape[0]):
                found.append(float(f))
    if found:
        logger.info("mains hum measured at %s Hz; notching", found)
    return tuple(found)


def _dilate(mask: NDArray[np.bool_], k: int) -> NDArray[np.bool_]:
    """Grow True spans by ``k`` steps on both sides (vectorised)."""
    if k <= 0 or not mask.any():
        return mask
    c = np.concatenate(([0], np.cumsum(mask, dtype=np.int64)))
    n = mask.size
    lo = np.clip(np.arange(n) - k, 0, n)
    hi = np.clip(np.arange(n) + k + 1, 0, n)
    return (c[hi] - c[lo]) > 0


def _channel_steps(x: NDArray[np.floating], fs_hz: float, hop_n: int, *,
                   valid: NDArray[np.bool_] | None, params: DetectionParams,
                   notch: tuple[float, ...]) -> tuple[NDArray[np.float64], NDArray[np.uint8]]:
    """Per-step mean square of the filtered channel and per-step invalid reasons."""
    n_hops = x.size // hop_n
    ms = np.empty(n_hops, dtype=np.float64)
    reason = np.zeros(n_hops, dtype=np.uint8)
    # First pass (chunked): rail level and invalid reasons on the raw signal.
    rail = 0.0
    for h0 in range(0, n_hops, CHUNK_HOPS):
        seg = x[h0 * hop_n:min(n_hops, h0 + CHUNK_HOPS) * hop_n]
        finite = np.isfinite(seg)
        if finite.any():
            rail = max(rail, float(np.max(np.abs(seg[finite]))))
    for h0 in range(0, n_hops, CHUNK_HOPS):
        h1 = min(n_hops, h0 + CHUNK_HOPS)
        seg = x[h0 * hop_n:h1 * hop_n].reshape(h1 - h0, hop_n)
        finite = np.isfinite(seg)
        gap = ~finite.all(axis=1)
        with np.errstate(invalid="ignore"):
            flat = np.ptp(np.where(finite, seg, 0.0), axis=1) == 0
            at_rail = np.abs(seg) >= RAIL_FRACTION * rail if rail > 0 else np.zeros_like(finite)
        saturated = at_rail.mean(axis=1) > SATURATED_FRACTION
        lead_off = flat
        if valid is not None:
            lead_off = lead_off | ~valid[h0 * hop_n:h1 * hop_n].reshape(h1 - h0, hop_n).all(axis=1)
        r = reason[h0:h1]
        r[lead_off] = REASON_LEAD_OFF
        r[saturated] = REASON_SATURATED
        r[gap] = REASON_GAP
    margin = round(params.invalid_margin_s / (hop_n / fs_hz))
    grown = np.zeros(n_hops, dtype=np.uint8)
    for code in (REASON_LEAD_OFF, REASON_SATURATED, REASON_GAP):  # later codes win
        grown[_dilate(reason == code, margin)] = code
    # Second pass: band-pass with carried state; invalid steps are zeroed before filtering so
    # rails and huge noise cannot ring into good data.
    sos, _ = design_filter(fs_hz, params, notch)
    zi = np.zeros((sos.shape[0], 2), dtype=np.float64)
    for h0 in range(0, n_hops, CHUNK_HOPS):
        h1 = min(n_hops, h0 + CHUNK_HOPS)
        seg = np.asarray(x[h0 * hop_n:h1 * hop_n], dtype=np.float64).reshape(h1 - h0, hop_n)
        seg[reason[h0:h1] != REASON_VALID] = 0.0
        y, zi = signal.sosfilt(sos, seg.reshape(-1), zi=zi)
        ms[h0:h1] = np.einsum("ij,ij->i", y.reshape(h1 - h0, hop_n), y.reshape(h1 - h0, hop_n))
    ms /= hop_n
    ms[grown != REASON_VALID] = np.nan
    return ms, grown


def emg_envelope(emg_uv: NDArray[np.floating], fs_hz: float, *,
                 valid: NDArray[np.bool_] | None = None,
                 params: DetectionParams | None = None) -> Envelope:
    """Band-pass and artefact-gated 1-s RMS envelope of every channel, at 10 Hz.

    Parameters
    ----------
    emg_uv : ndarray, shape (n_channels, n) or (n,)
        EMG in µV (any float dtype; float32 is not copied whole).
    fs_hz : float
        Sample rate, 100 Hz or more.
    valid : ndarray of bool, shape (n,), optional
        False where the caller knows there is no usable signal.
    params : DetectionParams, optional

    Returns
    -------
    Envelope

    Notes
    -----
    1. Each channel is band-passed ``band_low_hz`` - ``min(band_high_hz, 0.45 fs)`` (Butterworth,
       ``sosfilt`` over 200-s chunks with carried state), with a notch at every mains line that
       :func:`measure_hum` measured in that channel.
    2. The mean square of each 0.1-s step is computed; the envelope at a step is the square
       root of the *median* of the step mean squares within ``envelope_window_s``. The median
       makes the RMS blind to anything covering less than half the window: electrode pops,
       hypnic jerks, fasciculations, QRS complexes of ECG crosstalk.
    3. Steps with NaN samples (gap), with the caller's ``valid`` False or a flat line
       (lead-off), or mostly at the channel's rail (saturated) are invalid, widened by
       ``invalid_margin_s``; their samples are zeroed before filtering.
    """
    params = params or DetectionParams()
    x2 = np.asarray(emg_uv)
    if x2.ndim == 1:
        x2 = x2[None, :]
    if x2.ndim != 2 or x2.shape[1] == 0:
        raise DetectionError(
            f"EMG array has shape {np.shape(emg_uv)}; pass (n_channels, n_samples) with samples"
        )
    if valid is not None and np.shape(valid) != (x2.shape[1],):
        raise DetectionError(
            f"emg_valid has shape {np.shape(valid)} but the EMG has {x2.shape[1]} samples; "
            "pass one flag per sample"
        )
    _, band = design_filter(fs_hz, params)
    hop_n = max(1, round(params.hop_s * fs_hz))
    hop_s = hop_n / fs_hz
    n_hops = x2.shape[1] // hop_n
    if n_hops < 1:
        raise DetectionError(f"EMG has only {x2.shape[1]} samples; pass at least {hop_n}")
    valid_b = None if valid is None else np.asarray(valid, dtype=bool)
    ms = np.empty((x2.shape[0], n_hops))
    reason = np.empty((x2.shape[0], n_hops), dtype=np.uint8)
    notches: list[tuple[float, ...]] = []
    for c in range(x2.shape[0]):
        invalid = None if valid_b is None else ~valid_b
        notch = measure_hum(x2[c], fs_hz, invalid=invalid, params=params)
        notches.append(notch)
        ms[c], reason[c] = _channel_steps(x2[c], fs_hz, hop_n, valid=valid_b,
                                              params=params, notch=notch)
    w = max(1, round(params.envelope_window_s / hop_s))
    rms = np.sqrt(_centred_median(ms, w))
    return Envelope(rms_uv=rms, hop_ms_uv2=ms, reason=reason, hop_s=hop_s,
                    notch_hz=tuple(notches), band_hz=band)


def _centred_median(a: NDArray[np.float64], w: int) -> NDArray[np.float64]:
    """Median over a centred window of ``w`` steps along the last axis (NaN propagates)."""
    if w <= 1:
        return a.copy()
    left = (w - 1) // 2
    right = w - 1 - left
    padded = np.pad(a, ((0, 0), (left, right)), constant_values=np.nan)
    # Edges: repeat the nearest window instead of NaN padding so that the first and last
    # half-second keep a value.
    padded[:, :left] = a[:, :1] if a.shape[1] else np.nan
    padded[:, padded.shape[1] - right:] = a[:, -1:] if a.shape[1] else np.nan
    win = np.lib.stride_tricks.sliding_window_view(padded, w, axis=1)
    out: NDArray[np.float64] = np.median(win, axis=2)
    return out


def emg_floor(rms_uv: NDArray[np.float64], hop_s: float,
              params: DetectionParams | None = None) -> NDArray[np.float64]:
    """Adaptive per-channel floor of an envelope, at the hop rate.

    The envelope is cut into ``floor_block_s`` blocks; each block with at least half its steps
    valid gives its median. The floor of a block is the ``floor_quantile`` of the block medians
    within a centred ``floor_window_s`` window (truncated at the ends of the night), and is
    linearly interpolated between block centres. A cramp shorter than half the window cannot
    lift it.

    Parameters
    ----------
    rms_uv : ndarray, shape (n_channels, n_hops)
        Envelope with ``nan`` for invalid steps.
    hop_s : float
    params : DetectionParams, optional

    Returns
    -------
    ndarray, shape (n_channels, n_hops)
        Floor in the envelope's unit; ``nan`` for a channel with no valid block at all.
    """
    params = params or DetectionParams()
    n_ch, n_hops = rms_uv.shape
    bn = max(1, round(params.floor_block_s / hop_s))
    n_blocks = -(-n_hops // bn)
    padded = np.full((n_ch, n_blocks * bn), np.nan)
    padded[:, :n_hops] = rms_uv
    blocks = padded.reshape(n_ch, n_blocks, bn)
    n_valid = np.isfinite(blocks).sum(axis=2)
    srt = np.sort(blocks, axis=2)  # NaN sorts last
    mid = np.clip((n_valid - 1) // 2, 0, bn - 1)
    med = np.take_along_axis(srt, mid[..., None], axis=2)[..., 0]
    full = n_valid >= FLOOR_MIN_VALID * np.minimum(bn, n_hops - np.arange(n_blocks) * bn)
    med = np.where(full & (n_valid > 0), med, np.nan)
    half = max(1, round(params.floor_window_s / params.floor_block_s / 2))
    win = np.lib.stride_tricks.sliding_window_view(
        np.pad(med, ((0, 0), (half, half)), constant_values=np.nan), 2 * half + 1, axis=1)
    wsrt = np.sort(win, axis=2)
    cnt = np.isfinite(win).sum(axis=2)
    q_idx = np.clip(np.floor(params.floor_quantile * (cnt - 1) + 0.5).astype(np.int64), 0, None)
    fl = np.take_along_axis(wsrt, q_idx[..., None], axis=2)[..., 0]
    fl = np.where(cnt >= min(FLOOR_MIN_BLOCKS, max(1, n_blocks)), fl, np.nan)
    centres = (np.arange(n_blocks) + 0.5) * bn
    hops = np.arange(n_hops, dtype=np.float64)
    out = np.full((n_ch, n_hops), np.nan)
    for c in range(n_ch):
        ok = np.isfinite(fl[c]) & (fl[c] > 0)
        if ok.any():
            out[c] = np.interp(hops, centres[ok], fl[c][ok])
    return out


def hysteresis_spans(ratio: NDArray[np.float64], *, on: float, off: float,
                     merge_gap_n: int) -> NDArray[np.int64]:
    """Spans where ``ratio`` stays at or above ``off`` and reaches ``on`` somewhere.

    Runs above ``off`` separated by at most ``merge_gap_n`` steps of valid (finite) data are
    joined first; ``nan`` (invalid) never joins and never counts as above.

    Returns
    -------
    ndarray of int64, shape (n_spans, 2)
        ``[start, stop)`` step indices.
    """
    above = np.nan_to_num(ratio, nan=-np.inf) >= off
    edges = np.diff(np.concatenate(([0], above.view(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    stops = np.flatnonzero(edges == -1)
    if starts.size == 0:
        return np.empty((0, 2), dtype=np.int64)
    if starts.size > 1 and merge_gap_n > 0:
        bad = np.concatenate(([0], np.cumsum(~np.isfinite(ratio), dtype=np.int64)))
        gap_len = starts[1:] - stops[:-1]
        gap_bad = bad[starts[1:]] - bad[stops[:-1]]
        join = (gap_len <= merge_gap_n) & (gap_bad == 0)
        first = np.flatnonzero(np.concatenate(([True], ~join)))
        last = np.concatenate((first[1:] - 1, [starts.size - 1]))
        starts, stops = starts[first], stops[last]
    on_c = np.concatenate(([0], np.cumsum(np.nan_to_num(ratio, nan=-np.inf) >= on,
                                          dtype=np.int64)))
    keep = (on_c[stops] - on_c[starts]) > 0
    return np.stack((starts[keep], stops[keep]), axis=1).astype(np.int64)


def emg_activation(emg_uv: NDArray[np.floating], fs_hz: float, *,
                   valid: NDArray[np.bool_] | None = None,
                   params: DetectionParams | None = None) -> pl.DataFrame:
    """Sustained activation spans of one muscle (all channels combined by their maximum).

    This is the detector's envelope + floor + hysteresis stage without any cramp rules; use it
    on recordings of voluntary contractions, with ``min_duration_s`` lowered as needed.

    Parameters
    ----------
    emg_uv : ndarray, shape (n_channels, n) or (n,)
        EMG (µV).
    fs_hz : float
    valid : ndarray of bool, shape (n,), optional
    params : DetectionParams, optional

    Returns
    -------
    polars.DataFrame
        One row per span: ``start_s``, ``end_s``, ``duration_s`` (s from sample 0),
        ``peak_rel``, ``mean_rel`` (envelope over floor).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(0.0, 2.0, 200 * 1000).astype(np.float32)
    >>> x[80_000:120_000] *= 10.0
    >>> spans = emg_activation(x, 1000.0, params=DetectionParams(min_duration_s=5.0))
    >>> [(round(a), round(b)) for a, b in spans.select("start_s", "end_s").rows()]
    [(80, 120)]
    """
    params = params or DetectionParams()
    env = emg_envelope(emg_uv, fs_hz, valid=valid, params=params)
    floor = emg_floor(env.rms_uv, env.hop_s, params)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.fmax.reduce(env.rms_uv / floor, axis=0)
    spans = hysteresis_spans(ratio, on=params.on_ratio, off=params.off_ratio,
                             merge_gap_n=round(params.merge_gap_s / env.hop_s))
    rows: list[tuple[float, float, float, float, float]] = []
    for s, e in spans:
        if (e - s) * env.hop_s < params.min_duration_s:
            continue
        seg = ratio[s:e]
        rows.append((s * env.hop_s, e * env.hop_s, (e - s) * env.hop_s,
                     float(np.nanmax(seg)), float(np.nanmean(seg))))
    return pl.DataFrame(rows, schema={"start_s": pl.Float64, "end_s": pl.Float64,
                                      "duration_s": pl.Float64, "peak_rel": pl.Float64,
                                      "mean_rel": pl.Float64}, orient="row")
