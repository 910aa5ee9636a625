"""The EMG front end's IIR filters without importing ``scipy.signal`` (about 1 s at start-up).

``import scipy.signal`` loads scipy.stats, scipy.ndimage, scipy.interpolate and rewrites
hundreds of docstrings; on a 2-core machine that was a third of ``crampsense analyze``'s
time on an 8-h night. The front end needs only three things from it, provided here:

* :func:`butter_bandpass_sos` - ``scipy.signal.butter(N, [lo, hi], "bandpass", fs=fs,
  output="sos")``;
* :func:`notch_sos` - ``scipy.signal.tf2sos(*scipy.signal.iirnotch(f, Q, fs=fs))``;
* :func:`sosfilt` - ``scipy.signal.sosfilt(sos, x, zi=zi)`` for one 1-D float64 signal.

The designs follow SciPy's own code (BSD-3-Clause; ``scipy/signal/_filter_design.py`` and
``_polyutils.py`` of SciPy 1.17) operation for operation on numpy arrays, so their
coefficients are bit-identical to SciPy's (tests/detection/test_iir.py compares them).
:func:`sosfilt` runs SciPy's compiled kernel (``scipy.signal._sosfilt``), loaded from its
file so that the ``scipy.signal`` package is not executed; if that kernel cannot be loaded
(another SciPy layout), it falls back to ``scipy.signal.sosfilt``.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["butter_bandpass_sos", "notch_sos", "sosfilt", "sosfilt_inplace"]

F64 = NDArray[np.float64]
#: Loosely typed arrays of the design code (real or complex, as in SciPy's).
A = NDArray[Any]


# --- design (ports of SciPy's functions; keep the order of operations) ---------------------


def _poly(zeros: A) -> A:
    """``scipy.signal._polyutils.poly`` (numpy's ``np.poly`` for 1-D input)."""
    seq = np.atleast_1d(np.asarray(zeros))
    if seq.shape[0] == 0:
        return np.asarray(1.0, dtype=np.real(seq).dtype)
    a: A = np.ones((1,), dtype=seq.dtype)
    one = np.ones_like(seq[0])
    for zero in seq:
        a = np.convolve(a, np.stack((one, -zero)), mode="full")
    if np.iscomplexobj(a):
        roots = np.asarray(seq, dtype=np.complex128)
        if np.all(np.sort(np.imag(roots)) == np.sort(np.imag(np.conj(roots)))):
            a = np.array(np.real(a), copy=True)
    return a


def _zpk2tf(z: Sequence[Any] | A, p: Sequence[Any] | A,
            k: float) -> tuple[A, A]:
    """``scipy.signal.zpk2tf`` for 1-D zeros."""
    za, pa = np.asarray(z), np.asarray(p)
    kk = np.asarray(k, dtype=np.result_type(np.real(za), np.real(pa), k))
    za = np.atleast_1d(za)
    kk = np.atleast_1d(kk)
    b = np.multiply(kk, _poly(za))
    a = np.atleast_1d(np.asarray(_poly(pa)))
    return b, a


def _single_zpksos(z: Sequence[Any], p: Sequence[Any], k: float) -> F64:
    sos = np.zeros(6)
    b, a = _zpk2tf(z, p, k)
    sos[3 - len(b):3] = b
    sos[6 - len(a):6] = a
    return sos


def _cplxreal(z: A) -> tuple[A, A]:
    """``scipy.signal._filter_design._cplxreal`` (default tolerance)."""
    z = np.atleast_1d(z)
    if z.size == 0:
        return z, z
    tol = 100 * np.finfo((1.0 * z).dtype).eps
    z = z[np.lexsort((abs(z.imag), z.real))]
    real_indices = abs(z.imag) <= tol * abs(z)
    zr = z[real_indices].real
    if len(zr) == len(z):
        return np.array([]), zr
    z = z[~real_indices]
    zp = z[z.imag > 0]
    zn = z[z.imag < 0]
    if len(zp) != len(zn):
        raise ValueError("Array contains complex value with no matching conjugate.")
    same_real = np.diff(zp.real) <= tol * abs(zp[:-1])
    diffs = np.diff(np.concatenate(([0], same_real, [0])))
    run_starts = np.nonzero(diffs > 0)[0]
    run_stops = np.nonzero(diffs < 0)[0]
    for i in range(len(run_starts)):
        start = run_starts[i]
        stop = run_stops[i] + 1
        for chunk in (zp[start:stop], zn[start:stop]):
            chunk[...] = chunk[np.lexsort([abs(chunk.imag)])]
    if any(abs(zp - zn.conj()) > tol * abs(zn)):
        raise ValueError("Array contains complex value with no matching conjugate.")
    zc = (zp + zn.conj()) / 2
    return zc, zr


def _nearest_idx(fro: A, to: complex, which: str) -> int:
    order = np.argsort(np.abs(fro - to))
    if which == "any":
        return int(order[0])
    mask = np.isreal(fro[order])
    if which == "complex":
        mask = ~mask
    return int(order[np.nonzero(mask)[0][0]])


def _idx_worst(p: A) -> int:
    return int(np.argmin(np.abs(1 - np.abs(p))))


def _zpk2sos(z: A, p: A, k: float) -> F64:
    """``scipy.signal.zpk2sos`` of a digital filter, ``pairing="nearest"``."""
    z, p = np.asarray(z), np.asarray(p)
    kk = np.asarray(k)
    if len(z) == len(p) == 0:
        return np.asarray([[kk, 0.0, 0.0, 1.0, 0.0, 0.0]], dtype=np.float64)
    p = np.concatenate((p, np.zeros(max(len(z) - len(p), 0))))
    z = np.concatenate((z, np.zeros(max(len(p) - len(z), 0))))
    n_sections = (max(len(p), len(z)) + 1) // 2
    if len(p) % 2 == 1:
        p = np.concatenate((p, [0.0]))
        z = np.concatenate((z, [0.0]))
    z = np.concatenate(_cplxreal(z))
    p = np.concatenate(_cplxreal(p))
    if not np.isreal(kk):
        raise ValueError("k must be real")
    kr = kk.real
    sos = np.zeros((n_sections, 6))
    for si in range(n_sections - 1, -1, -1):
        p1_idx = _idx_worst(p)
        p1 = p[p1_idx]
        p = np.delete(p, p1_idx)
        if np.isreal(p1) and np.isreal(p).sum() == 0:
            z1_idx = _nearest_idx(z, p1, "real")
            z1 = z[z1_idx]
            z = np.delete(z, z1_idx)
            sos[si] = _single_zpksos([z1, 0], [p1, 0], 1)
        elif (len(p) + 1 == len(z) and not np.isreal(p1) and np.isreal(p).sum() == 1
              and np.isreal(z).sum() == 1):
            z1_idx = _nearest_idx(z, p1, "complex")
            z1 = z[z1_idx]
            z = np.delete(z, z1_idx)
            sos[si] = _single_zpksos([z1, z1.conj()], [p1, p1.conj()], 1)
        else:
            if np.isreal(p1):
                prealidx = np.flatnonzero(np.isreal(p))
                p2_idx = int(prealidx[_idx_worst(p[prealidx])])
                p2 = p[p2_idx]
                p = np.delete(p, p2_idx)
            else:
                p2 = p1.conj()
            if len(z) > 0:
                z1_idx = _nearest_idx(z, p1, "any")
                z1 = z[z1_idx]
                z = np.delete(z, z1_idx)
                if not np.isreal(z1):
                    sos[si] = _single_zpksos([z1, z1.conj()], [p1, p2], 1)
                elif len(z) > 0:
                    z2_idx = _nearest_idx(z, p1, "real")
                    z2 = z[z2_idx]
                    z = np.delete(z, z2_idx)
                    sos[si] = _single_zpksos([z1, z2], [p1, p2], 1)
                else:
                    sos[si] = _single_zpksos([z1], [p1, p2], 1)
            else:
                sos[si] = _single_zpksos([], [p1, p2], 1)
    if len(p) or len(z):
        raise ValueError("zpk2sos left poles or zeros unpaired")
    sos[0][:3] *= kr
    return sos


def butter_bandpass_sos(order: int, low_hz: float, high_hz: float, fs_hz: float) -> F64:
    """``scipy.signal.butter(order, [low_hz, high_hz], btype="bandpass", fs=fs_hz,
    output="sos")``, bit for bit."""
    n = int(order)
    if n < 1 or not 0 < low_hz < high_hz < fs_hz / 2:
        raise ValueError(f"no band-pass of order {order!r} for {low_hz!r}-{high_hz!r} Hz at "
                         f"fs = {fs_hz!r} Hz; need 0 < low < high < fs / 2")
    # iirfilter: normalised edges, pre-warped with fs = 2
    wn = np.asarray([low_hz, high_hz], dtype=np.float64) / (float(fs_hz) / 2)
    fs = 2.0
    warped = 2 * fs * np.tan(np.pi * wn / fs)
    bw = warped[1] - warped[0]
    wo = np.sqrt(warped[0] * warped[1])
    # buttap
    z: A = np.asarray([], dtype=np.float64)
    m = np.arange(-n + 1, n, 2, dtype=np.float64)
    p: A = -np.exp(1j * np.pi * m / (2 * n))
    k = 1.0
    # lp2bp_zpk
    z, p = z.astype(np.result_type(z, p)), p.astype(np.result_type(z, p))
    wo_f, bw_f = float(wo), float(bw)
    degree = p.shape[0] - z.shape[0]
    z_lp = (z * bw_f / 2).astype(np.complex128)
    p_lp = (p * bw_f / 2).astype(np.complex128)
    z_bp = np.concatenate((z_lp + np.sqrt(z_lp**2 - wo_f**2), z_lp - np.sqrt(z_lp**2 - wo_f**2)))
    p_bp = np.concatenate((p_lp + np.sqrt(p_lp**2 - wo_f**2), p_lp - np.sqrt(p_lp**2 - wo_f**2)))
    z_bp = np.concatenate((z_bp, np.zeros(degree)))
    k_bp = k * bw_f**degree
    # bilinear_zpk
    degree = p_bp.shape[0] - z_bp.shape[0]
    fs2 = 2.0 * fs
    z_z = (fs2 + z_bp) / (fs2 - z_bp)
    p_z = (fs2 + p_bp) / (fs2 - p_bp)
    z_z = np.concatenate((z_z, -np.ones(degree)))
    k_z = k_bp * np.real(np.prod(fs2 - z_bp) / np.prod(fs2 - p_bp))
    return _zpk2sos(z_z, p_z, float(k_z))


def notch_sos(f_hz: float, q: float, fs_hz: float) -> F64:
    """``scipy.signal.tf2sos(*scipy.signal.iirnotch(f_hz, q, fs=fs_hz))``, bit for bit."""
    w0 = 2 * float(f_hz) / float(fs_hz)
    if not 0.0 < w0 < 1.0:
        raise ValueError(f"notch at {f_hz!r} Hz is outside 0-{fs_hz / 2!r} Hz")
    bw = w0 / float(q) * math.pi
    w0 = w0 * math.pi
    beta = math.tan(bw / 2.0)
    gain = 1.0 / (1.0 + beta)
    b = gain * np.asarray([1.0, -2.0 * math.cos(w0), 1.0])
    a = np.asarray([1.0, -2.0 * gain * math.cos(w0), (2.0 * gain - 1.0)])
    # tf2zpk (normalize: a[0] is 1, no leading zeros in b)
    num, den = b / a[0], a / a[0]
    k = num[0]
    num = num / num[0]
    return _zpk2sos(np.roots(num), np.roots(den), float(k))


# --- filtering ----------------------------------------------------------------------------

_Kernel = Callable[[F64, F64, F64], None]


def _load_kernel() -> _Kernel | None:
    """SciPy's compiled ``_sosfilt(sos, x, zi)`` (in place), without ``scipy.signal``."""
    name = "scipy.signal._sosfilt"
    mod = sys.modules.get(name)
    if mod is None:
        try:
            spec = importlib.util.find_spec("scipy")
            if spec is None or not spec.submodule_search_locations:
                return None
            folder = Path(next(iter(spec.submodule_search_locations))) / "signal"
            files = [folder / f"_sosfilt{s}" for s in importlib.machinery.EXTENSION_SUFFIXES]
            path = next((f for f in files if f.is_file()), None)
            if path is None:
                return None
            kspec = importlib.util.spec_from_file_location(name, path)
            if kspec is None or kspec.loader is None:
                return None
            mod = importlib.util.module_from_spec(kspec)
            kspec.loader.exec_module(mod)
            sys.modules[name] = mod  # a later ``import scipy.signal`` reuses it
        except (ImportError, OSError):
            return None
    kernel = getattr(mod, "_sosfilt", None)
    return kernel if callable(kernel) else None


_KERNEL: list[_Kernel | None] = []


def _kernel() -> _Kernel | None:
    if not _KERNEL:
        _KERNEL.append(_load_kernel())
    return _KERNEL[0]


def sosfilt(sos: F64, x: NDArray[np.float64], zi: F64) -> tuple[F64, F64]:
    """``scipy.signal.sosfilt(sos, x, zi=zi)`` of one 1-D signal (float64 throughout).

    Parameters
    ----------
    sos : ndarray of float64, shape (n_sections, 6)
    x : ndarray of float64, shape (n,)
    zi : ndarray of float64, shape (n_sections, 2)
        State before ``x`` (not modified).

    Returns
    -------
    y : ndarray of float64, shape (n,)
    zf : ndarray of float64, shape (n_sections, 2)
        State after ``x``.
    """
    y = np.array(x, dtype=np.float64, order="C")
    return y, sosfilt_inplace(sos, y, zi)


def sosfilt_inplace(sos: F64, y: F64, zi: F64) -> F64:
    """:func:`sosfilt` overwriting ``y`` (1-D, C-contiguous float64) with its output.

    Returns the state after ``y`` (shape (n_sections, 2)); ``zi`` is not modified.
    """
    if y.dtype != np.float64 or y.ndim != 1 or not y.flags.c_contiguous:
        raise ValueError("sosfilt_inplace filters 1-D C-contiguous float64 arrays")
    kernel = _kernel()
    if kernel is None:  # pragma: no cover - only with a SciPy of another layout
        from scipy import signal  # noqa: PLC0415

        out, zf = signal.sosfilt(sos, y, zi=zi)
        y[...] = out
        return np.asarray(zf, dtype=np.float64)
    state = np.array(zi, dtype=np.float64, order="C").reshape(1, -1, 2)
    kernel(np.ascontiguousarray(sos, dtype=np.float64), y.reshape(1, -1), state)
    return state.reshape(-1, 2)
