"""Tests of crampsense.detection.sleep: accelerometer epochs, sleep period, wake, non-wear."""

from __future__ import annotations

import itertools
import json

import numpy as np
import polars as pl
import pytest

from crampsense.detection.sleep import (
    AccEpochs,
    SleepParams,
    SleepPeriod,
    acc_epochs,
    sleep_period,
)
from crampsense.errors import ConfigError, DetectionError
from firmware_sims.night import NightSpec, SyntheticNight, generate_night

FS = 50.0
Periods = list[tuple[SyntheticNight, dict[str, SleepPeriod]]]


def _still(duration_s: float, *, seed: int = 0, z_mg: float = 1000.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = round(duration_s * FS)
    acc = rng.normal(0.0, 3.0, (3, n))
    acc[2] += z_mg
    return acc


def _restless(duration_s: float, *, seed: int = 1) -> np.ndarray:
    """Lying awake: the z-angle wanders by degrees per minute, with fidgets."""
    rng = np.random.default_rng(seed)
    n = round(duration_s * FS)
    t = np.arange(n) / FS
    psi = np.deg2rad(8.0 * np.sin(2 * np.pi * t / 40.0) + 5.0 * np.sin(2 * np.pi * t / 13.0))
    knee = 50.0 + 40.0 * np.sin(2 * np.pi * t / 17.0)  # the shank tilts as the knee moves
    acc = np.stack([knee, 1000.0 * np.sin(psi), 1000.0 * np.cos(psi)])
    return acc + rng.normal(0.0, 3.0, (3, n))


# --- epochs ------------------------------------------------------------------------------------


def test_epochs_of_blocks_concatenate_to_the_epochs_of_the_whole() -> None:
    night = generate_night(NightSpec(seed=3, duration_s=1800.0, emg_fs_hz=200.0, n_cramps=1))
    leg = night.leg("left")
    acc = leg.acc_mg(0, leg.n_acc)
    whole = acc_epochs(acc, FS, epoch_s=1.0)
    cuts = [0, 50 * 7, 50 * 300, 50 * 301, 50 * 1200, acc.shape[1]]
    parts = [acc_epochs(acc[:, a:b], FS, epoch_s=1.0, start_s=a / FS)
             for a, b in itertools.pairwise(cuts)]
    joined = AccEpochs.concat(parts)
    assert joined.n == whole.n == 1800
    for name in ("mean_mg", "sd_mg", "min_mg", "max_mg", "enmo_mg", "vertical_frac", "vib_mg",
                 "valid_frac"):
        np.testing.assert_allclose(getattr(joined, name), getattr(whole, name), rtol=1e-12,
                                   atol=1e-9, err_msg=name)


def test_concat_refuses_blocks_that_do_not_line_up() -> None:
    a = acc_epochs(_still(10.0), FS, epoch_s=1.0)
    b = acc_epochs(_still(10.0), FS, epoch_s=1.0, start_s=12.0)
    with pytest.raises(DetectionError, match="previous one ends at 10"):
        AccEpochs.concat([a, b])
    with pytest.raises(DetectionError, match="at least one"):
        AccEpochs.concat([])


def test_epoch_features_have_the_right_units() -> None:
    acc = _still(20.0)
    acc[0, 250:500] += 1000.0  # shank upright for 5 s (|x| > 0.7 g)
    ep = acc_epochs(acc, FS, epoch_s=5.0)
    assert ep.n == 4
    np.testing.assert_allclose(ep.z_angle_deg[[0, 2, 3]], 90.0, atol=1.0)
    assert ep.z_angle_deg[1] == pytest.approx(45.0, abs=1.0)
    assert ep.vertical_frac.tolist() == [0.0, 1.0, 0.0, 0.0]
    assert ep.enmo_mg[1] == pytest.approx(1000 * (np.sqrt(2) - 1), rel=0.01)
    np.testing.assert_allclose(ep.sd_mg[:, 0], 3.0, rtol=0.25)
    # white noise of 3 mg over 0-25 Hz has ~sqrt(20/25) of its power in the 5-25 Hz band
    assert np.median(ep.vib_mg) == pytest.approx(3.0 * np.sqrt(20 / 25), rel=0.2)


def test_vibration_band_sees_15_hz_and_ignores_1_hz() -> None:
    t = np.arange(round(10 * FS)) / FS
    slow = _still(10.0)
    slow[2] += 300.0 * np.sin(2 * np.pi * 1.0 * t)  # a walking-like 1-Hz swing
    fast = _still(10.0)
    fast[2] += 10.0 * np.sin(2 * np.pi * 15.0 * t)  # 7 mg RMS of 15-Hz vibration
    v_slow = acc_epochs(slow, FS, epoch_s=1.0).vib_mg[2]
    v_fast = acc_epochs(fast, FS, epoch_s=1.0).vib_mg[2]
    assert np.median(v_slow) < 4.0
    assert np.median(v_fast) == pytest.approx(np.hypot(10 / np.sqrt(2), 2.7), rel=0.2)


def test_invalid_and_nan_samples_make_epochs_unusable() -> None:
    acc = _still(10.0)
    acc[:, 60:90] = np.nan  # 30 of the 50 samples of epoch 1
    valid = np.ones(acc.shape[1], dtype=bool)
    valid[400:500] = False  # epochs 8 and 9
    ep = acc_epochs(acc, FS, epoch_s=1.0, valid=valid)
    assert ep.valid.tolist() == [True, False] + [True] * 6 + [False, False]
    assert np.isnan(ep.enmo_mg[1])
    assert np.isnan(ep.vib_mg[:, 9]).all()
    assert ep.valid_frac[1] == pytest.approx(0.4)


@pytest.mark.parametrize(
    ("shape", "fs", "epoch", "match"),
    [((2, 100), 50.0, 1.0, "shape"), ((3, 100), 10.0, 1.0, "too low"),
     ((3, 100), 50.0, 0.03, "whole number")],
)
def test_bad_inputs_say_what_to_do(shape: tuple[int, int], fs: float, epoch: float,
                                   match: str) -> None:
    with pytest.raises(DetectionError, match=match):
        acc_epochs(np.zeros(shape), fs, epoch_s=epoch)


def test_coarsen_matches_epochs_computed_at_the_longer_length() -> None:
    acc = _restless(600.0)
    fine = acc_epochs(acc, FS, epoch_s=1.0).coarsen(5)
    coarse = acc_epochs(acc, FS, epoch_s=5.0)
    for name in ("mean_mg", "sd_mg", "min_mg", "max_mg", "enmo_mg", "vertical_frac"):
        np.testing.assert_allclose(getattr(fine, name), getattr(coarse, name), rtol=1e-9,
                                   atol=1e-9, err_msg=name)
    assert fine.epoch_s == 5.0


# --- sleep period on generated nights ------------------------------------------------------------


@pytest.fixture(scope="module")
def night_periods() -> Periods:
    out = []
    for seed in (1, 4):
        night = generate_night(NightSpec(seed=seed, emg_fs_hz=200.0, n_cramps=2))
        res = {}
        for leg in ("left", "right"):
            src = night.leg(leg)
            res[leg] = sleep_period(acc_epochs(src.acc_mg(0, src.n_acc), FS, epoch_s=1.0))
        out.append((night, res))
    return out


def test_sleep_period_matches_the_nights_spec(night_periods: Periods) -> None:
    for night, res in night_periods:
        for sp in res.values():
            assert sp.onset_s is not None
            assert sp.offset_s is not None
            assert abs(sp.onset_s - night.sleep_onset_s) < 300.0  # within 5 min
            assert sp.offset_s >= night.spec.duration_s - 600.0  # asleep until the end
            assert sp.nonwear.height == 0
            assert 6.5 * 3600 < sp.sleep_s < night.spec.duration_s - night.sleep_onset_s


def test_waking_for_a_cramp_and_walking_show_as_wake_bouts(night_periods: Periods) -> None:
    seen = {"cramp": 0, "walk": 0}
    for night, res in night_periods:
        truth = night.truth.filter(
            ((pl.col("kind") == "cramp") & (pl.col("woke") | pl.col("got_up")))
            | (pl.col("kind") == "walk"))
        for row in truth.iter_rows(named=True):
            wb = res[row["leg"]].wake_bouts
            hit = wb.filter((pl.col("start_s") < row["offset_s"] + 30)
                            & (pl.col("end_s") > row["onset_s"] - 5))
            assert hit.height >= 1, row
            seen[row["kind"]] += 1
        # and quiet sleep is mostly asleep: no wake bout over 10 min apart from walks
        for sp in res.values():
            long = sp.wake_bouts.filter(pl.col("end_s") - pl.col("start_s") > 600)
            assert long.height <= 1
    assert seen["cramp"] >= 2
    assert seen["walk"] >= 2


def test_to_dict_is_json_ready_and_methods_says_what_was_done(night_periods: Periods) -> None:
    sp = night_periods[0][1]["left"]
    d = json.loads(json.dumps(sp.to_dict()))
    assert set(d) == {"onset_s", "offset_s", "sleep_h", "wake_bouts", "nonwear"}
    assert d["sleep_h"] == pytest.approx(sp.sleep_s / 3600, abs=1e-3)
    assert len(d["wake_bouts"]) == sp.wake_bouts.height
    assert "HDCZA" in sp.methods
    assert "van Hees" in sp.methods
    assert "h asleep" in sp.methods


# --- hand-made edge cases ------------------------------------------------------------------------


def test_awake_then_still_for_hours_is_one_sleep_period() -> None:
    acc = np.concatenate([_restless(1800.0), _still(4 * 3600.0), _restless(1200.0, seed=3)],
                         axis=1)
    sp = sleep_period(acc_epochs(acc, FS))
    assert sp.onset_s is not None
    assert sp.offset_s is not None
    assert abs(sp.onset_s - 1800.0) < 240.0
    assert abs(sp.offset_s - (1800.0 + 4 * 3600.0)) < 240.0
    assert sp.wake_bouts.height == 0
    assert sp.sleep_s == pytest.approx(4 * 3600.0, rel=0.05)


def test_all_moving_has_no_sleep_period() -> None:
    sp = sleep_period(acc_epochs(_restless(3 * 3600.0), FS))
    assert sp.onset_s is None
    assert sp.offset_s is None
    assert sp.sleep_s == 0.0
    assert sp.wake_bouts.height == 0
    assert sp.to_dict()["onset_s"] is None
    assert "No sleep period" in sp.methods


def test_all_still_for_a_whole_night_is_non_wear_not_sleep() -> None:
    sp = sleep_period(acc_epochs(_still(7 * 3600.0), FS))
    assert sp.onset_s is None
    assert sp.nonwear.height == 1
    assert sp.nonwear["end_s"][0] - sp.nonwear["start_s"][0] == pytest.approx(7 * 3600.0)


def test_short_recording_has_no_sleep_period_and_no_crash() -> None:
    for seconds in (0.0, 3.0, 600.0):
        sp = sleep_period(acc_epochs(_still(seconds), FS))
        assert sp.onset_s is None
        assert sp.sleep_s == 0.0


def test_sensor_on_the_table_after_getting_up_is_non_wear() -> None:
    acc = np.concatenate([
        _restless(1200.0), _still(5 * 3600.0), _restless(4200.0, seed=5),
        _still(2 * 3600.0, seed=9, z_mg=-1000.0),  # face down on the table
    ], axis=1)
    sp = sleep_period(acc_epochs(acc, FS))
    off_start = 1200.0 + 5 * 3600.0 + 4200.0
    assert sp.offset_s is not None
    assert sp.offset_s < off_start
    assert sp.nonwear.height == 1
    assert sp.nonwear["start_s"][0] == pytest.approx(off_start, abs=900.0)
    assert sp.nonwear["end_s"][0] == pytest.approx(off_start + 7200.0)


def test_a_wear_hint_overrides_the_accelerometer() -> None:
    ep = acc_epochs(_still(7 * 3600.0), FS)
    sp = sleep_period(ep, worn=np.ones(ep.n, dtype=bool))
    assert sp.nonwear.height == 0
    assert sp.onset_s == 0.0


def test_gaps_are_neither_sleep_nor_non_wear() -> None:
    acc = np.concatenate([_restless(1800.0), _still(4 * 3600.0)], axis=1)
    gap = slice(round(3 * 3600 * FS), round(3.5 * 3600 * FS))
    acc[:, gap] = np.nan
    sp = sleep_period(acc_epochs(acc, FS))
    assert sp.onset_s is not None
    assert sp.offset_s is not None
    asleep_in_gap = sp.asleep_at(np.arange(3 * 3600.0 + 5, 3.5 * 3600.0 - 5, 5.0))
    assert not asleep_in_gap.any()
    assert sp.sleep_s == pytest.approx(3.5 * 3600.0, rel=0.05)
    assert sp.nonwear.height == 0


def test_params_are_validated() -> None:
    with pytest.raises(ConfigError, match="hdcza_min_deg"):
        SleepParams(hdcza_min_deg=1.0, hdcza_max_deg=0.5)
    with pytest.raises(ConfigError, match="out of range"):
        SleepParams(wake_angle_deg=0.0)
