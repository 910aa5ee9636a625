"""crampsense.detection.iir against scipy.signal: the same coefficients and outputs, bit for bit.

The front end designs and runs its filters without importing ``scipy.signal`` (start-up
time); these tests import it to check that nothing changed.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy import signal

from crampsense.detection import iir

RATES = [100.0, 200.0, 250.0, 256.0, 400.0, 500.0, 512.0, 1000.0, 1024.0, 1111.0, 2000.0,
         4000.0]


@pytest.mark.parametrize("fs", RATES)
def test_butter_bandpass_is_scipys(fs: float) -> None:
    high = min(450.0, 0.45 * fs)
    for order in (1, 2, 3, 4, 5, 6, 8):
        for low in (10.0, 20.0, 30.0):
            if high <= low * 1.5:
                continue
            want = signal.butter(order, [low, high], btype="bandpass", fs=fs, output="sos")
            np.testing.assert_array_equal(iir.butter_bandpass_sos(order, low, high, fs), want)


@pytest.mark.parametrize("fs", RATES)
def test_notch_is_scipys(fs: float) -> None:
    for f in np.arange(50.0, 0.45 * fs, 10.0):
        for q in (10.0, 30.0, 35.0):
            want = signal.tf2sos(*signal.iirnotch(float(f), q, fs=fs))
            np.testing.assert_array_equal(iir.notch_sos(float(f), q, fs), want)


def test_sosfilt_is_scipys_with_state() -> None:
    rng = np.random.default_rng(3)
    sos = np.concatenate((iir.butter_bandpass_sos(4, 20.0, 450.0, 1000.0),
                          iir.notch_sos(50.0, 30.0, 1000.0)))
    zi = rng.normal(size=(sos.shape[0], 2))
    zi_before = zi.copy()
    x = rng.normal(0.0, 30.0, 20_000)
    x_before = x.copy()
    y, zf = iir.sosfilt(sos, x, zi)
    want_y, want_zf = signal.sosfilt(sos, x, zi=zi)
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(zf, want_zf)
    np.testing.assert_array_equal(x, x_before)  # inputs untouched
    np.testing.assert_array_equal(zi, zi_before)
    # split anywhere: the same numbers
    y1, z1 = iir.sosfilt(sos, x[:7_777], zi)
    y2, z2 = iir.sosfilt(sos, x[7_777:], z1)
    np.testing.assert_array_equal(np.concatenate((y1, y2)), want_y)
    np.testing.assert_array_equal(z2, want_zf)


def test_bad_designs_are_refused() -> None:
    with pytest.raises(ValueError, match="band-pass"):
        iir.butter_bandpass_sos(4, 20.0, 600.0, 1000.0)
    with pytest.raises(ValueError, match="notch"):
        iir.notch_sos(600.0, 30.0, 1000.0)


def test_analyze_imports_no_scipy_signal() -> None:
    code = ("import sys, numpy as np, crampsense.cli.main, crampsense.cli.analyze\n"
            "from crampsense.detection import emg_envelope\n"
            "emg_envelope(np.random.default_rng(0).normal(0, 5, (1, 5000)), 1000.0)\n"
            "print(sorted(m for m in sys.modules if m.startswith(('scipy.signal', "
            "'scipy.stats', 'scipy.ndimage'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out in ("[]", "['scipy.signal._sosfilt']")


def test_scipy_signal_imported_after_the_kernel_still_works() -> None:
    """The kernel module is registered under its own name; a later ``import scipy.signal``
    reuses it and gives the same numbers."""
    code = ("import numpy as np\n"
            "from crampsense.detection import iir\n"
            "sos = iir.butter_bandpass_sos(4, 20.0, 450.0, 1000.0)\n"
            "x = np.random.default_rng(0).normal(size=5000)\n"
            "y, z = iir.sosfilt(sos, x, np.zeros((4, 2)))\n"
            "from scipy import signal\n"
            "y2, z2 = signal.sosfilt(sos, x, zi=np.zeros((4, 2)))\n"
            "print(np.array_equal(y, y2) and np.array_equal(z, z2))")
    out = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True,
                         text=True, check=True).stdout.strip()
    assert out == "True"
