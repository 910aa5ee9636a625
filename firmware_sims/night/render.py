"""Tile renderer: turns a :class:`~.schedule.LegModel` into samples, 10 s at a time.

Every tile is a pure function of ``(seed, leg, tile index)``: its random numbers come from
generators keyed by those, and the one filter (shaping motor-unit activity noise) runs over
the tile plus a margin taken from the previous tile's raw noise, then drops the margin. So a
tile is the same whether a night is rendered whole or read in pieces of any size.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Final, TypeVar

import numpy as np
import numpy.typing as npt
from scipy import signal

from crampsense.models import G_MG

from .components import F64, Bumps, Envelope, LeadOff, Pop, Sines, Spikes, WhiteNoise
from .schedule import LegModel, rng_for
from .spec import NightSpec, reference_bandpass_sos

F32 = npt.NDArray[np.float32]
B = npt.NDArray[np.bool_]

#: Tile length (s): long enough that per-tile overhead is small against 10^4 samples, short
#: enough that a streaming read of a few hundred ms renders little it does not need.
TILE_S: Final = 10.0
#: Filter margin (s) drawn from the previous tile: the activity filter's slowest pole (25 Hz,
#: damping 0.7) decays by exp(-27) in 0.25 s, so tile edges are seamless to float precision.
ACTIVITY_MARGIN_S: Final = 0.25
#: Motor-unit activity spectrum: surface EMG power lies mostly between ~25 and ~250 Hz.
ACTIVITY_BAND_HZ: Final = (25.0, 250.0)
ACTIVITY_ORDER: Final = 2
#: Accelerometer white noise (mg RMS): MEMS noise density ~150-300 µg/√Hz over a 25 Hz band.
ACC_NOISE_MG: Final = 3.0
#: Tiles kept per stream for sequential small reads (16 x 10 s x 2 ch x 1 kHz ~ 1.3 MB).
CACHE_TILES: Final = 16
#: Tiles of raw activity noise kept: a tile's activity reads its own and the previous tile's.
RAW_CACHE_TILES: Final = 3
#: Mains frequency used in the "noise" lead-off mode (Hz).
LEAD_OFF_HUM_HZ: Final = 50.0
# --- mechanomyogram (MMG) on the accelerometer (NightSpec.acc_mmg) -----------------------
#: MMG band (Hz): a contracting muscle's surface vibration lies mostly between ~5 and ~50 Hz
#: with its power centred at 10-25 Hz (Orizio 1993; Beck et al. 2005); a 25-200 Hz wearable
#: IMU sees the part below min(25 Hz, 0.45 fs).
MMG_BAND_HZ: Final = (5.0, 25.0)
MMG_ORDER: Final = 2
#: MMG RMS on the skin-normal axis (z) per unit of EMG excess amplitude (x floor), drawn per
#: leg (sensor fit and tissue differ between people). A cramp plateau (excess 3.5-7) then
#: vibrates at ~2-8 mg RMS: the low end of what skin-taped accelerometers record from a
#: strongly contracting calf (0.02-0.3 m/s², i.e. 2-30 mg; Orizio 1993, Beck et al. 2005),
#: because a strap-mounted wearable couples more loosely than a taped sensor. MMG amplitude
#: grows with force like EMG amplitude (Orizio 1993), hence the proportionality.
MMG_MG_PER_EXCESS: Final = (0.5, 1.2)
#: MMG per axis relative to z: the muscle belly vibrates perpendicular to the skin (z); the
#: along-shank and lateral axes pick up less.
MMG_AXIS_WEIGHT: Final = (0.3, 0.5, 1.0)
#: Filter margin (s) from the previous tile for the MMG noise: the 5-Hz pole decays by
#: e^-20 in 1 s, so tile edges are seamless.
MMG_MARGIN_S: Final = 1.0
# --- in-bed wakefulness before sleep onset (NightSpec.acc_settling) ------------------------
#: Slow posture wander while lying awake: a few sinusoids at 0.01-0.2 Hz with 6-12 mg RMS per
#: axis (shifting, reading, settling): tilts of ~0.5-2 degrees between 5-s epochs, what the
#: sleep-period detector (HDCZA, van Hees et al. 2018) sees as "not sleeping".
SETTLE_FREQ_HZ: Final = (0.01, 0.2)
SETTLE_N_SINES: Final = 6
SETTLE_RMS_MG: Final = (6.0, 12.0)
#: Fidgets while awake: one every ~40 s on average, 20-80 mg, 0.2-0.6 s wide.
SETTLE_FIDGET_EVERY_S: Final = 40.0
SETTLE_FIDGET_MG: Final = (20.0, 80.0)
SETTLE_FIDGET_SIGMA_S: Final = (0.2, 0.6)
#: The wander fades out over this long (s), ending at sleep onset.
SETTLE_FADE_S: Final = 20.0

# Stream tags in the noise generators' spawn keys: (leg index, stream, tile).
_FLOOR, _ACTIVITY, _ACC, _LEAD_OFF, _MMG, _MMG_GAIN, _SETTLE, _DETACH = 1, 2, 3, 4, 5, 6, 7, 8


_T = TypeVar("_T")


def _cached(cache: OrderedDict[int, _T], tile: int, make: Callable[[int], _T], keep: int) -> _T:
    """Tile ``tile`` from ``cache``, else ``make(tile)``, stored there; the ``keep`` most
    recently used tiles stay (a tile is a pure function of its index: the cache only saves
    time)."""
    hit = cache.get(tile)
    if hit is not None:
        cache.move_to_end(tile)
        return hit
    out = make(tile)
    cache[tile] = out
    while len(cache) > keep:
        cache.popitem(last=False)
    return out


def _band_gain2(
    sos: npt.NDArray[np.float64], fs_hz: float, other: npt.NDArray[np.float64] | None
) -> float:
    """Mean |H|² over 0..fs/2 (the variance gain of white noise), optionally times |G|²."""
    w, h = signal.sosfreqz(sos, worN=16384, fs=fs_hz)
    del w
    p = np.abs(h) ** 2
    if other is not None:
        _, g = signal.sosfreqz(other, worN=16384, fs=fs_hz)
        p = p * np.abs(g) ** 2
    return float(p.mean())


class LegRenderer:
    """Renders one leg tile by tile, with a small cache for sequential reads."""

    def __init__(
        self, spec: NightSpec, model: LegModel, *, sleep_onset_s: float | None = None
    ) -> None:
        self.spec = spec
        self.model = model
        self.n_ch = len(spec.emg_channels)
        self.emg_fs = float(spec.emg_fs_hz)
        self.acc_fs = float(spec.acc_fs_hz)
        self.emg_tile_n = round(TILE_S * self.emg_fs)
        self.acc_tile_n = round(TILE_S * self.acc_fs)
        self.n_emg = round(spec.duration_s * self.emg_fs)
        self.n_acc = round(spec.duration_s * self.acc_fs)
        self.margin_n = round(ACTIVITY_MARGIN_S * self.emg_fs)
        ref = reference_bandpass_sos(self.emg_fs)
        hi = min(ACTIVITY_BAND_HZ[1], 0.45 * self.emg_fs)
        self.act_sos = signal.butter(
            ACTIVITY_ORDER,
            [ACTIVITY_BAND_HZ[0], hi],
            btype="bandpass",
            fs=self.emg_fs,
            output="sos",
        )
        # White floor noise of SD s has in-band RMS s*sqrt(gain); scale so it is floor_uv.
        self.floor_white_sd = 1.0 / np.sqrt(_band_gain2(ref, self.emg_fs, None))
        # Activity noise: unit RMS after the reference band-pass.
        self.act_scale = 1.0 / np.sqrt(_band_gain2(ref, self.emg_fs, self.act_sos))
        self._frac = np.arange(self.emg_tile_n) / self.emg_tile_n
        self.emg_comps = list(model.emg)
        self.emg_lo = np.array([c.lo_s for c in self.emg_comps])
        self.emg_hi = np.array([c.hi_s for c in self.emg_comps])
        self.acc_comps: list[Sines | Bumps] = list(model.acc)
        if spec.acc_settling and sleep_onset_s is not None and sleep_onset_s > 0:
            self.acc_comps.extend(self._settling(sleep_onset_s))
        self._init_mmg()
        self.acc_lo = np.array([c.lo_s for c in self.acc_comps])
        self.acc_hi = np.array([c.hi_s for c in self.acc_comps])
        self._emg_cache: OrderedDict[int, tuple[F32, B]] = OrderedDict()
        self._acc_cache: OrderedDict[int, F32] = OrderedDict()
        self._raw_cache: OrderedDict[int, F32] = OrderedDict()

    def _settling(self, onset_s: float) -> list[Sines | Bumps]:
        """Posture wander and fidgets of a person lying awake before ``onset_s``."""
        rng = self._rng(_SETTLE, 0)
        k = SETTLE_N_SINES
        lo, hi = np.log(SETTLE_FREQ_HZ[0]), np.log(SETTLE_FREQ_HZ[1])
        freqs = np.exp(rng.uniform(lo, hi, k))
        rms = rng.uniform(*SETTLE_RMS_MG, 3)
        weights = rng.dirichlet(np.ones(k), 3)  # (3, k) power shares per axis
        amp = np.sqrt(2.0 * weights) * rms[:, None]
        phase = rng.uniform(0.0, 2 * np.pi, (3, k))
        fade = min(SETTLE_FADE_S, onset_s / 2)
        wander = Sines(-fade, onset_s, fade, freqs, amp, phase)
        n = int(rng.poisson(onset_s / SETTLE_FIDGET_EVERY_S))
        out: list[Sines | Bumps] = [wander]
        if n:
            centres = np.sort(rng.uniform(0.0, max(onset_s - 5.0, 1.0), n))
            sig = rng.uniform(*SETTLE_FIDGET_SIGMA_S, n)
            famp = rng.uniform(*SETTLE_FIDGET_MG, (3, n)) * rng.choice([-1.0, 1.0], (3, n))
            out.append(Bumps(centres, sig, famp))
        return out

    def _init_mmg(self) -> None:
        """Muscle-activity envelopes and the MMG filter (empty when ``acc_mmg`` is off)."""
        envs = [c for c in self.model.emg if isinstance(c, Envelope)] if self.spec.acc_mmg else []
        self.mmg_envs = envs
        self.mmg_lo = np.array([c.lo_s for c in envs])
        self.mmg_hi = np.array([c.hi_s for c in envs])
        hi = min(MMG_BAND_HZ[1], 0.45 * self.acc_fs)
        self.mmg_sos = signal.butter(
            MMG_ORDER, [MMG_BAND_HZ[0], hi], btype="bandpass", fs=self.acc_fs, output="sos"
        )
        self.mmg_scale = 1.0 / np.sqrt(_band_gain2(self.mmg_sos, self.acc_fs, None))
        self.mmg_margin_n = min(self.acc_tile_n, round(MMG_MARGIN_S * self.acc_fs))
        world = self.spec.world
        if world is None:
            gain = float(self._rng(_MMG_GAIN, 0).uniform(*MMG_MG_PER_EXCESS))
        else:  # coupling through a strap: log-uniform, from too weak to see to several mg
            lo, hi = world.prior("mmg_mg_per_excess")
            gain = float(np.exp(self._rng(_MMG_GAIN, 0).uniform(np.log(lo), np.log(hi))))
        self.mmg_axis_mg = gain * np.asarray(MMG_AXIS_WEIGHT)

    def _mmg(self, tile: int, t: F64) -> F64 | None:
        """MMG (3, n) in mg for acc tile ``tile`` at times ``t``, or None if no activity."""
        if not self.mmg_envs:
            return None
        idx = np.nonzero((self.mmg_lo <= t[-1]) & (self.mmg_hi >= t[0]))[0]
        if not idx.size:
            return None
        power = np.zeros((self.n_ch, t.size))
        for i in idx:
            self.mmg_envs[i].add_power(t, power)
        excess = np.sqrt(power.mean(axis=0))
        n = self.acc_tile_n
        prev = self._rng(_MMG, tile).standard_normal((3, n))[:, n - self.mmg_margin_n :]
        raw = np.concatenate([prev, self._rng(_MMG, tile + 1).standard_normal((3, n))], axis=1)
        noise = signal.sosfilt(self.mmg_sos, raw, axis=1)[:, self.mmg_margin_n :]
        out: F64 = noise * (self.mmg_scale * self.mmg_axis_mg[:, None] * excess[None, :])
        return out

    # --- random streams ---------------------------------------------------------------
    def _rng(self, stream: int, tile: int) -> np.random.Generator:
        return rng_for(self.spec.seed, self.model.leg_index, stream, tile)

    def _raw_activity(self, tile: int) -> F32:
        """White noise behind tile ``tile``'s activity (tile -1 feeds tile 0's margin)."""
        return _cached(self._raw_cache, tile, self._draw_raw_activity, RAW_CACHE_TILES)

    def _draw_raw_activity(self, tile: int) -> F32:
        raw: F32 = self._rng(_ACTIVITY, tile + 1).standard_normal(
            (self.n_ch, self.emg_tile_n), dtype=np.float32
        )
        return raw

    def floor_uv_at(self, t_s: float) -> F64:
        """Local floor RMS per channel (µV, in the analysis band, before ``gain``)."""
        out: F64 = self.model.floor_uv * self.model.drift(t_s)
        return out

    # --- EMG ----------------------------------------------------------------------------
    def emg_tile(self, tile: int) -> tuple[F32, B]:
        return _cached(self._emg_cache, tile, self._render_emg_tile, CACHE_TILES)

    def _render_emg_tile(self, tile: int) -> tuple[F32, B]:
        n = self.emg_tile_n
        fs = self.emg_fs
        i0 = tile * n
        t_first, t_last = i0 / fs, (i0 + n - 1) / fs
        d0 = self.floor_uv_at(t_first) * self.floor_white_sd
        d1 = self.floor_uv_at(t_first + n / fs) * self.floor_white_sd
        # Floor: white noise scaled to the (slowly drifting) floor, all in float32.
        scale = (d0[:, None] + (d1 - d0)[:, None] * self._frac[None, :]).astype(np.float32)
        sig = self._rng(_FLOOR, tile).standard_normal((self.n_ch, n), dtype=np.float32)
        sig *= scale
        lead = np.zeros(n, dtype=bool)
        idx = np.nonzero((self.emg_lo <= t_last) & (self.emg_hi >= t_first))[0]
        if idx.size:
            t = (i0 + np.arange(n)) / fs
            comps = [self.emg_comps[i] for i in idx]
            acc64 = np.zeros((self.n_ch, n))
            envs = [c for c in comps if isinstance(c, Envelope)]
            if envs:
                power = np.zeros((self.n_ch, n))
                for env in envs:
                    env.add_power(t, power)
                raw = np.concatenate(
                    [self._raw_activity(tile - 1)[:, -self.margin_n :], self._raw_activity(tile)],
                    axis=1,
                )
                act = signal.sosfilt(self.act_sos, raw, axis=1)[:, self.margin_n :]
                acc64 += act * (self.act_scale / self.floor_white_sd * np.sqrt(power) * scale)
            for c in comps:
                if isinstance(c, WhiteNoise):
                    c.add(t, self._rng(_DETACH, tile).standard_normal((self.n_ch, n)), acc64)
                elif isinstance(c, Spikes):
                    c.add(i0, fs, acc64)
                elif isinstance(c, Pop | Bumps):
                    c.add(t, acc64)
                elif isinstance(c, Sines):
                    c.add(t, acc64, fs / 2.0)
            sig += acc64.astype(np.float32)
            for c in comps:
                if isinstance(c, LeadOff):
                    m = c.mask(t)
                    if not m.any():
                        continue
                    lead |= m
                    if c.mode == "noise":
                        z = self._rng(_LEAD_OFF, tile).standard_normal((self.n_ch, n))
                        hum = c.hum_uv * np.sin(2 * np.pi * LEAD_OFF_HUM_HZ * t)
                        sig[:, m] = (c.level_uv[:, None] * z + hum[None, :])[:, m]
                    else:
                        sig[:, m] = c.level_uv[:, None]
        if self.spec.gain != 1.0:
            sig *= np.float32(self.spec.gain)
        return sig, lead

    # --- accelerometer --------------------------------------------------------------------
    def acc_tile(self, tile: int) -> F32:
        return _cached(self._acc_cache, tile, self._render_acc_tile, CACHE_TILES)

    def _render_acc_tile(self, tile: int) -> F32:
        m = self.model
        n = self.acc_tile_n
        t = (tile * n + np.arange(n)) / self.acc_fs
        psi = np.interp(t, m.psi_t, m.psi_deg)
        up = np.interp(t, m.up_t, m.up_frac)
        theta = np.deg2rad(m.lying_pitch_deg + up * (m.standing_pitch_deg - m.lying_pitch_deg))
        phi = np.deg2rad(m.roll_sign * psi + m.mount_roll_deg + m.tilt_deg(t))
        ct = np.cos(theta)
        acc = G_MG * np.stack([np.sin(theta), ct * np.sin(phi), ct * np.cos(phi)])
        acc += m.acc_bias_mg[:, None]
        t_first, t_last = float(t[0]), float(t[-1])
        idx = np.nonzero((self.acc_lo <= t_last) & (self.acc_hi >= t_first))[0]
        for i in idx:
            c = self.acc_comps[i]
            if isinstance(c, Sines):
                c.add(t, acc, self.acc_fs / 2.0)
            else:
                c.add(t, acc)
        mmg = self._mmg(tile, t)
        if mmg is not None:
            acc += mmg
        acc += ACC_NOISE_MG * self._rng(_ACC, tile).standard_normal((3, n))
        out: F32 = acc.astype(np.float32)
        return out

    # --- ranges ---------------------------------------------------------------------------
    def emg_range(self, start: int, n: int) -> tuple[F32, B]:
        """EMG (n_ch, n) and lead-off (n,) for samples ``start .. start+n-1``."""
        return _gather(start, n, self.emg_tile_n, self.emg_tile, self.n_ch)

    def acc_range(self, start: int, n: int) -> F32:
        nt = self.acc_tile_n
        if n == 0:
            return np.zeros((3, 0), dtype=np.float32)
        k0, k1 = start // nt, (start + n - 1) // nt
        parts = [self.acc_tile(k) for k in range(k0, k1 + 1)]
        whole = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
        off = start - k0 * nt
        out: F32 = whole[:, off : off + n].copy()
        return out

    def render_all(self) -> tuple[F32, F32, B]:
        """The whole night without touching the cache (for :meth:`SyntheticNight.render`)."""
        emg = np.empty((self.n_ch, self.n_emg), dtype=np.float32)
        lead = np.empty(self.n_emg, dtype=bool)
        nt = self.emg_tile_n
        for k in range(-(-self.n_emg // nt)):
            e, lo = self._render_emg_tile(k)
            take = min(nt, self.n_emg - k * nt)
            emg[:, k * nt : k * nt + take] = e[:, :take]
            lead[k * nt : k * nt + take] = lo[:take]
        acc = np.empty((3, self.n_acc), dtype=np.float32)
        na = self.acc_tile_n
        for k in range(-(-self.n_acc // na)):
            take = min(na, self.n_acc - k * na)
            acc[:, k * na : k * na + take] = self._render_acc_tile(k)[:, :take]
        return emg, acc, lead


def _gather(
    start: int, n: int, nt: int, get: Callable[[int], tuple[F32, B]], n_ch: int
) -> tuple[F32, B]:
    if n == 0:
        return np.zeros((n_ch, 0), dtype=np.float32), np.zeros(0, dtype=bool)
    k0, k1 = start // nt, (start + n - 1) // nt
    tiles = [get(k) for k in range(k0, k1 + 1)]
    off = start - k0 * nt
    if len(tiles) == 1:
        e, lo = tiles[0]  # cached arrays: hand out copies, never views
        return e[:, off : off + n].copy(), lo[off : off + n].copy()
    e = np.concatenate([x[0] for x in tiles], axis=1)
    lo = np.concatenate([x[1] for x in tiles])
    return e[:, off : off + n], lo[off : off + n]
