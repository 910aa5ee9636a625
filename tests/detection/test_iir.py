"""crampsense.detection.iir against scipy.signal: same poles, zeros, gains and responses.

The front end designs and runs its filters without importing ``scipy.signal`` (start-up
time); these tests import it to check that the numbers are the same to rounding.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy import signal

from crampsense.detection import iir

RATES = [100.0, 128.0, 200.0, 250.0, 256.0, 400.0, 500.0, 512.0, 1000.0, 1024.0, 1111.0,
         2000.0, 4000.0]
ORDERS = range(1, 9)
RTOL = 1e-9


def _response(sos: NDArray[np.float64], n: int = 4096) -> NDArray[np.complex128]:
    return np.asarray(signal.sosfreqz(sos, worN=np.linspace(0.0, np.pi, n))[1])


def _sorted_roots(r: NDArray[np.complex128]) -> NDArray[np.complex128]:
    return np.asarray(np.sort_complex(np.round(r, 12) + 0j))


@pytest.mark.parametrize("fs", RATES)
def test_butter_bandpass_matches_scipy(fs: float) -> None:
    high = min(450.0, 0.45 * fs)
    for order in ORDERS:
        for low in (10.0, 20.0, 30.0):
            if high <= low * 1.5:
                continue
            got = iir.butter_bandpass_sos(order, low, high, fs)
            want = signal.butter(order, [low, high], btype="bandpass", fs=fs, output="sos")
            assert got.shape == (order, 6)
            np.testing.assert_array_equal(got[:, 3], 1.0)
            np.testing.assert_array_equal(got[1:, :3], np.tile([1.0, 0.0, -1.0], (order - 1, 1)))
            z_got, p_got, k_got = signal.sos2zpk(got)
            z_want, p_want, k_want = signal.sos2zpk(want)
            np.testing.assert_allclose(_sorted_roots(p_got), _sorted_roots(p_want),
                                       rtol=0, atol=1e-10)
            np.testing.assert_allclose(np.sort(z_got.real), np.sort(z_want.real), atol=1e-6)
            assert k_got == pytest.approx(k_want, rel=RTOL)
            h_got, h_want = _response(got), _response(want)
            np.testing.assert_allclose(h_got, h_want, rtol=0, atol=RTOL * np.abs(h_want).max())


@pytest.mark.parametrize("fs", [100.0, 250.0, 1000.0, 4000.0])
def test_butter_bandpass_is_butterworth(fs: float) -> None:
    """Independent of SciPy: -3 dB at both edges, 1 at the pre-warped centre, stable."""
    low, high = 20.0, min(450.0, 0.45 * fs)
    for order in ORDERS:
        sos = iir.butter_bandpass_sos(order, low, high, fs)
        edges = 2 * np.pi * np.array([low, high]) / fs
        centre = 2 * np.arctan(np.sqrt(np.tan(edges[0] / 2) * np.tan(edges[1] / 2)))
        _, h = signal.sosfreqz(sos, worN=np.array([edges[0], centre, edges[1]]))
        np.testing.assert_allclose(np.abs(h) ** 2, [0.5, 1.0, 0.5], rtol=1e-9)
        assert h[1].real > 0
        for row in sos:
            assert np.all(np.abs(np.roots(row[3:])) < 1.0)


def _notch_cases() -> Iterator[tuple[float, float]]:
    for fs in RATES:
        for base in (50.0, 60.0):
            for f in np.arange(base, 0.45 * fs, base):
                yield fs, float(f)


@pytest.mark.parametrize(("fs", "f"), list(_notch_cases()))
def test_notch_matches_scipy(fs: float, f: float) -> None:
    for q in (5.0, 30.0, 35.0):
        got = iir.notch_sos(f, q, fs)
        want = signal.tf2sos(*signal.iirnotch(f, q, fs=fs))
        assert got.shape == (1, 6)
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=1e-15)
        h_got, h_want = _response(got), _response(want)
        np.testing.assert_allclose(h_got, h_want, rtol=0, atol=RTOL)
        # and the definition itself: a zero of the response at f
        _, h = signal.sosfreqz(got, worN=np.array([2 * np.pi * f / fs]))
        assert abs(h[0]) < 1e-9


def test_notch_bandwidth_is_f_over_q() -> None:
    fs, f, q = 1000.0, 50.0, 10.0
    sos = iir.notch_sos(f, q, fs)
    w = np.linspace(0.0, np.pi, 200_001)
    _, h = signal.sosfreqz(sos, worN=w)
    below = w[np.abs(h) ** 2 <= 0.5]
    width_hz = (below.max() - below.min()) * fs / (2 * np.pi)
    assert width_hz == pytest.approx(f / q, rel=1e-3)


def test_bad_designs_are_refused() -> None:
    with pytest.raises(ValueError, match="high_hz"):
        iir.butter_bandpass_sos(4, 20.0, 600.0, 1000.0)
    with pytest.raises(ValueError, match="order"):
        iir.butter_bandpass_sos(0, 20.0, 400.0, 1000.0)
    with pytest.raises(ValueError, match="f_hz"):
        iir.notch_sos(600.0, 30.0, 1000.0)
    sos = iir.butter_bandpass_sos(2, 20.0, 400.0, 1000.0)
    with pytest.raises(ValueError, match="zi"):
        iir.sosfilt(sos, np.zeros(10), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="a0"):
        iir.sosfilt(sos * 2.0, np.zeros(10), np.zeros((2, 2)))


def _front_end_sos() -> NDArray[np.float64]:
    return np.concatenate((iir.butter_bandpass_sos(4, 20.0, 450.0, 1000.0),
                           iir.notch_sos(50.0, 30.0, 1000.0),
                           iir.notch_sos(150.0, 30.0, 1000.0)))


def _check_sosfilt_against_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    sos = _front_end_sos()
    x = rng.normal(0.0, 30.0, 50_000) + 200.0 * np.sin(np.arange(50_000) * 0.1)
    zi = rng.normal(size=(sos.shape[0], 2))
    x_before, zi_before = x.copy(), zi.copy()
    want_y, want_zf = signal.sosfilt(sos, x, zi=zi)
    y, zf = iir.sosfilt(sos, x, zi)
    scale = np.abs(want_y).max()
    np.testing.assert_allclose(y, want_y, rtol=0, atol=RTOL * scale)
    np.testing.assert_allclose(zf, want_zf, rtol=0, atol=RTOL * scale)
    np.testing.assert_array_equal(x, x_before)  # inputs untouched
    np.testing.assert_array_equal(zi, zi_before)
    # random chunks with the state carried: the same as one call
    cuts = np.sort(rng.choice(np.arange(1, x.size), size=40, replace=False))
    parts, state = [], zi
    for a, b in zip(np.r_[0, cuts], np.r_[cuts, x.size], strict=True):
        part, state = iir.sosfilt(sos, x[a:b], state)
        parts.append(part)
    np.testing.assert_allclose(np.concatenate(parts), y, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(state, zf, rtol=0, atol=1e-12 * scale)
    # an empty block changes nothing
    empty, same = iir.sosfilt(sos, x[:0], zf)
    assert empty.shape == (0,)
    np.testing.assert_array_equal(same, zf)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sosfilt_matches_scipy_in_any_chunks(seed: int) -> None:
    iir._reset_kernel()
    assert iir.kernel_in_use() == "kernel"  # this install's SciPy has the kernel
    _check_sosfilt_against_scipy(seed)


def test_sosfilt_fallback_to_scipy_signal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(iir, "FORCE_FALLBACK", True)
    iir._reset_kernel()
    try:
        assert iir.kernel_in_use() == "scipy.signal"
        _check_sosfilt_against_scipy(4)
    finally:
        iir._reset_kernel()


def test_kernel_that_answers_differently_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """The loaded kernel must reproduce a known impulse response, else the public function."""
    monkeypatch.setattr(iir, "_reference", lambda sos, x: np.asarray(x) * 0.0 + 7.0)
    iir._reset_kernel()
    try:
        assert iir.kernel_in_use() == "scipy.signal"
    finally:
        iir._reset_kernel()


def test_kernel_missing_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(iir, "_kernel_path", lambda: None)
    iir._reset_kernel()
    try:
        assert iir.kernel_in_use() == "scipy.signal"
    finally:
        iir._reset_kernel()


def test_reference_cascade_is_a_cascade_of_df2t_sections() -> None:
    """The plain-Python cascade used to vet the kernel: y = 0.5^n for 1 / (1 - 0.5 z^-1)."""
    y = iir._reference(np.array([[1.0, 0.0, 0.0, 1.0, -0.5, 0.0]]), np.eye(1, 6)[0])
    np.testing.assert_allclose(y, 0.5 ** np.arange(6))


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True,
                          text=True, check=True).stdout.strip()


def test_analyze_path_does_not_import_scipy_signal() -> None:
    code = ("import sys, numpy as np, crampsense.cli.main, crampsense.cli.analyze\n"
            "import crampsense.detection.emg\n"
            "from crampsense.detection import emg_envelope, iir\n"
            "emg_envelope(np.random.default_rng(0).normal(0, 5, (1, 5000)), 1000.0)\n"
            "print(iir.kernel_in_use(), 'scipy.signal' in sys.modules)")
    assert _run(code) == "kernel False"


def test_scipy_signal_imported_after_the_kernel_gives_the_same_numbers() -> None:
    code = ("import numpy as np\n"
            "from crampsense.detection import iir\n"
            "sos = iir.butter_bandpass_sos(4, 20.0, 450.0, 1000.0)\n"
            "x = np.random.default_rng(0).normal(size=5000)\n"
            "y, z = iir.sosfilt(sos, x, np.zeros((4, 2)))\n"
            "from scipy import signal\n"
            "y2, z2 = signal.sosfilt(sos, x, zi=np.zeros((4, 2)))\n"
            "print(iir.kernel_in_use(), np.array_equal(y, y2) and np.array_equal(z, z2))")
    assert _run(code) == "kernel True"
