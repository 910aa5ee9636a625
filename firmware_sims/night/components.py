"""Building blocks of a synthetic leg signal, each a pure function of absolute time.

Every component renders into a tile given the tile's sample times, so its contribution does
not depend on how a night is read (chunk invariance comes for free). Random numbers never
appear here: they are drawn when an event is built (schedule time) or per tile by the
renderer.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

#: Ricker templates are evaluated out to this many widths; beyond it they are < 1e-4 of peak.
RICKER_SUPPORT_SIGMAS: Final = 5.0
#: An electrode pop is drawn until this many time constants (exp(-10) < 5e-5 of the step).
POP_SUPPORT_TAUS: Final = 10.0
#: Gaussian bumps are evaluated out to this many widths (exp(-12.5) ~ 4e-6 of peak).
BUMP_SUPPORT_SIGMAS: Final = 5.0


def _span(t_s: F64, lo_s: float, hi_s: float) -> tuple[int, int]:
    """Index range of sorted times ``t_s`` inside ``[lo_s, hi_s]``."""
    j0 = int(np.searchsorted(t_s, lo_s, side="left"))
    j1 = int(np.searchsorted(t_s, hi_s, side="right"))
    return j0, j1


@dataclass(frozen=True, eq=False)
class Envelope:
    """EMG activity as excess amplitude over the floor, piecewise linear in time.

    The rendered activity is ``floor · a(t) · noise`` with unit in-band noise, so a channel's
    in-band RMS is ``floor · sqrt(1 + Σ a²)`` where several envelopes overlap.

    Attributes
    ----------
    t_s : ndarray, shape (k,)
        Strictly increasing control times (s).
    amp : ndarray, shape (n_ch, k)
        Excess amplitude (× floor RMS) at the control times; zero at both ends.
    """

    t_s: F64
    amp: F64

    @property
    def lo_s(self) -> float:
        return float(self.t_s[0])

    @property
    def hi_s(self) -> float:
        return float(self.t_s[-1])

    def shifted(self, dt_s: float) -> Envelope:
        return replace(self, t_s=self.t_s + dt_s)

    def add_power(self, t_s: F64, out_pow: F64) -> None:
        """Add ``a(t)²`` per channel into ``out_pow`` (shape (n_ch, n))."""
        j0, j1 = _span(t_s, self.lo_s, self.hi_s)
        if j1 <= j0:
            return
        tt = t_s[j0:j1]
        for ch in range(out_pow.shape[0]):
            a = np.interp(tt, self.t_s, self.amp[ch])
            out_pow[ch, j0:j1] += a * a


@dataclass(frozen=True, eq=False)
class Spikes:
    """Ricker ("Mexican hat") potentials in µV: motor-unit potentials or QRS crosstalk.

    ``r(t) = (1 - t²/σ²) · exp(-t²/(2σ²))`` peaks at ``1/(π·σ·√2)`` Hz.

    Attributes
    ----------
    times_s : ndarray, shape (m,)
        Sorted peak times (s).
    sigma_s : ndarray, shape (m,)
        Widths (s).
    amp_uv : ndarray, shape (n_ch, m)
        Peak amplitude per channel (µV, signed).
    """

    times_s: F64
    sigma_s: F64
    amp_uv: F64

    @property
    def lo_s(self) -> float:
        return float(self.times_s[0] - RICKER_SUPPORT_SIGMAS * self.sigma_s.max())

    @property
    def hi_s(self) -> float:
        return float(self.times_s[-1] + RICKER_SUPPORT_SIGMAS * self.sigma_s.max())

    def shifted(self, dt_s: float) -> Spikes:
        return replace(self, times_s=self.times_s + dt_s)

    def add(self, i0: int, fs_hz: float, out: F64) -> None:
        """Add the potentials falling on samples ``i0 .. i0+n-1`` into ``out`` (n_ch, n)."""
        n = out.shape[1]
        half_s = RICKER_SUPPORT_SIGMAS * float(self.sigma_s.max())
        k0, k1 = _span(self.times_s, i0 / fs_hz - half_s, (i0 + n - 1) / fs_hz + half_s)
        if k1 <= k0:
            return
        times = self.times_s[k0:k1]
        sig = self.sigma_s[k0:k1]
        w = int(np.ceil(half_s * fs_hz))
        centre = np.rint(times * fs_hz).astype(np.int64)
        idx = centre[:, None] + np.arange(-w, w + 1)[None, :]  # absolute sample index
        tt = idx / fs_hz - times[:, None]
        x2 = (tt / sig[:, None]) ** 2
        shape = (1.0 - x2) * np.exp(-0.5 * x2)
        local = idx - i0
        valid = (local >= 0) & (local < n)
        loc = local[valid]
        for ch in range(out.shape[0]):
            weights = (self.amp_uv[ch, k0:k1][:, None] * shape)[valid]
            out[ch] += np.bincount(loc, weights=weights, minlength=n)


@dataclass(frozen=True, eq=False)
class Pop:
    """An electrode pop: a step that decays exponentially, ``A · exp(-(t - t0)/τ)`` for t ≥ t0.

    Attributes
    ----------
    t0_s : float
    tau_s : float
    amp_uv : ndarray, shape (n_ch,)
    """

    t0_s: float
    tau_s: float
    amp_uv: F64

    @property
    def lo_s(self) -> float:
        return self.t0_s

    @property
    def hi_s(self) -> float:
        return self.t0_s + POP_SUPPORT_TAUS * self.tau_s

    def shifted(self, dt_s: float) -> Pop:
        return replace(self, t0_s=self.t0_s + dt_s)

    def add(self, t_s: F64, out: F64) -> None:
        j0, j1 = _span(t_s, self.lo_s, self.hi_s)
        if j1 <= j0:
            return
        decay = np.exp(-(t_s[j0:j1] - self.t0_s) / self.tau_s)
        out[:, j0:j1] += self.amp_uv[:, None] * decay[None, :]


@dataclass(frozen=True, eq=False)
class Sines:
    """A sum of sinusoids under a raised-cosine fade window (mains hum, wander, gait).

    ``x_c(t) = w(t) · Σ_k amp[c, k] · sin(2π f_k t + phase[c, k])``, ``w`` rising from 0 to 1
    over ``fade_s`` after ``t0_s`` and falling back before ``t1_s``.

    Attributes
    ----------
    t0_s, t1_s : float
    fade_s : float
    freq_hz : ndarray, shape (k,)
    amp : ndarray, shape (n_ch, k)
        Amplitude per channel (µV for EMG, mg for acceleration).
    phase_rad : ndarray, shape (n_ch, k)
        Phase at ``ref_s``.
    ref_s : float
        Time origin of the phases (moves with the component, so gait stays in step with the
        EMG bursts built beside it).
    """

    t0_s: float
    t1_s: float
    fade_s: float
    freq_hz: F64
    amp: F64
    phase_rad: F64
    ref_s: float = 0.0

    @property
    def lo_s(self) -> float:
        return self.t0_s

    @property
    def hi_s(self) -> float:
        return self.t1_s

    def shifted(self, dt_s: float) -> Sines:
        return replace(self, t0_s=self.t0_s + dt_s, t1_s=self.t1_s + dt_s, ref_s=self.ref_s + dt_s)

    def add(self, t_s: F64, out: F64, max_freq_hz: float) -> None:
        """Add into ``out`` (n_ch, n); components at or above ``max_freq_hz`` are skipped."""
        j0, j1 = _span(t_s, self.t0_s, self.t1_s)
        if j1 <= j0:
            return
        keep = self.freq_hz < max_freq_hz
        if not keep.any():
            return
        tt = t_s[j0:j1]
        arg = 2.0 * np.pi * self.freq_hz[keep][:, None] * (tt - self.ref_s)[None, :]
        s, c = np.sin(arg), np.cos(arg)
        amp = self.amp[:, keep]
        ph = self.phase_rad[:, keep]
        wave = (amp * np.cos(ph)) @ s + (amp * np.sin(ph)) @ c
        out[:, j0:j1] += wave * _fade(tt, self.t0_s, self.t1_s, self.fade_s)[None, :]


def _fade(t_s: F64, t0_s: float, t1_s: float, fade_s: float) -> F64:
    """Raised-cosine window: 0 at ``t0_s`` and ``t1_s``, 1 in between after ``fade_s``."""
    if fade_s <= 0:
        return np.ones_like(t_s)
    u = np.clip(np.minimum(t_s - t0_s, t1_s - t_s) / fade_s, 0.0, 1.0)
    win: F64 = 0.5 - 0.5 * np.cos(np.pi * u)
    return win


@dataclass(frozen=True, eq=False)
class Bumps:
    """A sum of Gaussian bumps: motion artefact (µV) or limb movement (mg).

    Attributes
    ----------
    centres_s : ndarray, shape (m,)
        Sorted centres (s).
    sigma_s : ndarray, shape (m,)
    amp : ndarray, shape (n_ch, m)
    """

    centres_s: F64
    sigma_s: F64
    amp: F64

    @property
    def lo_s(self) -> float:
        return float(self.centres_s.min() - BUMP_SUPPORT_SIGMAS * self.sigma_s.max())

    @property
    def hi_s(self) -> float:
        return float(self.centres_s.max() + BUMP_SUPPORT_SIGMAS * self.sigma_s.max())

    def shifted(self, dt_s: float) -> Bumps:
        return replace(self, centres_s=self.centres_s + dt_s)

    def add(self, t_s: F64, out: F64) -> None:
        j0, j1 = _span(t_s, self.lo_s, self.hi_s)
        if j1 <= j0:
            return
        tt = t_s[j0:j1]
        reach = BUMP_SUPPORT_SIGMAS * self.sigma_s
        near = (self.centres_s + reach >= tt[0]) & (self.centres_s - reach <= tt[-1])
        if not near.any():
            return
        z = (tt[None, :] - self.centres_s[near][:, None]) / self.sigma_s[near][:, None]
        out[:, j0:j1] += self.amp[:, near] @ np.exp(-0.5 * z * z)


#: Lead-off modes: what the amplifier shows with an electrode off the skin.
LEAD_OFF_MODES: Final[tuple[str, ...]] = ("flat", "rail", "noise")


@dataclass(frozen=True, eq=False)
class LeadOff:
    """Electrodes off the skin over ``[t0_s, t1_s)``: the EMG is replaced on every channel.

    Attributes
    ----------
    t0_s, t1_s : float
    mode : {"flat", "rail", "noise"}
        ``flat``: a constant ``level_uv[c]``; ``rail``: the amplifier rail ``level_uv[c]``
        (signed); ``noise``: white noise of RMS ``level_uv[c]`` plus 50 Hz of ``hum_uv``.
    level_uv : ndarray, shape (n_ch,)
    hum_uv : float
    """

    t0_s: float
    t1_s: float
    mode: str
    level_uv: F64
    hum_uv: float = 0.0

    @property
    def lo_s(self) -> float:
        return self.t0_s

    @property
    def hi_s(self) -> float:
        return self.t1_s

    def shifted(self, dt_s: float) -> LeadOff:
        return replace(self, t0_s=self.t0_s + dt_s, t1_s=self.t1_s + dt_s)

    def mask(self, t_s: F64) -> npt.NDArray[np.bool_]:
        m: npt.NDArray[np.bool_] = (t_s >= self.t0_s) & (t_s < self.t1_s)
        return m


@dataclass(frozen=True, eq=False)
class WhiteNoise:
    """Broadband (white) noise added to the EMG, as from an electrode that lost part of its
    contact: flat to Nyquist, unlike muscle activity's hump near 60-150 Hz.

    Attributes
    ----------
    t0_s, t1_s : float
    fade_s : float
        Raised-cosine fade at both ends (s).
    level_uv : ndarray, shape (n_ch,)
        RMS of the noise per channel (µV, whole band).
    """

    t0_s: float
    t1_s: float
    fade_s: float
    level_uv: F64

    @property
    def lo_s(self) -> float:
        return self.t0_s

    @property
    def hi_s(self) -> float:
        return self.t1_s

    def shifted(self, dt_s: float) -> WhiteNoise:
        return replace(self, t0_s=self.t0_s + dt_s, t1_s=self.t1_s + dt_s)

    def add(self, t_s: F64, z: F64, out: F64) -> None:
        """Add ``level · fade · z`` (``z`` unit white noise, shape (n_ch, n)) into ``out``."""
        j0, j1 = _span(t_s, self.t0_s, self.t1_s)
        if j1 <= j0:
            return
        w = _fade(t_s[j0:j1], self.t0_s, self.t1_s, self.fade_s)
        out[:, j0:j1] += self.level_uv[:, None] * w[None, :] * z[:, j0:j1]


@dataclass(frozen=True)
class Tilt:
    """A change of one leg's sensor roll about the shank axis by ``roll_deg``, linear over
    ``[t0_s, t1_s]`` and kept afterwards (a new resting posture of that leg, or a strap that
    rotated). Several tilts add up."""

    t0_s: float
    t1_s: float
    roll_deg: float

    def shifted(self, dt_s: float) -> Tilt:
        return replace(self, t0_s=self.t0_s + dt_s, t1_s=self.t1_s + dt_s)


EmgComponent = Envelope | Spikes | Pop | Sines | Bumps | LeadOff | WhiteNoise
AccComponent = Sines | Bumps


@dataclass(frozen=True)
class PostureOp:
    """A change of body posture, in event-relative or absolute seconds.

    ``kind="roll"``: the body rolls about the shank's long axis between ``t0_s`` and ``t1_s``
    to a new posture chosen with ``choice`` (0-1) among those different from the current one.
    ``kind="stand"``: the shank turns vertical over ``[t0_s, t1_s]``, stays vertical and
    turns back to the previous lying posture over ``[t2_s, t3_s]``.
    """

    kind: str
    t0_s: float
    t1_s: float
    t2_s: float = 0.0
    t3_s: float = 0.0
    choice: float = 0.0

    def shifted(self, dt_s: float) -> PostureOp:
        return replace(
            self,
            t0_s=self.t0_s + dt_s,
            t1_s=self.t1_s + dt_s,
            t2_s=self.t2_s + dt_s,
            t3_s=self.t3_s + dt_s,
        )
