"""IIR filters of the EMG front end, designed here and run without importing ``scipy.signal``.

``import scipy.signal`` costs about 1.3 s of CPU on a modest machine (its package pulls in
``scipy.stats``, ``scipy.optimize`` and more), a third of ``crampsense analyze`` on a night.
The front end needs only a Butterworth band-pass, a mains notch and the running of
second-order sections with carried state, so this module:

- designs the band-pass from the analog Butterworth prototype (:func:`butter_bandpass_sos`)
  and the notch from its closed form (:func:`notch_sos`), both written from the textbook
  formulas cited in each function;
- runs the sections (:func:`sosfilt`) with SciPy's compiled second-order-section kernel,
  loaded straight from its extension file so that the ``scipy.signal`` package is not
  executed. That kernel is private to SciPy: it is checked on a known impulse response when
  first loaded, and when it cannot be loaded or answers differently :func:`sosfilt` falls
  back to the public ``scipy.signal.sosfilt`` (same numbers, slower start-up).

Sections are rows ``[b0, b1, b2, 1, a1, a2]`` of
``H(z) = prod (b0 + b1 z^-1 + b2 z^-2) / (1 + a1 z^-1 + a2 z^-2)``, the layout used by
``scipy.signal`` and MATLAB, so the two are interchangeable.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["butter_bandpass_sos", "kernel_in_use", "notch_sos", "sosfilt"]

logger = logging.getLogger(__name__)

_Kernel = Callable[[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]], Any]
#: The loaded kernel, ``None`` when it has to be the public function; unset before first use.
_kernel: _Kernel | None
_KERNEL_UNSET: Any = object()
_kernel = _KERNEL_UNSET
#: Set by tests to force the fallback to ``scipy.signal.sosfilt``.
FORCE_FALLBACK = False


def butter_bandpass_sos(order: int, low_hz: float, high_hz: float,
                        fs_hz: float) -> NDArray[np.float64]:
    """Digital Butterworth band-pass of ``2 * order`` poles as ``order`` second-order sections.

    Design steps:

    1. Pre-warp the edges so that the bilinear transform puts them where asked:
       ``W = 2 fs tan(pi f / fs)`` (rad/s).
    2. Poles of the analog low-pass prototype of unit cut-off: ``order`` points on the left
       half of the unit circle, ``p_k = exp(j pi (2k + order + 1) / (2 order))``.
    3. Low-pass to band-pass, ``s -> (s^2 + W0^2) / (B s)`` with ``W0 = sqrt(W1 W2)`` and
       ``B = W2 - W1``: each prototype pole ``p`` gives the two roots of
       ``s^2 - p B s + W0^2 = 0``; the ``order`` zeros at infinity become ``order`` zeros at
       ``s = 0`` and ``order`` at infinity.
    4. Bilinear transform ``z = (2 fs + s) / (2 fs - s)``: zeros at ``s = 0`` go to
       ``z = +1`` and zeros at infinity to ``z = -1``.
    5. Conjugate (or, for a real prototype pole, real) pole pairs form the denominators;
       every section has the numerator ``1 - z^-2`` (one zero at +1 and one at -1). Sections
       are ordered by pole radius, the poles nearest the unit circle last.
    6. The gain makes the response 1 at the centre frequency, the image of ``W0``
       (``w_c = 2 atan(W0 / 2 fs)``), where the analog band-pass has gain 1; it is put into
       the first section.

    Parameters
    ----------
    order : int
        Order of the low-pass prototype (1 or more); the band-pass has twice as many poles.
    low_hz, high_hz : float
        -3 dB band edges (Hz), ``0 < low_hz < high_hz < fs_hz / 2``.
    fs_hz : float
        Sample rate (Hz).

    Returns
    -------
    sos : ndarray of float64, shape (order, 6)

    References
    ----------
    .. [1] A. V. Oppenheim and R. W. Schafer, *Discrete-Time Signal Processing*, 3rd ed.,
       Pearson, 2010, ch. 7 (bilinear transformation, pre-warping, Butterworth filters,
       frequency transformations of low-pass filters).
    .. [2] T. W. Parks and C. S. Burrus, *Digital Filter Design*, Wiley, 1987 (analog
       prototypes and their frequency transformations).
    .. [3] L. B. Jackson, *Digital Filters and Signal Processing*, 3rd ed., Kluwer, 1996
       (pairing and ordering of cascaded second-order sections).
    """
    n = int(order)
    if n < 1 or n != order:
        raise ValueError(f"order must be a positive integer, got {order!r}")
    if not (fs_hz > 0 and 0 < low_hz < high_hz < fs_hz / 2):
        raise ValueError(f"need 0 < low_hz < high_hz < fs_hz / 2, got {low_hz!r}, "
                         f"{high_hz!r}, fs_hz={fs_hz!r}")
    two_fs = 2.0 * fs_hz
    w1 = two_fs * math.tan(math.pi * low_hz / fs_hz)
    w2 = two_fs * math.tan(math.pi * high_hz / fs_hz)
    w0_sq = w1 * w2
    bw = w2 - w1
    # prototype poles of the upper half plane (and the real one for odd orders); each with
    # its conjugate gives one conjugate pair of band-pass poles per root of s^2 - pBs + W0^2
    dens: list[tuple[float, float, float]] = []  # (a1, a2, largest pole radius)
    for k in range(n // 2):
        p = complex(math.cos(math.pi * (2 * k + n + 1) / (2 * n)),
                    math.sin(math.pi * (2 * k + n + 1) / (2 * n)))
        half = p * bw / 2.0
        root = (half * half - w0_sq) ** 0.5
        for s in (half + root, half - root):
            z = (two_fs + s) / (two_fs - s)
            dens.append((-2.0 * z.real, abs(z) ** 2, abs(z)))
    if n % 2:
        # the real prototype pole -1: band-pass poles -B/2 +- sqrt(B^2/4 - W0^2)
        half_r = -bw / 2.0
        disc = half_r * half_r - w0_sq
        if disc >= 0:
            s1 = half_r + math.sqrt(disc)
            s2 = half_r - math.sqrt(disc)
            z1 = (two_fs + s1) / (two_fs - s1)
            z2 = (two_fs + s2) / (two_fs - s2)
            dens.append((-(z1 + z2), z1 * z2, max(abs(z1), abs(z2))))
        else:
            s = complex(half_r, math.sqrt(-disc))
            z = (two_fs + s) / (two_fs - s)
            dens.append((-2.0 * z.real, abs(z) ** 2, abs(z)))
    dens.sort(key=lambda d: d[2])
    sos = np.zeros((n, 6), dtype=np.float64)
    sos[:, 0] = 1.0
    sos[:, 2] = -1.0
    sos[:, 3] = 1.0
    sos[:, 4] = [d[0] for d in dens]
    sos[:, 5] = [d[1] for d in dens]
    # response of the unit-gain cascade at the centre frequency: real (the bilinear image of
    # the analog band-pass, whose gain there is exactly 1, up to a real factor)
    wc = 2.0 * math.atan(math.sqrt(w0_sq) / two_fs)
    zc1 = complex(math.cos(wc), -math.sin(wc))  # z^-1 on the unit circle
    h = complex(1.0)
    for row in sos:
        h *= (1.0 - zc1 * zc1) / (1.0 + row[4] * zc1 + row[5] * zc1 * zc1)
    sos[0, :3] /= h.real
    return sos


def notch_sos(f_hz: float, q: float, fs_hz: float) -> NDArray[np.float64]:
    """Second-order notch at ``f_hz`` whose -3 dB width is ``f_hz / q``, as one section.

    With ``w0 = 2 pi f / fs``, ``dw = w0 / q`` and ``beta = tan(dw / 2)``::

        H(z) = g (1 - 2 cos(w0) z^-1 + z^-2) / (1 - 2 g cos(w0) z^-1 + (2 g - 1) z^-2),
        g = 1 / (1 + beta)

    so the zeros sit on the unit circle at ``w0``, the gain is 1 at 0 and ``pi``, and
    ``|H|^2 = 1/2`` at the two edges ``dw`` apart.

    Parameters
    ----------
    f_hz : float
        Notch frequency (Hz), ``0 < f_hz < fs_hz / 2``.
    q : float
        Quality factor ``f / bandwidth`` (> 0).
    fs_hz : float
        Sample rate (Hz).

    Returns
    -------
    sos : ndarray of float64, shape (1, 6)

    References
    ----------
    .. [1] S. J. Orfanidis, *Introduction to Signal Processing*, Prentice Hall, 1996,
       sect. 11.3 (second-order notch filters, with the 3-dB reference gain
       ``G_B^2 = 1/2``).
    """
    if not (fs_hz > 0 and 0 < f_hz < fs_hz / 2 and q > 0):
        raise ValueError(f"need 0 < f_hz < fs_hz / 2 and q > 0, got f_hz={f_hz!r}, "
                         f"q={q!r}, fs_hz={fs_hz!r}")
    w0 = 2.0 * math.pi * f_hz / fs_hz
    beta = math.tan(w0 / q / 2.0)
    g = 1.0 / (1.0 + beta)
    c = math.cos(w0)
    return np.array([[g, -2.0 * g * c, g, 1.0, -2.0 * g * c, 2.0 * g - 1.0]],
                    dtype=np.float64)


def _kernel_path() -> Path | None:
    """Extension file of SciPy's compiled section kernel, found without importing it."""
    spec = importlib.util.find_spec("scipy")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = Path(root) / "signal" / f"_sosfilt{suffix}"
            if path.is_file():
                return path
    return None


def _load_kernel() -> _Kernel | None:
    """SciPy's ``_sosfilt`` kernel loaded from its file, or ``None`` (use the public one).

    The kernel filters a C-contiguous ``(n_signals, n_samples)`` array in place and updates
    a ``(n_signals, n_sections, 2)`` state in place. It is private, so it is accepted only
    after it reproduces the impulse response of a known two-section cascade.
    """
    if FORCE_FALLBACK:
        return None
    try:
        path = _kernel_path()
        if path is None:
            return None
        # the module's init function is named after the last part of its name
        name = "scipy.signal._sosfilt"
        loader = importlib.machinery.ExtensionFileLoader(name, str(path))
        spec = importlib.util.spec_from_file_location(name, str(path), loader=loader)
        if spec is None:
            return None
        module = importlib.util.module_from_spec(spec)
        loader.exec_module(module)
        fn = module._sosfilt
        # y[n] = x[n] + 0.5 y[n-1], then y[n] = x[n] - x[n-2] - 0.25 y[n-2]
        sos = np.array([[1.0, 0.0, 0.0, 1.0, -0.5, 0.0],
                        [1.0, 0.0, -1.0, 1.0, 0.0, 0.25]])
        x = np.zeros((1, 8))
        x[0, 0] = 1.0
        zi = np.zeros((1, 2, 2))
        fn(sos, x, zi)
        if not np.allclose(x[0], _reference(sos, np.eye(1, 8)[0]), rtol=1e-12, atol=1e-15):
            logger.debug("SciPy's sosfilt kernel answered differently; using scipy.signal")
            return None
        return fn  # type: ignore[no-any-return]
    except Exception as exc:  # noqa: BLE001 - any failure means: use the public function
        logger.debug("SciPy's sosfilt kernel not loaded (%s); using scipy.signal", exc)
        return None


def _reference(sos: NDArray[np.float64], x: NDArray[np.float64]) -> NDArray[np.float64]:
    """Direct-form-II-transposed cascade in plain Python (short inputs only: tests, checks)."""
    y = np.array(x, dtype=np.float64)
    for b0, b1, b2, _a0, a1, a2 in sos:
        s1 = s2 = 0.0
        for i, v in enumerate(y):
            out = b0 * v + s1
            s1 = b1 * v - a1 * out + s2
            s2 = b2 * v - a2 * out
            y[i] = out
    return y


def kernel_in_use() -> str:
    """``"kernel"`` when the directly loaded kernel runs the sections, else ``"scipy.signal"``."""
    _get_kernel()
    return "scipy.signal" if _kernel is None else "kernel"


def _get_kernel() -> _Kernel | None:
    global _kernel  # noqa: PLW0603 - loaded once, on first use
    if _kernel is _KERNEL_UNSET:
        _kernel = _load_kernel()
    return _kernel


def _reset_kernel() -> None:
    """Forget the loaded kernel (tests)."""
    global _kernel  # noqa: PLW0603
    _kernel = _KERNEL_UNSET


def sosfilt(sos: NDArray[np.float64], x: NDArray[np.float64], zi: NDArray[np.float64]
            ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Run a cascade of second-order sections over a 1-D signal with carried state.

    Direct form II transposed per section, as ``scipy.signal.sosfilt(sos, x, zi=zi)``.

    Parameters
    ----------
    sos : ndarray, shape (n_sections, 6)
    x : ndarray of float64, shape (n,)
        Not modified.
    zi : ndarray of float64, shape (n_sections, 2)
        State at the start of ``x`` (zeros for a filter at rest); not modified.

    Returns
    -------
    y : ndarray of float64, shape (n,)
    zf : ndarray of float64, shape (n_sections, 2)
        State at the end, to pass as ``zi`` with the next block.

    References
    ----------
    .. [1] A. V. Oppenheim and R. W. Schafer, *Discrete-Time Signal Processing*, 3rd ed.,
       Pearson, 2010, ch. 6 (cascade form; transposed direct form II).
    """
    sos = np.asarray(sos, dtype=np.float64)
    if sos.ndim != 2 or sos.shape[1] != 6:
        raise ValueError(f"sos must have shape (n_sections, 6), got {sos.shape}")
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"x must be 1-D, got shape {x.shape}")
    zi = np.asarray(zi, dtype=np.float64)
    if zi.shape != (sos.shape[0], 2):
        raise ValueError(f"zi must have shape {(sos.shape[0], 2)}, got {zi.shape}")
    if not np.all(sos[:, 3] == 1.0):
        raise ValueError("sos[:, 3] (a0 of every section) must be 1")
    if x.size == 0:
        return np.zeros(0), zi.copy()
    kernel = _get_kernel()
    if kernel is None:
        from scipy import signal  # noqa: PLC0415 - 1.3 s to import; only when needed

        y, zf = signal.sosfilt(sos, x, zi=zi)
        return np.asarray(y, dtype=np.float64), np.asarray(zf, dtype=np.float64)
    y2 = np.array(x, dtype=np.float64, order="C", copy=True).reshape(1, -1)
    zf2 = np.array(zi, dtype=np.float64, order="C", copy=True).reshape(1, -1, 2)
    kernel(np.ascontiguousarray(sos), y2, zf2)
    return y2.reshape(-1), zf2.reshape(-1, 2)
