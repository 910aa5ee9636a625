"""``crampsense evaluate``: the corpus, the scoring, and that the harness can fail."""

from __future__ import annotations

import contextlib
import io
import json
import math
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime

import numpy as np
import polars as pl
import pytest

from crampsense.cli import evaluate as evaluate_cmd
from crampsense.cli.evaluate import SET_COLUMNS, SWEEP_COLUMNS, _set_table
from crampsense.cli.evaluate_corpus import force_onset_s
from crampsense.cli.main import main
from crampsense.detection import DetectionParams, LegSignals
from crampsense.detection.scoring import (
    ACC_ONLY,
    EMG,
    SWEEP_ON_RATIOS,
    TARGETS,
    calibrated_ece,
    expected_calibration_error,
    false_by_class,
    reliability,
    score_records,
    summarise,
)
from crampsense.errors import UsageError
from firmware_sims.night import ALL_KINDS, LOOKALIKE_KINDS
from firmware_sims.night.corpus import (
    DEFAULT_SEED_BASE,
    GAINS,
    RATES_HZ,
    build_corpus,
    run_corpus,
)

SCORE_KEYS = {"nights", "n_true", "n_detected", "tp", "fp", "fn", "sensitivity", "precision",
              "f1", "fa_per_night", "fa_per_sleep_hour", "onset_error_median_s",
              "onset_error_iqr_s", "duration_error_median_s", "lenient_f1", "iou"}


def fire_everywhere(legs: Sequence[LegSignals], start: datetime,
                    params: DetectionParams) -> pl.DataFrame:
    """A broken detector: a 30-s 'cramp' every 2 min on every leg."""
    dur = max(s.acc_duration_s() for s in legs)
    onsets = np.arange(0.0, dur - 30.0, 120.0)
    return pl.DataFrame({
        "onset_s": np.tile(onsets, len(legs)), "offset_s": np.tile(onsets + 30.0, len(legs)),
        "leg": np.repeat([s.leg for s in legs], onsets.size),
        "kind": ["cramp"] * (onsets.size * len(legs))})


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, dict[str, object]]:
    """One CLI run of the tiny corpus (shared: the machine has 2 cores)."""
    tmp = tmp_path_factory.mktemp("evaluate")
    out = tmp / "r.json"
    mp = pytest.MonkeyPatch()
    mp.setenv("CRAMPSENSE_HOME", str(tmp / "home"))
    cap = io.StringIO()
    code = 0
    try:
        with contextlib.redirect_stdout(cap):
            main(["--no-color", "evaluate", "--corpus", "tiny", "--workers", "1", "--json",
                  str(out), "--check", "--world", "legacy"])
    except SystemExit as exc:  # --check exits 1 on a missed target, 0 returns normally
        code = int(exc.code or 0)
    finally:
        mp.undo()
    return code, cap.getvalue(), json.loads(out.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def tiny(cli_run: tuple[int, str, dict[str, object]]) -> dict[str, object]:
    return cli_run[2]


def test_full_corpus_covers_every_stress_set_with_fresh_seeds() -> None:
    sets = build_corpus("full")
    names = {s.name for s in sets}
    assert {f"lookalike:{k}" for k in LOOKALIKE_KINDS} <= names
    assert {"no-events", *(f"rate-{r:g}" for r in RATES_HZ), *(f"gain-{g:g}" for g in GAINS)
            } <= names
    seeds = [c.spec.seed for s in sets for c in s.cases]
    assert min(seeds) >= DEFAULT_SEED_BASE
    # nights are never shared between sets, except the rate/gain sets (same nights on purpose)
    own = [c.spec.seed for s in sets if s.kind not in ("rate", "gain") for c in s.cases]
    assert len(own) == len(set(own))
    assert not set(own) & {c.spec.seed for s in sets if s.kind in ("rate", "gain")
                           for c in s.cases}
    free = [c for s in sets if s.kind in ("lookalike", "none") for c in s.cases]
    assert all(c.spec.n_cramps == 0 and c.spec.duration_s == 8 * 3600.0 for c in free)
    assert len(free) >= 60  # zero false alarms then bounds the rate at 0.05/night (95 %)
    assert {c.spec.gain for s in sets if s.kind == "gain" for c in s.cases} == set(GAINS)


def test_negative_seed_base_is_refused() -> None:
    with pytest.raises(UsageError, match="seed-base"):
        build_corpus("tiny", seed_base=-1)


def test_tiny_corpus_runs_end_to_end(tiny: dict[str, object]) -> None:
    res = tiny["results"]
    assert isinstance(res, dict)
    for row in res["sets"]:
        assert row.keys() >= SCORE_KEYS
    mixed = res["pooled"]["mixed"]
    assert mixed["n_true"] >= 2
    assert mixed["f1"] >= 0.9  # the real detector on two easy 10-min nights
    assert [r["on_ratio"] for r in res["sweep"]] == list(SWEEP_ON_RATIOS)
    assert sum(r["default"] for r in res["sweep"]) == 1
    assert [t["target"] for t in res["targets"]] == [t[0] for t in TARGETS]
    nights = tiny["nights"]
    assert isinstance(nights, list)
    assert all(ACC_ONLY in n["runs"] for n in nights if n["set"].startswith("mixed"))
    json.dumps(tiny, default=str)  # JSON-ready


def test_tables_have_the_right_columns(tiny: dict[str, object]) -> None:
    res = tiny["results"]
    assert isinstance(res, dict)
    table = _set_table("t", res["sets"])
    assert [c.header for c in table.columns] == list(SET_COLUMNS)
    assert {"sens", "prec", "F1", "FA/night", "FA/h sleep", "onset s med (IQR)",
            "dur err s", "lenient F1"} <= set(SET_COLUMNS)
    assert {"sensitivity", "precision", "FA/night (cramp-free)"} <= set(SWEEP_COLUMNS)


def test_a_detector_that_fires_everywhere_fails() -> None:
    sets = [s for s in build_corpus("tiny") if s.kind in ("mixed", "lookalike", "none")]
    records = run_corpus(sets, workers=1, detector=fire_everywhere)
    res = summarise(sets, records)
    free = res["pooled"]["lookalike_free"]
    assert free["fa_per_night"] >= 3.0
    assert res["pooled"]["mixed"]["precision"] < 0.5
    met = {t["target"]: t["met"] for t in res["targets"]}
    assert met["fa_per_night_lookalike"] is False
    assert met["f1"] is False
    assert all(not r["meets_fa_limit"] for r in res["sweep"])


def test_scores_count_matches_misses_and_false_alarms() -> None:
    rec = {"set": "x", "seed": 1, "hours": 8.0, "sleep_hours": 7.5,
           "truth": [("left", 100.0, 160.0, True), ("right", 500.0, 600.0, False)],
           "runs": {EMG: [("left", 103.0, 158.0, "cramp"), ("left", 900.0, 950.0, "cramp")]}}
    s = score_records([rec], EMG)
    assert (s["tp"], s["fp"], s["fn"]) == (1, 1, 1)
    assert s["onset_error_median_s"] == pytest.approx(3.0)
    assert s["duration_error_median_s"] == pytest.approx(-5.0)
    assert s["fa_per_night"] == 1.0
    assert s["fa_per_sleep_hour"] == pytest.approx(1 / 7.5)
    assert s["fa_upper95_per_night"] > 1.0


def test_force_onset_is_found_only_after_a_rest() -> None:
    fs = 2000.0
    t = np.arange(20001) / fs
    rest_then_hold = 1.0 + 20.0 * np.clip((t - 1.0) / 0.5, 0.0, 1.0)
    onset, ref = force_onset_s(rest_then_hold, fs)
    assert ref == "force"
    assert onset == pytest.approx(1.0, abs=0.1)
    already = 10.0 + 10.0 * np.clip(t / 0.5, 0.0, 1.0)
    assert force_onset_s(already, fs) == (0.0, "file start: rising")


def test_cli_prints_the_tables_and_check_fails_on_a_missed_target(
        cli_run: tuple[int, str, dict[str, object]]) -> None:
    code, raw, data = cli_run
    text = " ".join(raw.split())  # the console wraps long lines
    met = {t["target"]: t["met"] for t in data["results"]["targets"]}  # type: ignore[index]
    # --check exits 1 exactly when a target is missed (None: not measured on this corpus)
    assert code == (1 if any(v is False for v in met.values()) else 0)
    for title in ("Mixed nights", "Stress sets", "Sample rates", "Gains", "Accelerometer only",
                  "Threshold sweep", "Targets (issue 3 and issue 9)"):
        assert title in text
    assert "IoU >= 0.2" in text
    assert "onsets within 30 s" in text
    assert "operating point chosen in advance" in text
    assert data["meta"]["seed_base"] == DEFAULT_SEED_BASE  # type: ignore[index]


@pytest.mark.slow
def test_two_workers_give_the_same_records_as_one() -> None:
    sets = build_corpus("tiny")[:1]
    one = run_corpus(sets, workers=1)
    two = run_corpus(sets, workers=2)
    assert [r["runs"] for r in one] == [r["runs"] for r in two]


def test_cli_start_up_does_not_load_the_detector() -> None:
    """``crampsense --help`` registers ``evaluate`` without importing the detector (scipy)."""
    code = ("import sys, crampsense.cli.main; "
            "print(sorted(m for m in sys.modules if m.startswith('crampsense.detection')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=60)
    assert proc.stdout.strip() == "[]"


def test_cli_seed_base_matches_the_corpus() -> None:
    """The command's default seed base is the corpus's (a literal there keeps --help light)."""
    assert evaluate_cmd.DEFAULT_SEED_BASE == DEFAULT_SEED_BASE


def test_false_cramps_are_blamed_on_the_look_alike_they_overlap() -> None:
    looks = [("plm_train", "left", 100.0, 400.0), ("mains_hum", "left", 0.0, 3000.0),
             ("tone_change", "right", 1000.0, 2000.0)]
    rec = {"set": "x", "seed": 1, "hours": 1.0, "sleep_hours": 1.0, "truth": [],
           "lookalike_truth": looks,
           "runs": {EMG: [("left", 150.0, 170.0, "cramp", 0.7, "emg"),  # in the PLM train
                          ("left", 1200.0, 1300.0, "cramp", 0.6, "emg"),  # only hum there
                          ("right", 1500.0, 1600.0, "cramp", 0.9, "emg"),
                          ("left", 5000.0, 5100.0, "cramp", 0.5, "emg")]}}
    rows = {r["class"]: r for r in false_by_class([rec, {**rec, "seed": 2}])}
    assert rows["plm_train"]["false"] == 2  # the PLM burst wins over the hour of hum
    assert rows["mains_hum"]["false"] == 2  # background only when nothing else overlaps
    assert rows["tone_change"]["false"] == 2
    assert rows["none"]["false"] == 2
    assert rows["plm_train"]["fa_per_night"] == pytest.approx(1.0)


def test_reliability_table_and_ece() -> None:
    truth = [("left", 100.0, 160.0, True)]
    runs = {EMG: [("left", 100.0, 160.0, "cramp", 0.85, "emg"),  # true
                  ("left", 500.0, 560.0, "cramp", 0.85, "emg"),  # false
                  ("left", 900.0, 960.0, "cramp", 0.15, "emg")]}  # false
    rec = {"set": "x", "seed": 1, "hours": 1.0, "sleep_hours": 1.0, "truth": truth,
           "runs": runs}
    r = reliability([rec])
    assert r["n"] == 3
    top = next(b for b in r["bins"] if b["lo"] == pytest.approx(0.8))
    assert (top["n"], top["share_true"]) == (2, 0.5)
    # |0.5 - 0.85| x 2/3 + |0 - 0.15| x 1/3
    assert r["ece"] == pytest.approx(0.35 * 2 / 3 + 0.15 / 3)
    # three events are too few to tell anything from calibration
    assert r["ece_calibrated_p95"] > r["ece"]
    # the same measure from confidences and outcomes (as the fit uses it)
    assert expected_calibration_error([0.85, 0.85, 0.15], [1, 0, 0]) == pytest.approx(r["ece"])
    assert math.isnan(expected_calibration_error([], []))
    # a weight counts an event that many times (the fit weighs cramp-dense nights' cramps)
    assert expected_calibration_error([0.85, 0.85, 0.15], [1, 0, 0], weights=[2, 1, 1]) == (
        pytest.approx(expected_calibration_error([0.85, 0.85, 0.85, 0.15], [1, 1, 0, 0])))
    assert expected_calibration_error([0.85, 0.85, 0.15], [1, 0, 0], weights=[2, 1, 1]) != (
        pytest.approx(r["ece"]))


def test_calibrated_ece_of_weighed_events() -> None:
    c = np.full(200, 0.8)
    plain = calibrated_ece(c, draws=400)
    # weight 1 when true is the unweighted reference, draw for draw
    assert calibrated_ece(c, draws=400, weight_if_true=np.ones(200)) == pytest.approx(plain)
    # true events weighed down: calibrated draws are true more often, so that the weighed
    # share stays 0.8; 200 events all true at weight 0.25 are far outside that reference
    w = np.full(200, 0.25)
    mean, p95 = calibrated_ece(c, draws=400, weight_if_true=w)
    assert mean < p95 < 0.1
    assert expected_calibration_error(c, np.ones(200), weights=w) == pytest.approx(0.2)


def test_calibrated_ece_is_the_noise_of_few_events() -> None:
    # n events at confidence p, each true with probability p: |share - p| has mean
    # sqrt(2 p (1 - p) / (pi n)), 0.0398 for p = 0.55 and n = 100, half that for 4x the events
    few, few_p95 = calibrated_ece([0.55] * 100)
    many, _ = calibrated_ece([0.55] * 400)
    assert few == pytest.approx(math.sqrt(2 * 0.55 * 0.45 / (math.pi * 100)), rel=0.1)
    assert many == pytest.approx(few / 2, rel=0.15)
    assert few_p95 > few
    assert calibrated_ece([1.0] * 50) == (0.0, 0.0)
    assert all(math.isnan(v) for v in calibrated_ece([]))


def test_a_miscalibrated_confidence_stands_out_of_the_calibrated_reference() -> None:
    truth = [("left", 100.0 + 200.0 * k, 160.0 + 200.0 * k, True) for k in range(40)]
    # 80 events at 0.9: only the 40 on a true cramp are true (share 0.5)
    det = [("left", 100.0 + 100.0 * k, 160.0 + 100.0 * k, "cramp", 0.9, "emg")
           for k in range(80)]
    rec = {"set": "x", "seed": 1, "hours": 5.0, "sleep_hours": 5.0, "truth": truth,
           "runs": {EMG: det}}
    r = reliability([rec])
    assert r["ece"] == pytest.approx(0.4)
    assert r["ece"] > r["ece_calibrated_p95"]


def test_shifted_corpus_has_world_nights_and_a_look_alike_mix() -> None:
    sets = build_corpus("quick", world="shifted")
    names = {s.name for s in sets}
    assert "lookalike-mix" in names
    assert {f"lookalike:{k}" for k in ALL_KINDS} <= names
    specs = [c.spec for s in sets for c in s.cases]
    assert all(sp.world is not None and sp.world.name == "shifted" for sp in specs)
    assert min(sp.seed for sp in specs) >= DEFAULT_SEED_BASE
