"""Tests of the seeded synthetic-night generator (firmware_sims.night).

Short nights at low rates keep this file fast; numbers are measured on rendered samples with
the same reference band-pass that defines "floor RMS".
"""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime
from typing import Any

import numpy as np
import polars as pl
import pytest
from scipy import signal

from crampsense.errors import ConfigError
from crampsense.models import grade_severity
from firmware_sims.night import (
    LOOKALIKE_KINDS,
    TRUTH_SCHEMA,
    NightSpec,
    ScriptedEvent,
    SyntheticNight,
    demo_spec,
    generate_night,
    reference_bandpass_sos,
)
from firmware_sims.peripheral import SignalSource

EMG_FS = 500.0
ACC_FS = 25.0


def band_rms(emg: np.ndarray, fs: float, win_s: float) -> np.ndarray:
    """RMS per channel over consecutive windows after the reference band-pass."""
    y = signal.sosfiltfilt(reference_bandpass_sos(fs), emg.astype(np.float64), axis=-1)
    w = round(win_s * fs)
    m = y.shape[-1] // w
    return np.sqrt((y[:, : m * w].reshape(y.shape[0], m, w) ** 2).mean(axis=-1))


def runs(active: np.ndarray) -> list[tuple[int, int]]:
    """Start/stop indices of runs of True."""
    edges = np.diff(np.concatenate([[0], active.astype(np.int8), [0]]))
    return list(zip(np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0], strict=True))


def emg_window(night: SyntheticNight, leg: str, t0: float, t1: float) -> np.ndarray:
    fs = night.spec.emg_fs_hz
    return night.leg(leg).emg_uv(round(t0 * fs), round((t1 - t0) * fs))


def acc_window(night: SyntheticNight, leg: str, t0: float, t1: float) -> np.ndarray:
    fs = night.spec.acc_fs_hz
    return night.leg(leg).acc_mg(round(t0 * fs), round((t1 - t0) * fs))


@pytest.fixture(scope="module")
def busy() -> SyntheticNight:
    """90 min with one cramp and every look-alike kind."""
    return generate_night(
        NightSpec(seed=7, duration_s=5400.0, emg_fs_hz=EMG_FS, acc_fs_hz=ACC_FS, n_cramps=1)
    )


@pytest.fixture(scope="module")
def crampy() -> SyntheticNight:
    """60 min, three cramps, nothing else."""
    return generate_night(
        NightSpec(
            seed=11,
            duration_s=3600.0,
            emg_fs_hz=EMG_FS,
            acc_fs_hz=ACC_FS,
            n_cramps=3,
            lookalikes=(),
            cramp_max_duration_s=300.0,
        )
    )


# --- determinism, chunking, shapes ------------------------------------------------------


def test_same_seed_same_night_and_other_seed_differs() -> None:
    spec = NightSpec(seed=3, duration_s=1200.0, emg_fs_hz=EMG_FS, acc_fs_hz=ACC_FS, n_cramps=1)
    a, b = generate_night(spec), generate_night(spec)
    assert a.truth.equals(b.truth)
    assert np.array_equal(a.leg("left").emg_uv(0, 40_000), b.leg("left").emg_uv(0, 40_000))
    assert np.array_equal(a.leg("right").acc_mg(0, 3000), b.leg("right").acc_mg(0, 3000))
    c = generate_night(NightSpec(seed=4, duration_s=1200.0, emg_fs_hz=EMG_FS, acc_fs_hz=ACC_FS))
    assert not c.truth.equals(a.truth)
    assert not np.array_equal(c.leg("left").emg_uv(0, 5000), a.leg("left").emg_uv(0, 5000))


def test_chunk_invariance_random_splits(busy: SyntheticNight) -> None:
    rng = np.random.default_rng(12345)
    lead_rows = busy.truth.filter(pl.col("kind") == "lead_off")
    cramp = busy.cramps().row(0, named=True)
    for leg in ("left", "right"):
        emg, acc, lead = busy.render(leg)
        # regions around a cramp onset, a lead-off edge and the very start of the night
        centres = [float(cramp["onset_s"]) + 20.0, 0.0]
        centres += [float(r["onset_s"]) for r in lead_rows.iter_rows(named=True)]
        for centre in centres:
            for _ in range(3):
                fresh = generate_night(busy.spec).leg(leg)  # empty caches
                start = max(0, round((centre - 15.0) * EMG_FS))
                total = round(30.0 * EMG_FS)
                cuts = np.sort(rng.choice(np.arange(1, total), size=12, replace=False))
                bounds = [0, *cuts.tolist(), total]
                e_parts, l_parts = [], []
                for a, b in itertools.pairwise(bounds):
                    e_parts.append(fresh.emg_uv(start + a, b - a))
                    l_parts.append(fresh.lead_off(start + a, b - a))
                assert np.array_equal(
                    np.concatenate(e_parts, axis=1), emg[:, start : start + total]
                )
                assert np.array_equal(np.concatenate(l_parts), lead[start : start + total])
                a0 = max(0, round((centre - 15.0) * ACC_FS))
                na = round(30.0 * ACC_FS)
                acuts = np.sort(rng.choice(np.arange(1, na), size=7, replace=False))
                ab = [0, *acuts.tolist(), na]
                got = np.concatenate(
                    [fresh.acc_mg(a0 + a, b - a) for a, b in itertools.pairwise(ab)],
                    axis=1,
                )
                assert np.array_equal(got, acc[:, a0 : a0 + na])
    # reading backwards through a warm cache gives the same numbers too
    leg_view = busy.leg("left")
    fwd = leg_view.emg_uv(100_000, 20_000)
    back = np.concatenate(
        [leg_view.emg_uv(100_000 + k, 2000) for k in range(18_000, -1, -2000)][::-1], axis=1
    )
    assert np.array_equal(fwd, back)


def test_returned_arrays_are_copies(busy: SyntheticNight) -> None:
    leg = busy.leg("left")
    first = leg.emg_uv(1000, 100)
    first[:] = 1e9
    assert np.all(leg.emg_uv(1000, 100) < 1e6)


def test_shapes_dtypes_units(busy: SyntheticNight) -> None:
    source: SignalSource = busy.leg("right")
    assert source.emg_fs_hz == EMG_FS
    assert source.acc_fs_hz == ACC_FS
    assert source.emg_channels == ("gm", "gl")
    assert source.duration_s == 5400.0
    emg, acc, lead = busy.render("right")
    assert emg.shape == (2, round(5400 * EMG_FS))
    assert emg.dtype == np.float32
    assert acc.shape == (3, round(5400 * ACC_FS))
    assert acc.dtype == np.float32
    assert lead.shape == (emg.shape[1],)
    assert lead.dtype == np.bool_
    assert source.emg_uv(10, 0).shape == (2, 0)
    assert source.lead_off(10, 7).shape == (7,)
    # gravity: |acc| ~ 1000 mg at rest; the resting EMG floor is a few µV
    norm = np.linalg.norm(acc[:, : round(300 * ACC_FS)], axis=0)
    assert abs(float(np.median(norm)) - 1000.0) < 40.0
    rest = band_rms(emg[:, : round(300 * EMG_FS)], EMG_FS, 1.0)
    assert 1.5 < float(np.median(rest)) < 4.5


def test_truth_columns_and_dtypes(busy: SyntheticNight) -> None:
    truth = busy.truth
    assert truth.columns == list(TRUTH_SCHEMA)
    assert truth.schema == pl.Schema(TRUTH_SCHEMA)
    assert truth["onset_s"].is_sorted()
    assert set(truth["kind"]) <= {"cramp", *LOOKALIKE_KINDS}
    assert set(truth["leg"]) <= {"left", "right"}
    assert (truth["offset_s"] > truth["onset_s"]).all()
    assert truth["onset_s"].min() >= 0.0
    assert truth["offset_s"].max() <= 5400.0
    others = truth.filter(pl.col("kind") != "cramp")
    assert others["severity"].null_count() == others.height
    assert others["peak_rel"].null_count() == others.height
    assert not (others["woke"] | others["got_up"] | others["stretched"]).any()
    assert set(truth["kind"]) == {"cramp", *LOOKALIKE_KINDS}  # every kind fits into 90 min


@pytest.mark.parametrize("seed", range(6))
def test_no_two_events_overlap_on_a_leg(seed: int) -> None:
    night = generate_night(
        NightSpec(seed=seed, duration_s=5400.0, emg_fs_hz=EMG_FS, acc_fs_hz=ACC_FS)
    )
    for leg in ("left", "right"):
        rows = night.truth.filter(pl.col("leg") == leg).sort("onset_s")
        assert (rows["onset_s"][1:] >= rows["offset_s"][:-1]).all()


# --- cramps ----------------------------------------------------------------------------


def test_cramp_durations_within_bounds_and_severity_graded() -> None:
    durations: list[float] = []
    for seed in range(30):
        night = generate_night(
            NightSpec(
                seed=seed,
                duration_s=8 * 3600.0,
                n_cramps=3,
                lookalikes=(),
                cramp_min_duration_s=20.0,
                cramp_max_duration_s=240.0,
            )
        )
        cramps = night.cramps()
        assert cramps.height == 3
        for row in cramps.iter_rows(named=True):
            duration = row["offset_s"] - row["onset_s"]
            durations.append(duration)
            assert 20.0 <= duration <= 240.0
            assert row["severity"] == str(grade_severity(duration, row["peak_rel"]))
            assert 3.0 <= row["peak_rel"] <= 8.0 * 1.15 * 1.6
    # log-normal with median 90 s, truncated: the sample median sits near it
    assert 60.0 < float(np.median(durations)) < 130.0


def test_drawn_cramp_count_is_zero_to_three() -> None:
    counts = {generate_night(NightSpec(seed=s, lookalikes=())).cramps().height for s in range(25)}
    assert counts <= {0, 1, 2, 3}
    assert len(counts) >= 3


def test_cramp_plateau_is_at_least_three_times_floor(crampy: SyntheticNight) -> None:
    cramps = crampy.cramps()
    assert cramps.height == 3
    for row in cramps.iter_rows(named=True):
        t0, t1 = row["onset_s"], row["offset_s"]
        leg = crampy.leg(row["leg"])
        floor = leg.floor_uv_at(t0)
        second_half = emg_window(crampy, row["leg"], (t0 + t1) / 2, t1)
        ratio = band_rms(second_half, EMG_FS, 1.0) / floor[:, None]
        strongest = int(np.argmax(np.median(ratio, axis=1)))
        assert np.median(ratio[strongest]) >= 3.0
        assert np.quantile(ratio[strongest], 0.1) >= 2.6
        # the truth peak_rel is what a 1-s RMS measures, within noise
        whole = band_rms(emg_window(crampy, row["leg"], t0, t1), EMG_FS, 1.0) / floor[:, None]
        assert whole[strongest].max() == pytest.approx(row["peak_rel"], rel=0.2)
        # before the ramp: floor
        before = band_rms(emg_window(crampy, row["leg"], t0 - 30, t0), EMG_FS, 1.0)
        assert np.all(before / floor[:, None] < 1.4)
        # after the offset it decays towards ~1.5x within a minute, and to the floor within
        # 4 min (the next event can start 75 s after that)
        late = band_rms(emg_window(crampy, row["leg"], t1 + 242, t1 + 252), EMG_FS, 1.0)
        if not row["got_up"]:
            assert np.median(late / floor[:, None]) < 1.3


def test_cramp_context_flags_show_in_the_accelerometer() -> None:
    seen = {"woke": 0, "got_up": 0, "quiet": 0}
    for seed in range(8):
        night = generate_night(
            NightSpec(
                seed=seed,
                duration_s=3600.0,
                emg_fs_hz=EMG_FS,
                acc_fs_hz=ACC_FS,
                n_cramps=2,
                lookalikes=(),
                cramp_max_duration_s=200.0,
            )
        )
        for row in night.cramps().iter_rows(named=True):
            t0, t1, leg = row["onset_s"], row["offset_s"], row["leg"]
            early = acc_window(night, leg, t0, t0 + 16.0)
            base = np.median(acc_window(night, leg, t0 - 20, t0), axis=1)
            moved = float(np.abs(early - base[:, None]).max())
            if row["woke"]:
                seen["woke"] += 1
                assert moved > 80.0
            elif not row["got_up"]:
                seen["quiet"] += 1
                assert moved < 40.0
            if row["got_up"]:
                seen["got_up"] += 1
                for lg in ("left", "right"):
                    x = acc_window(night, lg, t1 + 10, t1 + 50)[0]
                    assert np.median(x) > 700.0  # shank vertical: standing
    assert all(v > 0 for v in seen.values())


# --- look-alikes ------------------------------------------------------------------------


def _rows(night: SyntheticNight, kind: str) -> list[dict[str, Any]]:
    rows = night.truth.filter(pl.col("kind") == kind).to_dicts()
    assert rows, f"no {kind} in the test night"
    return rows


def test_plm_trains_are_short_periodic_bursts(busy: SyntheticNight) -> None:
    for row in _rows(busy, "plm_train"):
        t0, t1, leg = float(row["onset_s"]), float(row["offset_s"]), str(row["leg"])
        floor = busy.leg(leg).floor_uv_at(t0)
        ratio = (band_rms(emg_window(busy, leg, t0 - 2, t1 + 2), EMG_FS, 0.2) / floor[:, None]).max(
            0
        )
        bursts = [(a, b) for a, b in runs(ratio > 1.6) if b - a >= 2]
        assert len(bursts) >= 4
        assert all((b - a) * 0.2 < 10.0 for a, b in bursts)
        gaps = np.diff([a * 0.2 for a, _ in bursts])
        assert np.all(gaps >= 8.0)


def test_walk_has_vertical_shank_and_alternating_bursts(busy: SyntheticNight) -> None:
    for row in _rows(busy, "walk"):
        t0, t1 = float(row["onset_s"]), float(row["offset_s"])
        mid = (t0 + t1) / 2
        x = acc_window(busy, str(row["leg"]), mid - (t1 - t0) / 4, mid + (t1 - t0) / 4)[0]
        assert np.median(x) > 700.0
        before = acc_window(busy, str(row["leg"]), t0 - 10, t0)[0]
        assert np.abs(np.median(before)) < 300.0
    # first walking stretch: calf bursts alternate between the legs at ~1 Hz
    row = _rows(busy, "walk")[0]
    t0 = float(row["onset_s"]) + 5.0
    env = {
        lg: band_rms(emg_window(busy, lg, t0, t0 + 12.0), EMG_FS, 0.05).max(0)
        for lg in ("left", "right")
    }
    onsets = {
        lg: [a * 0.05 for a, b in runs(e > 3 * np.median(e)) if b - a >= 3] for lg, e in env.items()
    }
    assert 6 <= len(onsets["left"]) <= 16
    assert 6 <= len(onsets["right"]) <= 16
    lags = [min(abs(a - b) for b in onsets["right"]) for a in onsets["left"]]
    assert np.median(lags) > 0.2  # not simultaneous


def test_roll_over_turns_the_shank_about_its_axis(busy: SyntheticNight) -> None:
    for row in _rows(busy, "roll_over"):
        t0, t1, leg = float(row["onset_s"]), float(row["offset_s"]), str(row["leg"])
        pre = np.median(acc_window(busy, leg, t0 - 4, t0), axis=1)
        post = np.median(acc_window(busy, leg, t1 + 3, t1 + 7), axis=1)
        angle = math.degrees(abs(math.atan2(pre[1], pre[2]) - math.atan2(post[1], post[2])))
        angle = min(angle, 360 - angle)
        assert angle > 45.0
        assert abs(pre[0]) < 300
        assert abs(post[0]) < 300
        during = acc_window(busy, leg, t0, t1)
        assert np.ptp(during, axis=1).max() > 150.0


def test_hypnic_jerk_is_one_brief_burst_near_sleep_onset(busy: SyntheticNight) -> None:
    for row in _rows(busy, "hypnic_jerk"):
        t0, t1, leg = float(row["onset_s"]), float(row["offset_s"]), str(row["leg"])
        assert 0.07 <= t1 - t0 <= 0.26
        assert abs(t0 - busy.sleep_onset_s) <= 200.0
        floor = busy.leg(leg).floor_uv_at(t0)
        ratio = band_rms(emg_window(busy, leg, t0 - 1.0, t1 + 1.0), EMG_FS, 0.05) / floor[:, None]
        assert ratio.max() > 3.0
        assert (ratio.max(0) > 2.0).sum() * 0.05 <= 0.35


def test_alma_bursts_are_short(busy: SyntheticNight) -> None:
    for row in _rows(busy, "alma"):
        t0, t1, leg = float(row["onset_s"]), float(row["offset_s"]), str(row["leg"])
        floor = busy.leg(leg).floor_uv_at(t0)
        ratio = (band_rms(emg_window(busy, leg, t0, t1), EMG_FS, 0.05) / floor[:, None]).max(0)
        bursts = runs(ratio > 2.0)
        assert len(bursts) >= 2
        assert max(b - a for a, b in bursts) * 0.05 <= 0.8
        assert t1 - t0 <= 21.0


def test_fasciculations_are_spikes_without_sustained_activity(busy: SyntheticNight) -> None:
    for row in _rows(busy, "fasciculation"):
        t0, t1, leg = float(row["onset_s"]), float(row["offset_s"]), str(row["leg"])
        x = emg_window(busy, leg, t0, t1)
        ratio = band_rms(x, EMG_FS, 1.0) / busy.leg(leg).floor_uv_at(t0)[:, None]
        assert np.median(ratio) < 1.3
        y = signal.sosfiltfilt(reference_bandpass_sos(EMG_FS), x.astype(float), axis=-1)
        kurt = ((y - y.mean(1, keepdims=True)) ** 4).mean(1) / y.var(1) ** 2
        assert kurt.max() > 4.0  # spiky, not Gaussian (3.0)


def test_ecg_crosstalk_beats_at_50_to_80_per_minute(busy: SyntheticNight) -> None:
    for row in _rows(busy, "ecg_crosstalk"):
        t0, leg = float(row["onset_s"]), str(row["leg"])
        x = emg_window(busy, leg, t0 + 10, t0 + 70).astype(float)
        sos = signal.butter(2, [10, 40], btype="bandpass", fs=EMG_FS, output="sos")
        y = np.abs(signal.sosfiltfilt(sos, x, axis=-1)).max(0)
        peaks, _ = signal.find_peaks(y, height=5 * np.median(y), distance=round(0.5 * EMG_FS))
        rate = 60.0 / float(np.median(np.diff(peaks))) * EMG_FS
        assert 48.0 <= rate <= 82.0


def test_pop_hum_wander_are_where_truth_says(busy: SyntheticNight) -> None:
    for row in _rows(busy, "electrode_pop"):
        t0, t1, leg = float(row["onset_s"]), float(row["offset_s"]), str(row["leg"])
        assert 0.1 <= t1 - t0 <= 1.05
        assert np.abs(emg_window(busy, leg, t0, t1)).max() > 150.0
    for row in _rows(busy, "mains_hum"):
        mid, leg = (float(row["onset_s"]) + float(row["offset_s"])) / 2, str(row["leg"])
        x = emg_window(busy, leg, mid, mid + 10.0).astype(float)
        spec = np.abs(np.fft.rfft(x, axis=-1)) * 2 / x.shape[1]
        freqs = np.fft.rfftfreq(x.shape[1], 1 / EMG_FS)
        at50 = spec[:, np.argmin(np.abs(freqs - 50.0))].max()
        assert at50 > 4.0
        quiet = emg_window(busy, leg, float(row["onset_s"]) - 40, float(row["onset_s"]) - 30)
        qspec = np.abs(np.fft.rfft(quiet.astype(float), axis=-1)) * 2 / quiet.shape[1]
        assert qspec[:, np.argmin(np.abs(freqs - 50.0))].max() < 1.0
        # an hour or more in a full night; a short night caps it at 20 % of its length
        assert float(row["offset_s"]) - float(row["onset_s"]) >= 0.2 * 5400.0 - 1e-6
    for row in _rows(busy, "baseline_wander"):
        t0, t1, leg = float(row["onset_s"]), float(row["offset_s"]), str(row["leg"])
        x = emg_window(busy, leg, t0 + 0.2 * (t1 - t0), t1 - 0.2 * (t1 - t0))
        slow = x[:, : x.shape[1] // 250 * 250].reshape(x.shape[0], -1, 250).mean(-1)
        assert slow.std(axis=1).max() > 5.0


def test_lead_off_mask_matches_truth(busy: SyntheticNight) -> None:
    for leg in ("left", "right"):
        _, _, lead = busy.render(leg)
        expected = np.zeros_like(lead)
        t = np.arange(lead.size) / EMG_FS
        for row in busy.truth.filter(
            (pl.col("kind") == "lead_off") & (pl.col("leg") == leg)
        ).iter_rows(named=True):
            expected |= (t >= row["onset_s"]) & (t < row["offset_s"])
        assert np.array_equal(lead, expected)
    row = _rows(busy, "lead_off")[0]
    x = emg_window(busy, str(row["leg"]), float(row["onset_s"]) + 1, float(row["onset_s"]) + 3)
    flat = x.std(axis=1).max() < 1e-3
    railed = np.abs(x).min() >= 9999.0
    noisy = x.std(axis=1).min() > 100.0
    assert flat or railed or noisy


# --- gain, rates, quiet nights ----------------------------------------------------------


def test_gain_scales_emg_exactly_and_not_acc() -> None:
    base = NightSpec(seed=5, duration_s=900.0, emg_fs_hz=EMG_FS, acc_fs_hz=ACC_FS, n_cramps=1)
    ref = generate_night(base)
    e1, a1, l1 = ref.render("left")
    for gain in (2.0, 0.5):
        scaled = generate_night(NightSpec(**{**base.__dict__, "gain": gain}))
        assert scaled.truth.equals(ref.truth)
        e2, a2, l2 = scaled.render("left")
        assert np.array_equal(e2, e1 * np.float32(gain))
        assert np.array_equal(a2, a1)
        assert np.array_equal(l2, l1)
    odd = generate_night(NightSpec(**{**base.__dict__, "gain": 1.7})).leg("left").emg_uv(0, 9000)
    np.testing.assert_allclose(odd, 1.7 * e1[:, :9000], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("fs", [200.0, 500.0, 1000.0, 2000.0])
def test_every_supported_rate_works(fs: float) -> None:
    night = generate_night(
        NightSpec(
            seed=21,
            duration_s=600.0,
            emg_fs_hz=fs,
            acc_fs_hz=ACC_FS,
            n_cramps=1,
            lookalikes=(),
            cramp_max_duration_s=120.0,
            legs=("right",),
        )
    )
    emg, _acc, lead = night.render("right")
    assert emg.shape == (2, round(600 * fs))
    assert not lead.any()
    row = night.cramps().row(0, named=True)
    leg = night.leg("right")
    floor = leg.floor_uv_at(row["onset_s"])
    quiet = emg[:, : round(60 * fs)]
    measured = np.median(band_rms(quiet, fs, 1.0), axis=1)
    np.testing.assert_allclose(measured, floor, rtol=0.1)
    t0, t1 = row["onset_s"], row["offset_s"]
    half = emg[:, round((t0 + t1) / 2 * fs) : round(t1 * fs)]
    assert np.median(band_rms(half, fs, 1.0) / floor[:, None], axis=1).max() >= 3.0


def test_quiet_night_has_no_bursts() -> None:
    night = generate_night(
        NightSpec(
            seed=8, duration_s=1800.0, emg_fs_hz=EMG_FS, acc_fs_hz=ACC_FS, n_cramps=0, lookalikes=()
        )
    )
    assert night.truth.height == 0
    for leg in ("left", "right"):
        emg, acc, lead = night.render(leg)
        floor = np.array(night.floor_uv(leg))
        ratio = band_rms(emg, EMG_FS, 1.0) / floor[:, None]
        assert ratio.max() < 2.0
        assert not lead.any()
        assert acc.std(axis=1).max() < 10.0  # no posture change, just sensor noise


# --- the demo night and the contract ----------------------------------------------------


def test_demo_night_has_the_promised_story() -> None:
    spec = demo_spec()
    assert spec.duration_s == 8 * 3600.0
    assert spec.emg_fs_hz == 1000.0
    assert spec.acc_fs_hz == 50.0
    night = generate_night(spec)
    assert night.truth.equals(generate_night(demo_spec()).truth)
    cramps = night.cramps()
    assert cramps["severity"].to_list() == ["moderate", "severe", "mild"]
    severe = cramps.filter(pl.col("severity") == "severe").row(0, named=True)
    assert severe["leg"] == "left"
    assert severe["woke"]
    assert severe["got_up"]
    assert severe["offset_s"] - severe["onset_s"] == pytest.approx(130.0)
    onset = night.time_of(severe["onset_s"])
    assert onset.astimezone(UTC).hour == 3
    assert onset.minute < 15
    moderate = cramps.filter(pl.col("severity") == "moderate").row(0, named=True)
    assert moderate["leg"] == "right"
    assert set(night.truth["kind"]) == {"cramp", *LOOKALIKE_KINDS}
    assert night.truth.filter(pl.col("kind") == "roll_over")["onset_s"].n_unique() == 2
    assert night.truth.filter(pl.col("kind") == "walk")["onset_s"].n_unique() == 1
    hum = night.truth.filter(pl.col("kind") == "mains_hum").row(0, named=True)
    assert hum["offset_s"] - hum["onset_s"] >= 3600.0
    lead = night.truth.filter(pl.col("kind") == "lead_off").row(0, named=True)
    assert lead["leg"] == "right"
    assert 300.0 <= lead["offset_s"] - lead["onset_s"] <= 600.0
    plm = night.truth.filter((pl.col("kind") == "plm_train") & (pl.col("leg") == "left")).row(
        0, named=True
    )
    x = emg_window(night, "left", plm["onset_s"] - 1, plm["offset_s"] + 1)
    floor = night.leg("left").floor_uv_at(plm["onset_s"])
    ratio = (band_rms(x, 1000.0, 0.2) / floor[:, None]).max(0)
    assert len([r for r in runs(ratio > 1.6) if r[1] - r[0] >= 2]) >= 20


def test_spec_validation_raises_config_error() -> None:
    bad: list[dict[str, Any]] = [
        {"seed": -1},
        {"emg_fs_hz": 100.0},
        {"emg_fs_hz": 4000.0},
        {"acc_fs_hz": 10.0},
        {"lookalikes": ("sneeze",)},
        {"start": datetime(2026, 11, 20, 22, 30)},
        {"legs": ("middle",)},
        {"legs": ()},
        {"gain": 0.0},
        {"gain": math.nan},
        {"cramp_min_duration_s": 100.0, "cramp_max_duration_s": 50.0},
        {"n_cramps": 0, "scripted": (ScriptedEvent("cramp", 5000.0, ("left",)),)},
        {"scripted": (ScriptedEvent("cramp", 5000.0, ("left", "right")),)},
    ]
    for kwargs in bad:
        with pytest.raises(ConfigError):
            NightSpec(**{"seed": 1, **kwargs})
    overlapping = NightSpec(
        seed=1,
        scripted=(
            ScriptedEvent("cramp", 5000.0, ("left",), duration_s=60.0),
            ScriptedEvent("electrode_pop", 5030.0, ("left",)),
        ),
    )
    with pytest.raises(ConfigError, match="overlaps"):
        generate_night(overlapping)
    with pytest.raises(ConfigError, match="n_cramps"):
        generate_night(NightSpec(seed=1, duration_s=300.0, n_cramps=5, lookalikes=()))
    night = generate_night(NightSpec(seed=1, duration_s=300.0, legs=("left",), lookalikes=()))
    with pytest.raises(ConfigError, match="not simulated"):
        night.leg("right")
    with pytest.raises(ConfigError):
        night.leg("left").emg_uv(-1, 10)


def test_truth_times_are_seconds_from_start() -> None:
    start = datetime(2027, 1, 5, 23, 0, tzinfo=UTC)
    night = generate_night(NightSpec(seed=2, duration_s=1800.0, start=start, n_cramps=1))
    row = night.cramps().row(0, named=True)
    assert night.time_of(row["onset_s"]) > start
    assert (night.time_of(row["onset_s"]) - start).total_seconds() == pytest.approx(row["onset_s"])
