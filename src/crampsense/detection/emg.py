"""EMG conditioning: band-pass (+ measured-hum notch), artefact-gated RMS envelope, floor.

The raw-sample stage is a streaming object and the whole-night functions run it over blocks,
so offline and streaming results are the same numbers by construction:

- :class:`EmgFrontEnd` takes raw EMG block by block (any block sizes) and keeps, per 0.1-s
  step (hop), the mean square of the band-passed signal and an invalid reason. Filter state,
  the rail level, the hum lines and the partial last hop are carried between pushes; memory
  is bounded by the block size plus the hop-level arrays (10 Hz, ~2.6 MB per channel-night).
- :class:`EnvelopeFrontEnd` does the same for pre-computed envelopes of analog front ends
  (MyoWare-style, any rate of 10 Hz or more, arbitrary units).
- :func:`hop_envelope` turns hop-level mean squares into the gated 1-s RMS envelope;
  :func:`emg_envelope` is front end + :func:`hop_envelope` over a whole array.
- :func:`emg_floor` estimates each channel's adaptive floor; :func:`emg_activation` runs the
  hysteresis on the envelope ratio of one muscle and returns the active spans.

Every step after the front end depends only on hops within a bounded distance (0.5 s for the
envelope and invalid margins, about 15 min for the floor), which is what lets the streaming
detector (:mod:`crampsense.detection.stream`) declare events final after a fixed look-ahead.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np
import polars as pl
from numpy.typing import NDArray

from crampsense.detection import iir
from crampsense.detection.params import DetectionParams
from crampsense.errors import DetectionError

__all__ = [
    "REASON_GAP",
    "REASON_HUM",
    "REASON_LEAD_OFF",
    "REASON_NAMES",
    "REASON_SATURATED",
    "REASON_VALID",
    "EmgFrontEnd",
    "Envelope",
    "EnvelopeFrontEnd",
    "design_filter",
    "emg_activation",
    "emg_envelope",
    "emg_floor",
    "hop_envelope",
    "hysteresis_spans",
    "measure_hum",
]

logger = logging.getLogger(__name__)

REASON_VALID: Final = 0
REASON_LEAD_OFF: Final = 1  # flagged by the caller or a flat line
REASON_GAP: Final = 2  # NaN / missing samples
REASON_SATURATED: Final = 3  # most of the step at the channel's rail
REASON_HUM: Final = 4  # mains hum may have been present before its notch was switched on
REASON_NAMES: Final = {REASON_LEAD_OFF: "lead-off", REASON_GAP: "gap",
                       REASON_SATURATED: "saturated", REASON_HUM: "hum"}
#: When a step has several reasons after widening, the later code in this order wins.
_REASON_ORDER: Final = (REASON_HUM, REASON_LEAD_OFF, REASON_SATURATED, REASON_GAP)

#: Lowest EMG rate accepted (Hz): the 20 Hz band edge needs 0.45 x fs > 1.5 x 20 Hz, and AASM
#: 2018 asks for 200 Hz anyway.
MIN_FRONTEND_EMG_FS_HZ: Final = 100.0
#: Hops per filtering chunk: 2000 steps (200 s) keeps the float64 working set at a few MB
#: whatever block size the caller pushes.
CHUNK_HOPS: Final = 2000
#: A step counts as saturated when more than this fraction of its samples sit at the rail.
SATURATED_FRACTION: Final = 0.5
#: Samples within 0.5 % of the rail are "at the rail". The rail is the caller's full scale
#: when given, else the running maximum of |x| up to and including the step (causal: a
#: clipped stretch reaches the running maximum the moment it starts).
RAIL_FRACTION: Final = 0.995
#: Hum test: one 2-s segment every 30 s (7 % of the night) catches hum lasting a minute or
#: more; 2 s gives 0.5 Hz bins.
HUM_SEGMENT_S: Final = 2.0
HUM_EVERY_S: Final = 30.0
#: Neighbouring bins used as the local noise level around a candidate line (Hz).
HUM_NEIGHBOUR_HZ: Final = (2.0, 10.0)
MAINS_HZ: Final = (50.0, 60.0)
#: How far back (s) a front end may still change a step's reason: a hum line first seen in a
#: segment marks the steps since the previous clean segment (at most one segment spacing plus
#: one segment). Later stages treat younger steps as provisional.
REVISION_S: Final = HUM_EVERY_S + HUM_SEGMENT_S + 0.2
#: Blocks with less than this valid fraction give no floor value.
FLOOR_MIN_VALID: Final = 0.5
#: Windows with fewer valid blocks than this give no floor (interpolated from neighbours).
FLOOR_MIN_BLOCKS: Final = 3
#: Hops per chunk of the centred median: the sorted (chunk, window) copy stays at ~4 MB.
MEDIAN_CHUNK_HOPS: Final = 50_000
#: Initial capacity (hops) of the growing hop-level arrays; they double when full.
_INITIAL_HOPS: Final = 4096


@dataclass(frozen=True, slots=True, eq=False)
class Envelope:
    """Artefact-gated RMS envelope of several channels at the hop rate.

    Attributes
    ----------
    rms_uv : ndarray of float64, shape (n_channels, n_hops)
        1-s RMS (µV, or the envelope's own unit) centred on each 0.1-s step; ``nan`` where
        any step in the window is invalid.
    hop_ms_uv2 : ndarray of float64, shape (n_channels, n_hops)
        Mean square of the filtered signal in each step (µV²); ``nan`` where invalid.
    reason : ndarray of uint8, shape (n_channels, n_hops)
        0 valid, else one of ``REASON_LEAD_OFF``, ``REASON_GAP``, ``REASON_SATURATED``,
        ``REASON_HUM`` (after widening by ``invalid_margin_s``).
    hop_s : float
        Step length (s); step ``k`` covers ``[k * hop_s, (k + 1) * hop_s)``.
    notch_hz : tuple of tuple of float
        Mains lines notched, per channel (empty when no hum was measured).
    band_hz : tuple of float
        Band-pass edges actually used (``(nan, nan)`` for a pre-computed envelope).
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
    if not np.isfinite(fs_hz) or fs_hz < MIN_FRONTEND_EMG_FS_HZ:
        raise DetectionError(
            f"EMG sample rate {fs_hz!r} Hz is too low for the 20 Hz analysis band; "
            f"record EMG at {MIN_FRONTEND_EMG_FS_HZ:g} Hz or more (200 Hz or more recommended)"
        )
    high = min(params.band_high_hz, 0.45 * fs_hz)
    low = params.band_low_hz
    if high <= low * 1.5:
        raise DetectionError(
            f"band {low:g}-{high:g} Hz is too narrow at fs = {fs_hz:g} Hz; "
            "lower band_low_hz or record at a higher rate"
        )
    parts = [iir.butter_bandpass_sos(int(params.filter_order), low, high, fs_hz)]
    parts += [iir.notch_sos(f, params.notch_q, fs_hz) for f in notch_hz]
    return np.concatenate(parts, axis=0), (float(low), float(high))


class _HumTest:
    """Line test of one sample rate: which mains lines stand out in 2-s segments."""

    def __init__(self, fs_hz: float, params: DetectionParams) -> None:
        self.seg_n = max(4, round(HUM_SEGMENT_S * fs_hz))
        self.every_n = max(self.seg_n, round(HUM_EVERY_S * fs_hz))
        self.ratio = params.hum_peak_ratio
        freqs = np.fft.rfftfreq(self.seg_n, 1.0 / fs_hz)
        high = min(params.band_high_hz, 0.45 * fs_hz)
        self.lines = tuple(sorted({float(f) for base in MAINS_HZ
                                   for f in np.arange(base, high, base)}))
        top = freqs.size - 1
        peak: list[list[int]] = []
        neigh: list[NDArray[np.int64]] = []
        for f in self.lines:
            dist = np.abs(freqs - f)
            k = int(np.argmin(dist))
            peak.append([max(k - 1, 0), k, min(k + 1, top)])
            neigh.append(np.flatnonzero((dist >= HUM_NEIGHBOUR_HZ[0])
                                        & (dist <= HUM_NEIGHBOUR_HZ[1])))
        self.peak_idx = np.array(peak, dtype=np.int64).reshape(-1, 3)
        # lines with the same number of neighbour bins share one vectorised median
        self.groups: list[tuple[NDArray[np.int64], NDArray[np.int64]]] = []
        for size in sorted({nb.size for nb in neigh}):
            members = np.array([j for j, nb in enumerate(neigh) if nb.size == size],
                               dtype=np.int64)
            self.groups.append((members, np.stack([neigh[j] for j in members])))
        self.window = np.hanning(self.seg_n)

    def hits(self, segs: NDArray[np.float64]) -> NDArray[np.bool_]:
        """Which lines stand ``hum_peak_ratio`` x above their neighbours, per segment.

        Parameters
        ----------
        segs : ndarray of float64, shape (n_segments, seg_n)
            Finite raw samples.

        Returns
        -------
        ndarray of bool, shape (n_segments, n_lines)
        """
        out = np.zeros((segs.shape[0], len(self.lines)), dtype=bool)
        if segs.shape[0] == 0 or not self.lines:
            return out
        centred = segs - segs.mean(axis=1, keepdims=True)
        power = np.abs(np.fft.rfft(centred * self.window[None, :], axis=1)) ** 2
        line = power[:, self.peak_idx].max(axis=2)  # (n_segments, n_lines)
        for members, idx in self.groups:
            if idx.shape[1] == 0:
                continue
            local = np.median(power[:, idx], axis=2)
            out[:, members] = line[:, members] > self.ratio * np.maximum(local, 1e-30)
        return out


def measure_hum(x: NDArray[np.floating], fs_hz: float, *, invalid: NDArray[np.bool_] | None,
                params: DetectionParams) -> tuple[float, ...]:
    """Mains lines (50/60 Hz and harmonics inside the band) present anywhere in a recording.

    One 2-s segment every 30 s is windowed (Hann) and Fourier transformed; a line counts when
    its bin stands ``hum_peak_ratio`` times above the median of the bins 2-10 Hz away in a
    valid segment. This is the test :class:`EmgFrontEnd` applies causally while streaming.

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
        Line frequencies (Hz), ascending, possibly empty.

    References
    ----------
    .. [1] Harris F.J., On the use of windows for harmonic analysis with the discrete Fourier
       transform, Proc IEEE 66:51-83, 1978 (Hann window leakage).
    """
    test = _HumTest(fs_hz, params)
    n_seg = (x.size - test.seg_n) // test.every_n + 1 if x.size >= test.seg_n else 0
    if n_seg <= 0:
        return ()
    idx = (np.arange(n_seg) * test.every_n)[:, None] + np.arange(test.seg_n)[None, :]
    segs = np.asarray(x[idx], dtype=np.float64)
    ok = np.isfinite(segs).all(axis=1)
    if invalid is not None:
        ok &= ~np.asarray(invalid, dtype=bool)[idx].any(axis=1)
    hits = np.asarray(test.hits(segs[ok]).any(axis=0), dtype=bool)
    return tuple(f for f, h in zip(test.lines, hits, strict=True) if h)


class _Grow:
    """A (rows, n) array that grows along its last axis (amortised doubling)."""

    def __init__(self, rows: int, dtype: type[np.generic], fill: float) -> None:
        self._a = np.full((rows, _INITIAL_HOPS), fill, dtype=dtype)
        self._fill = fill
        self.n = 0

    def extend(self, k: int) -> slice:
        if self.n + k > self._a.shape[1]:
            cap = max(2 * self._a.shape[1], self.n + k)
            new = np.full((self._a.shape[0], cap), self._fill, dtype=self._a.dtype)
            new[:, :self.n] = self._a[:, :self.n]
            self._a = new
        self.n += k
        return slice(self.n - k, self.n)

    @property
    def array(self) -> NDArray[np.generic]:
        return self._a[:, :self.n]

    @property
    def nbytes(self) -> int:
        return int(self._a.nbytes)


def _check_block(x: NDArray[np.generic], n_channels: int, valid: object, what: str
                 ) -> tuple[NDArray[np.generic], NDArray[np.bool_] | None]:
    if x.ndim == 1 and n_channels == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[0] != n_channels:
        raise DetectionError(
            f"{what} block has shape {x.shape}; pass ({n_channels}, n_samples) as configured")
    if valid is None:
        return x, None
    v = np.asarray(valid, dtype=bool)
    if v.shape != (x.shape[1],):
        raise DetectionError(
            f"{what} validity has shape {v.shape} but the block has {x.shape[1]} samples; "
            "pass one flag per sample")
    return x, v


class _HopFrontEnd:
    """Shared parts of the front ends: the growing hop arrays and the carried tail."""

    n_channels: int
    _n_in: int
    _tail: NDArray[np.float64]
    _tail_valid: NDArray[np.bool_]
    _ms: _Grow
    _reason: _Grow

    # ------------------------------------------------------------------ results
    @property
    def n_hops(self) -> int:
        """Complete hops so far."""
        return self._ms.n

    @property
    def n_samples(self) -> int:
        """Samples pushed so far (including the partial last hop)."""
        return self._n_in + int(self._tail.shape[1])

    @property
    def hop_ms_uv2(self) -> NDArray[np.float64]:
        """Mean square (µV²) of each complete hop, shape (n_channels, n_hops); a view."""
        out: NDArray[np.float64] = self._ms.array  # type: ignore[assignment]
        return out

    @property
    def hop_reason(self) -> NDArray[np.uint8]:
        """Raw invalid reason of each complete hop (before widening); a view."""
        out: NDArray[np.uint8] = self._reason.array  # type: ignore[assignment]
        return out

    @property
    def hop_dms_uv2(self) -> NDArray[np.float64] | None:
        """Mean square of the first difference of the filtered signal in each complete hop
        (µV², shape (n_channels, n_hops); a view), or None for a pre-computed envelope.

        With the hop mean square it gives the signal's mean frequency (a difference has gain
        ``2 sin(π f / fs)``): broadband noise reads far higher than muscle activity, whose
        power sits near 60-150 Hz.
        """
        return None


    @property
    def nbytes(self) -> int:
        """Bytes held by the hop-level arrays and buffers."""
        return self._ms.nbytes + self._reason.nbytes + self._tail.nbytes + self._extra_nbytes()

    def _extra_nbytes(self) -> int:
        return 0

    def _process(self, seg: NDArray[np.float64], valid: NDArray[np.bool_]) -> None:
        """One chunk of complete hops (the front end's own work)."""
        raise NotImplementedError

    def _push_hops(self, x: NDArray[np.generic], v: NDArray[np.bool_] | None, done: int,
                   chunk_end: Callable[[int], int]) -> int:
        """Process samples ``[0, done)`` of the virtual array ``[tail | x]`` (whole hops) in
        chunks ``[pos, chunk_end(pos))`` and carry ``[done, tail + n)`` as the new tail."""
        n = int(x.shape[1])
        total = int(self._tail.shape[1]) + n
        pos = 0
        while pos < done:
            end = chunk_end(pos)
            self._process(self._take(x, pos, end), self._take_valid(v, n, pos, end))
            pos = end
        self._tail = self._take(x, done, total)
        self._tail_valid = self._take_valid(v, n, done, total)
        return self.n_hops

    def _take(self, x: NDArray[np.generic], a: int, b: int) -> NDArray[np.float64]:
        """Samples [a, b) of the virtual array [tail | x] as a new float64 array."""
        r = int(self._tail.shape[1])
        out = np.empty((self.n_channels, b - a))
        if a < r:
            out[:, :min(b, r) - a] = self._tail[:, a:min(b, r)]
        if b > r:
            out[:, max(a, r) - a:] = x[:, max(a - r, 0):b - r]
        return out

    def _take_valid(self, v: NDArray[np.bool_] | None, n: int, a: int, b: int
                    ) -> NDArray[np.bool_]:
        r = int(self._tail_valid.shape[0])
        out = np.ones(b - a, dtype=bool)
        if a < r:
            out[:min(b, r) - a] = self._tail_valid[a:min(b, r)]
        if b > r and v is not None:
            out[max(a, r) - a:] = v[max(a - r, 0):b - r]
        return out


class EmgFrontEnd(_HopFrontEnd):
    """Streaming EMG front end of one leg: raw blocks in, hop-level mean squares out.

    Parameters
    ----------
    fs_hz : float
        Sample rate (Hz), 100 Hz or more.
    n_channels : int
        Channels per block (rows of every pushed array).
    params : DetectionParams, optional
    full_scale_uv : float, optional
        The ADC's full scale (µV) when known; samples within 0.5 % of it are at the rail.
        Without it the rail is the running maximum of |x| (causal).

    Notes
    -----
    Per channel, for every complete 0.1-s hop (the partial last hop of a push waits for the
    next one, so hops never depend on block boundaries):

    1. **Reasons** on the raw samples: NaN → gap; the caller's ``valid`` False anywhere in the
       hop, or a flat line → lead-off; more than half the hop within 0.5 % of the rail →
       saturated. Invalid hops are zeroed before filtering so rails and huge noise cannot
       ring into good data.
    2. **Band-pass** 20 Hz - min(450 Hz, 0.45 fs), Butterworth as second-order sections,
       SciPy's ``sosfilt`` with its state carried across pushes and 200-s chunks
       (``sosfilt`` is sequential, so any split gives the same numbers).
    3. **Hum, causally**: every 30 s a 2-s raw segment is tested for mains lines (see
       :func:`measure_hum`). A line seen in a valid segment is notched (Q = ``notch_q``)
       from that segment's last sample on, for the rest of the night (a needless notch costs
       ~1 % of the band). Hum may have started anywhere since the previous valid segment, so
       the hops from that segment's end to this one's end are marked ``REASON_HUM`` (at
       most 32 s per line onset): unnotched hum never reaches the detector. The notch
       section starts from zero state; its transient decays within ~0.1 s (time constant
       Q / (π f) = 64 ms at 50 Hz), inside the marked span's 0.5-s widening.
    4. **Mean square** of each hop of the filtered signal.

    References
    ----------
    .. [1] Berry R.B. et al., The AASM Manual for the Scoring of Sleep and Associated Events,
       v2.5, 2018 (leg EMG at >= 200 Hz, filters).
    .. [2] De Luca C.J. et al., Filtering the surface EMG signal: movement artifact and
       baseline noise contamination, J Biomech 43:1573-1579, 2010 (20 Hz high-pass).

    Examples
    --------
    >>> import numpy as np
    >>> fe = EmgFrontEnd(1000.0, 1)
    >>> x = np.random.default_rng(0).normal(0.0, 2.0, (1, 2550)).astype(np.float32)
    >>> fe.push(x[:, :1000]), fe.push(x[:, 1000:])
    (10, 25)
    """

    def __init__(self, fs_hz: float, n_channels: int, *, params: DetectionParams | None = None,
                 full_scale_uv: float | None = None) -> None:
        self.params = params or DetectionParams()
        sos, self.band_hz = design_filter(fs_hz, self.params)
        if int(n_channels) != n_channels or n_channels < 1:
            raise DetectionError(f"n_channels = {n_channels!r}; pass 1 or more EMG channels")
        if full_scale_uv is not None and not (math.isfinite(full_scale_uv)
                                              and full_scale_uv > 0):
            raise DetectionError(
                f"full_scale_uv = {full_scale_uv!r}; pass the ADC's positive full scale (µV) "
                "or None")
        self.fs_hz = float(fs_hz)
        self.n_channels = int(n_channels)
        self.hop_n = max(1, round(self.params.hop_s * self.fs_hz))
        self.hop_s = self.hop_n / self.fs_hz
        self._sos = [sos.copy() for _ in range(self.n_channels)]
        self._zi = [np.zeros((sos.shape[0], 2)) for _ in range(self.n_channels)]
        self._notch: list[list[float]] = [[] for _ in range(self.n_channels)]
        self._hum = _HumTest(self.fs_hz, self.params)
        self._seg_buf = np.full((self.n_channels, self._hum.seg_n), np.nan)
        self._seg_valid = np.ones(self._hum.seg_n, dtype=bool)
        self._prev_seg_end = [0] * self.n_channels
        self._tail = np.empty((self.n_channels, 0))
        self._tail_valid = np.empty(0, dtype=bool)
        self._full_scale = full_scale_uv
        self._rail = np.zeros(self.n_channels)
        self._n_in = 0  # samples consumed into complete hops
        self._ms = _Grow(self.n_channels, np.float64, np.nan)
        self._dms = _Grow(self.n_channels, np.float64, np.nan)
        self._reason = _Grow(self.n_channels, np.uint8, 0)

    @property
    def hop_dms_uv2(self) -> NDArray[np.float64] | None:
        """Mean square of the filtered signal's first difference per hop (µV²); a view."""
        out: NDArray[np.float64] = self._dms.array  # type: ignore[assignment]
        return out

    @property
    def notch_hz(self) -> tuple[tuple[float, ...], ...]:
        """Mains lines notched so far, per channel, in the order they were found."""
        return tuple(tuple(n) for n in self._notch)

    def _extra_nbytes(self) -> int:
        return int(self._seg_buf.nbytes) + self._dms.nbytes

    def push(self, emg_uv: NDArray[np.floating], valid: NDArray[np.bool_] | None = None) -> int:
        """Feed the next block of samples (any length, including 0).

        Parameters
        ----------
        emg_uv : ndarray, shape (n_channels, n) (or (n,) for one channel)
            The next samples (µV), contiguous with the previous block.
        valid : ndarray of bool, shape (n,), optional
            False where the caller knows there is no usable signal.

        Returns
        -------
        int
            Complete hops so far (``hop_ms_uv2.shape[1]``).
        """
        x, v = _check_block(np.asarray(emg_uv), self.n_channels, valid, "EMG")
        n = int(x.shape[1])
        if n == 0:
            return self.n_hops
        total = int(self._tail.shape[1]) + n
        done = (total // self.hop_n) * self.hop_n
        return self._push_hops(x, v, done,
                               lambda pos: min(done, pos + CHUNK_HOPS * self.hop_n))

    def _process(self, seg: NDArray[np.float64], valid: NDArray[np.bool_]) -> None:
        """One chunk of complete hops: reasons, hum segments, filter, mean squares."""
        hop_n, n_ch = self.hop_n, self.n_channels
        k = seg.shape[1] // hop_n
        a = self._n_in
        hops = seg.reshape(n_ch, k, hop_n)
        # a NaN or inf in a hop makes its max or min non-finite: no full-size mask needed
        hmax, hmin = hops.max(axis=2), hops.min(axis=2)
        gap = ~(np.isfinite(hmax) & np.isfinite(hmin))
        z = hops  # filtered in place below (seg is this call's own copy)
        if gap.any():
            z = np.where(np.isfinite(hops), hops, 0.0)
            hmax, hmin = z.max(axis=2), z.min(axis=2)
        flat = (hmax - hmin) == 0  # np.ptp
        if self._full_scale is not None:
            rail = np.full((n_ch, k), self._full_scale)
        else:
            rail = np.maximum.accumulate(  # running max of |z| (max |z| = max(max, -min))
                np.concatenate((self._rail[:, None], np.maximum(hmax, -hmin)), axis=1),
                axis=1)[:, 1:]
            self._rail = rail[:, -1].copy()
        thr = RAIL_FRACTION * rail
        # more than half the hop at the rail needs its max |z| there: count only those hops
        saturated = (np.maximum(hmax, -hmin) >= thr) & (rail > 0)
        if saturated.any():
            ci, hi = np.nonzero(saturated)
            saturated[ci, hi] = ((np.abs(z[ci, hi]) >= thr[ci, hi][:, None]).mean(axis=1)
                                 > SATURATED_FRACTION)
        hop_ok = np.asarray(valid.reshape(k, hop_n).all(axis=1), dtype=bool)
        lead_off = flat | ~hop_ok[None, :]
        reason = np.zeros((n_ch, k), dtype=np.uint8)
        reason[lead_off] = REASON_LEAD_OFF
        reason[saturated] = REASON_SATURATED
        reason[gap] = REASON_GAP
        h = self._reason.extend(k)
        self._ms.extend(k)
        self._dms.extend(k)
        self._reason.array[:, h] = reason
        # hum segments that end inside this chunk (raw samples, so before z is zeroed or
        # filtered): test them before filtering past their end
        cuts = self._segments(seg, valid, a)
        bad = reason != REASON_VALID
        if bad.any():
            z[bad] = 0.0
        y = z.reshape(n_ch, k * hop_n)
        for c in range(n_ch):
            prev = 0
            for cut, hits in [*cuts, (k * hop_n, None)]:
                if cut > prev:
                    y[c, prev:cut], self._zi[c] = iir.sosfilt(self._sos[c], y[c, prev:cut],
                                                              self._zi[c])
                prev = cut
                if hits is not None:
                    self._hum_result(c, a + cut, hits[c])
            yy = y[c].reshape(k, hop_n)
            sq = yy * yy
            self._ms.array[c, h] = sq.sum(axis=1) / hop_n
            dd = np.diff(yy, axis=1)
            np.multiply(dd, dd, out=dd)
            self._dms.array[c, h] = dd.sum(axis=1) / max(1, hop_n - 1)
        self._n_in += k * hop_n

    def _segments(self, seg: NDArray[np.float64], valid: NDArray[np.bool_], a: int
                  ) -> list[tuple[int, NDArray[np.bool_] | None]]:
        """Copy hum-segment samples of the chunk; test the segments that end in it.

        Returns (offset of the segment's end in the chunk, per-channel validity-masked line
        hits) for each segment ending inside ``[a, a + len)``.
        """
        seg_n, every_n = self._hum.seg_n, self._hum.every_n
        b = a + seg.shape[1]
        ends: list[int] = []
        bufs: list[NDArray[np.float64]] = []
        oks: list[NDArray[np.bool_]] = []
        j = max(0, (a - seg_n) // every_n)
        while j * every_n < b:
            s0 = j * every_n
            s1 = s0 + seg_n
            lo, hi = max(s0, a), min(s1, b)
            if lo < hi:
                self._seg_buf[:, lo - s0:hi - s0] = seg[:, lo - a:hi - a]
                self._seg_valid[lo - s0:hi - s0] = valid[lo - a:hi - a]
                if hi == s1:
                    ends.append(s1 - a)
                    bufs.append(self._seg_buf.copy())
                    oks.append(np.isfinite(self._seg_buf).all(axis=1)
                               & bool(self._seg_valid.all()))
            j += 1
        if not ends:
            return []
        ok = np.stack(oks)  # (n_segments, n_channels)
        hits = np.zeros((*ok.shape, len(self._hum.lines)), dtype=bool)
        if ok.any():
            hits[ok] = self._hum.hits(np.stack(bufs)[ok])
        # column 0: whether the channel's segment was valid (else nothing is learned)
        table = np.concatenate((ok[..., None], hits), axis=2)
        return [(e, table[i]) for i, e in enumerate(ends)]

    def _hum_result(self, c: int, end: int, hits: NDArray[np.bool_]) -> None:
        """Apply one tested segment of channel ``c`` ending at absolute sample ``end``."""
        if not hits[0]:
            return  # invalid segment: nothing learned
        new = [f for f, hit in zip(self._hum.lines, hits[1:], strict=True)
               if hit and f not in self._notch[c]]
        if new:
            parts = [self._sos[c]]
            parts += [iir.notch_sos(f, self.params.notch_q, self.fs_hz) for f in new]
            self._sos[c] = np.concatenate(parts, axis=0)
            self._zi[c] = np.concatenate((self._zi[c], np.zeros((len(new), 2))), axis=0)
            self._notch[c].extend(new)
            h0 = self._prev_seg_end[c] // self.hop_n
            h1 = min(-(-end // self.hop_n), self._reason.n)
            rr = self._reason.array[c, h0:h1]
            rr[rr == REASON_VALID] = REASON_HUM
            logger.info("mains hum measured at %s Hz on channel %d at %.1f s; notching from "
                        "there, %.1f s before marked 'hum'", new, c, end / self.fs_hz,
                        (h1 - h0) * self.hop_s)
        self._prev_seg_end[c] = end


class EnvelopeFrontEnd(_HopFrontEnd):
    """Streaming front end for pre-computed EMG envelopes (analog front ends).

    An envelope (MyoWare-style: rectified and smoothed, any unit, any rate of at least one
    sample per hop) is treated as an RMS-like amplitude: each 0.1-s hop gets the mean of the
    squared samples whose time falls in it, and the rest of the detector runs unchanged on
    these hop mean squares. The floor/ratio stage makes the unit irrelevant (gain-invariant
    as for raw EMG), but the envelope must be zero-based: subtract any resting offset of the
    amplifier first, or the ratios shrink.

    Parameters
    ----------
    fs_hz : float
        Envelope sample rate (Hz), at least ``1 / hop_s`` (10 Hz).
    n_channels : int
    params : DetectionParams, optional

    Notes
    -----
    Reasons: NaN in the hop → gap; the caller's ``valid`` False → lead-off. Flat-line and
    rail tests are not applied: a slow envelope is legitimately flat within a hop and has no
    known rail. Sample ``i`` belongs to hop ``floor(i / (fs_hz * hop_s))``; a hop is complete
    when a sample of a later hop has arrived.

    References
    ----------
    .. [1] Merletti R., Di Torino P., Standards for reporting EMG data, J Electromyogr
       Kinesiol 9(1):III-IV, 1999 (envelope = rectified, low-pass filtered EMG).
    """

    def __init__(self, fs_hz: float, n_channels: int, *,
                 params: DetectionParams | None = None) -> None:
        self.params = params or DetectionParams()
        self.hop_s = float(self.params.hop_s)
        if not math.isfinite(fs_hz) or fs_hz * self.hop_s < 1.0:
            raise DetectionError(
                f"envelope rate {fs_hz!r} Hz is below one sample per {self.hop_s:g}-s step; "
                f"record the envelope at {1.0 / self.hop_s:g} Hz or more")
        if int(n_channels) != n_channels or n_channels < 1:
            raise DetectionError(f"n_channels = {n_channels!r}; pass 1 or more channels")
        self.fs_hz = float(fs_hz)
        self.n_channels = int(n_channels)
        self.band_hz = (math.nan, math.nan)
        self.notch_hz: tuple[tuple[float, ...], ...] = ((),) * self.n_channels
        self._per_hop = self.fs_hz * self.hop_s
        self._tail = np.empty((self.n_channels, 0))
        self._tail_valid = np.empty(0, dtype=bool)
        self._n_in = 0  # samples consumed into complete hops
        self._ms = _Grow(self.n_channels, np.float64, np.nan)
        self._reason = _Grow(self.n_channels, np.uint8, 0)

    def _hop_of(self, i: NDArray[np.int64] | int) -> NDArray[np.int64]:
        return np.floor(np.asarray(i) / self._per_hop).astype(np.int64)

    def push(self, envelope: NDArray[np.floating], valid: NDArray[np.bool_] | None = None
             ) -> int:
        """Feed the next block of envelope samples; returns the complete hops so far.

        Parameters
        ----------
        envelope : ndarray, shape (n_channels, n) (or (n,) for one channel)
            Envelope samples in any unit, zero at no activity.
        valid : ndarray of bool, shape (n,), optional
        """
        x, v = _check_block(np.asarray(envelope), self.n_channels, valid, "envelope")
        n = int(x.shape[1])
        if n == 0:
            return self.n_hops
        total = int(self._tail.shape[1]) + n
        hops = self._hop_of(np.arange(self._n_in, self._n_in + total + 1, dtype=np.int64))
        done = int(np.searchsorted(hops, hops[-1]))  # samples of hops before the unseen one
        return self._push_hops(
            x, v, done, lambda pos: min(done, int(np.searchsorted(hops, hops[pos] + CHUNK_HOPS))))

    def _process(self, seg: NDArray[np.float64], valid: NDArray[np.bool_]) -> None:
        m = seg.shape[1]
        hop = self._hop_of(np.arange(self._n_in, self._n_in + m, dtype=np.int64))
        h0 = int(hop[0])
        rel = hop - h0
        k = int(rel[-1]) + 1
        finite = np.isfinite(seg)
        count = np.bincount(rel, minlength=k).astype(np.float64)
        bad_valid = np.bincount(rel, weights=(~valid).astype(np.float64), minlength=k) > 0
        h = self._ms.extend(k)
        self._reason.extend(k)
        for c in range(self.n_channels):
            e = np.where(finite[c], seg[c], 0.0)
            self._ms.array[c, h] = np.bincount(rel, weights=e * e, minlength=k) / count
            gap = np.bincount(rel, weights=(~finite[c]).astype(np.float64), minlength=k) > 0
            reason = np.zeros(k, dtype=np.uint8)
            reason[bad_valid] = REASON_LEAD_OFF
            reason[gap] = REASON_GAP
            self._reason.array[c, h] = reason
        self._n_in += m


def grow_invalid(reason: NDArray[np.uint8], margin_hops: int) -> NDArray[np.uint8]:
    """Widen every invalid span by ``margin_hops`` steps on both sides (filter transients).

    Parameters
    ----------
    reason : ndarray of uint8, shape (n_channels, n_hops)
    margin_hops : int

    Returns
    -------
    ndarray of uint8, shape (n_channels, n_hops)
        Where widened spans of different reasons meet, gap beats saturated beats lead-off
        beats hum. Each step depends only on the steps within ``margin_hops`` of it.
    """
    grown = np.zeros_like(reason)
    for code in _REASON_ORDER:  # later codes win
        grown[_dilate(reason == code, margin_hops)] = code
    return grown


def _dilate(mask: NDArray[np.bool_], k: int) -> NDArray[np.bool_]:
    """Grow True spans by ``k`` steps on both sides along the last axis (vectorised)."""
    if k <= 0 or not mask.any():
        return mask
    n = mask.shape[-1]
    c = np.concatenate((np.zeros((*mask.shape[:-1], 1), dtype=np.int64),
                        np.cumsum(mask, axis=-1, dtype=np.int64)), axis=-1)
    lo = np.clip(np.arange(n) - k, 0, n)
    hi = np.clip(np.arange(n) + k + 1, 0, n)
    out: NDArray[np.bool_] = (c[..., hi] - c[..., lo]) > 0
    return out


def hop_envelope(hop_ms_uv2: NDArray[np.float64], reason: NDArray[np.uint8], hop_s: float, *,
                 params: DetectionParams | None = None,
                 notch_hz: tuple[tuple[float, ...], ...] = (),
                 band_hz: tuple[float, float] = (math.nan, math.nan)) -> Envelope:
    """Gated 1-s RMS envelope from hop-level mean squares and raw reasons.

    Parameters
    ----------
    hop_ms_uv2 : ndarray of float64, shape (n_channels, n_hops)
        Mean square per hop, as kept by :class:`EmgFrontEnd` or :class:`EnvelopeFrontEnd`.
    reason : ndarray of uint8, shape (n_channels, n_hops)
        Raw reasons per hop (before widening).
    hop_s : float
        Hop length (s).
    params : DetectionParams, optional
    notch_hz, band_hz
        Recorded on the result.

    Returns
    -------
    Envelope
        Reasons widened by ``invalid_margin_s``; invalid hops ``nan``; the envelope at a step
        is the square root of the *median* of the hop mean squares in the centred
        ``envelope_window_s`` window (blind to anything covering less than half of it).
        Each step depends only on steps within ``max(envelope_window_s / 2,
        invalid_margin_s)`` of it, so a slice computed inside a longer array equals the
        whole-array result away from the slice's edges.

    References
    ----------
    .. [1] Merletti R., Di Torino P., Standards for reporting EMG data, J Electromyogr
       Kinesiol 9(1):III-IV, 1999 (RMS envelope).
    """
    params = params or DetectionParams()
    grown = grow_invalid(reason, round(params.invalid_margin_s / hop_s))
    ms = np.where(grown == REASON_VALID, hop_ms_uv2, np.nan)
    w = max(1, round(params.envelope_window_s / hop_s))
    rms = np.sqrt(_centred_median(ms, w))
    return Envelope(rms_uv=rms, hop_ms_uv2=ms, reason=grown, hop_s=hop_s, notch_hz=notch_hz,
                    band_hz=band_hz)


def emg_envelope(emg_uv: NDArray[np.floating], fs_hz: float, *,
                 valid: NDArray[np.bool_] | None = None,
                 params: DetectionParams | None = None) -> Envelope:
    """Band-pass and artefact-gated 1-s RMS envelope of every channel, at 10 Hz.

    This is :class:`EmgFrontEnd` pushed the whole array (in 200-s chunks internally) followed
    by :func:`hop_envelope`: streaming the same samples in any blocks gives the same numbers.

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
    See :class:`EmgFrontEnd` (band-pass, causal hum notch, reasons) and
    :func:`hop_envelope` (median-of-mean-squares RMS, widening by ``invalid_margin_s``).
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
    fe = EmgFrontEnd(fs_hz, x2.shape[0], params=params)
    if x2.shape[1] < fe.hop_n:
        raise DetectionError(f"EMG has only {x2.shape[1]} samples; pass at least {fe.hop_n}")
    fe.push(x2, valid)
    return hop_envelope(fe.hop_ms_uv2, fe.hop_reason, fe.hop_s, params=params,
                        notch_hz=fe.notch_hz, band_hz=fe.band_hz)


def _centred_median(a: NDArray[np.float64], w: int) -> NDArray[np.float64]:
    """Median over a centred window of ``w`` steps along the last axis (NaN propagates).

    Rows of the window are sorted (NaN sorts last) and the middle one or two taken: the
    same values as ``np.median`` at a third of its cost for the 10-step windows used here.
    """
    if w <= 1:
        return a.copy()
    left = (w - 1) // 2
    n = a.shape[1]
    padded = np.empty((a.shape[0], n + w - 1))
    padded[:, left:left + n] = a
    # Edges: repeat the nearest value instead of NaN padding so that the first and last
    # half-second keep a value.
    if n:
        padded[:, :left] = a[:, :1]
        padded[:, left + n:] = a[:, -1:]
    win = np.lib.stride_tricks.sliding_window_view(padded, w, axis=1)
    out: NDArray[np.float64] = np.empty(a.shape)
    k = (w - 1) // 2
    for c0 in range(0, n, MEDIAN_CHUNK_HOPS):  # bounded temporary: the sorted copy
        srt = np.sort(win[:, c0:c0 + MEDIAN_CHUNK_HOPS], axis=2)
        mid = srt[..., k] if w % 2 else (srt[..., k] + srt[..., k + 1]) / 2.0
        out[:, c0:c0 + MEDIAN_CHUNK_HOPS] = np.where(np.isnan(srt[..., -1]), np.nan, mid)
    return out


def emg_floor(rms_uv: NDArray[np.float64], hop_s: float,
              params: DetectionParams | None = None) -> NDArray[np.float64]:
    """Adaptive per-channel floor of an envelope, at the hop rate.

    The envelope is cut into ``floor_block_s`` blocks; each block with at least half its steps
    valid gives its median. The floor of a block is the ``floor_quantile`` of the block medians
    within a centred ``floor_window_s`` window (truncated at the ends of the night), and is
    linearly interpolated between neighbouring block centres (the one usable neighbour when
    the other has no value; ``nan`` when neither has). A cramp shorter than half the window
    cannot lift it. Each step depends only on blocks within ``floor_window_s / 2`` plus one
    block of it (bounded look-ahead, see :mod:`crampsense.detection.stream`).

    Parameters
    ----------
    rms_uv : ndarray, shape (n_channels, n_hops)
        Envelope with ``nan`` for invalid steps.
    hop_s : float
    params : DetectionParams, optional

    Returns
    -------
    ndarray, shape (n_channels, n_hops)
        Floor in the envelope's unit; ``nan`` where no block within reach has a value.

    References
    ----------
    .. [1] Hodges P.W., Bui B.H., A comparison of computer-based methods for the
       determination of onset of muscle contraction using electromyography,
       Electroencephalogr Clin Neurophysiol 101:511-519, 1996 (thresholds relative to a
       baseline level).
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
    return _interp_blocks(fl, bn, n_hops)


def _interp_blocks(fl: NDArray[np.float64], bn: int, n_hops: int) -> NDArray[np.float64]:
    """Per-hop floor from per-block values: linear between the two neighbouring block
    centres; the one usable neighbour when the other is not (nan or 0); ``nan`` when neither
    is. Using only the two neighbours keeps the look-ahead bounded (one block)."""
    n_blocks = fl.shape[1]
    ok = np.isfinite(fl) & (fl > 0)
    # block centres sit at hop (b + 0.5) * bn; integer arithmetic in half-hops makes the
    # fraction depend only on the position within the block, so a slice that starts on a
    # block boundary gives bit-identical values to the whole array
    twice = 2 * np.arange(n_hops, dtype=np.int64) - bn
    b = twice // (2 * bn)
    frac = (twice - b * 2 * bn) / (2.0 * bn)
    lo_i = np.clip(b, 0, n_blocks - 1)
    hi_i = np.clip(b + 1, 0, n_blocks - 1)
    lo, hi = fl[:, lo_i], fl[:, hi_i]
    lo_ok, hi_ok = ok[:, lo_i], ok[:, hi_i]
    out = np.where(lo_ok & hi_ok, lo + (hi - lo) * frac,
                   np.where(lo_ok, lo, np.where(hi_ok, hi, np.nan)))
    res: NDArray[np.float64] = out
    return res


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
