"""``crampsense analyze``: channel mapping, file kinds, JSON contract, refusals as one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from clihelp import run_cli
from crampsense.cli.analyze import SLEEP_FIELDS, analysis_json
from crampsense.cli.utils import EXIT_ERROR, EXIT_USAGE
from crampsense.detection import LegSignals, detect_cramps
from crampsense.pipeline.files import LEGS, Channel, auto_map
from crampsense.storage.edf import EdfSignal, write_edf
from crampsense.storage.samples import SampleChannel, write_samples
from firmware_sims.bedroom import BAND_LEFT, BAND_RIGHT
from firmware_sims.night import NightSpec, SyntheticNight, generate_night

SEED = 11  # a 20-min night with two cramps, one on each leg (seeds < 1000 are not tuned on)
NIGHT_S = 1200.0
EMG_FS_HZ = 500.0
ONSET_TOLERANCE_S = 5.0




def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("crampsense: error: ")
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture(autouse=True)
def home(crampsense_home: Path) -> Path:
    return crampsense_home


@pytest.fixture(scope="module")
def night() -> SyntheticNight:
    return generate_night(NightSpec(seed=SEED, duration_s=NIGHT_S, emg_fs_hz=EMG_FS_HZ,
                                    n_cramps=2))


def _edf_signals(night: SyntheticNight, *, acc_unit: str = "mg") -> list[EdfSignal]:
    sigs = []
    for leg in LEGS:
        emg, acc, _ = night.render(leg)
        side = leg[0].upper()
        for k, ch in enumerate(night.spec.emg_channels):
            sigs.append(EdfSignal(f"EMG {side} {ch}", emg[k], EMG_FS_HZ, "uV", -10000, 10000))
        scale = 1000.0 if acc_unit == "g" else 1.0
        for k, axis in enumerate("XYZ"):
            sigs.append(EdfSignal(f"Acc {leg} {axis}", acc[k] / scale, 50.0, acc_unit,
                                  -8000 / scale, 8000 / scale))
    return sigs


@pytest.fixture(scope="module")
def night_edf(night: SyntheticNight, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("edf") / "night.edf"
    write_edf(path, _edf_signals(night), start=night.spec.start)
    return path


def _analyze_json(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    code, out, err = run_cli(["analyze", *args, "--json"], capsys)
    assert code == 0, err
    doc: dict[str, Any] = json.loads(out)  # exactly one JSON object on stdout
    return doc


def _events(doc: dict[str, Any]) -> list[tuple[str, float, float, str]]:
    return [(e["leg"], e["onset_s"], e["offset_s"], e["kind"]) for e in doc["events"]]


# --- mapping ----------------------------------------------------------------------------------


def _chans(*specs: tuple[str, str, float]) -> list[Channel]:
    return [Channel(i, label, unit, fs) for i, (label, unit, fs) in enumerate(specs)]


def test_auto_map_finds_legs_axes_and_units() -> None:
    cmap = auto_map(_chans(
        ("EMG L gastroc", "uV", 1000), ("EMG_R_gastroc", "mV", 1000),
        ("Right soleus", "uV", 1000), ("AccX left", "g", 50), ("AccY left", "g", 50),
        ("AccZ left", "g", 50), ("ACC R X", "mg", 50), ("ACC R Y", "mg", 50),
        ("ACC R Z", "mg", 50), ("Chin EMG", "uV", 500), ("ECG", "mV", 500),
        ("EEG C3-A2", "uV", 500)))
    assert [c.label for c in cmap.emg["left"]] == ["EMG L gastroc"]
    assert [c.label for c in cmap.emg["right"]] == ["EMG_R_gastroc", "Right soleus"]
    assert [c.label for c in cmap.acc["left"]] == ["AccX left", "AccY left", "AccZ left"]
    assert [c.label for c in cmap.acc["right"]] == ["ACC R X", "ACC R Y", "ACC R Z"]


def test_auto_map_psg_tibialis_labels_and_skips_with_notes() -> None:
    cmap = auto_map(_chans(("LAT", "uV", 500), ("RAT", "uV", 500), ("EMG calf", "uV", 500),
                           ("Leg L tib", "mg", 500), ("Accel L X", "mg", 50),
                           ("Accel L Y", "mg", 50)))
    assert [c.label for c in cmap.emg["left"]] == ["LAT"]
    assert [c.label for c in cmap.emg["right"]] == ["RAT"]
    assert not cmap.acc
    notes = " | ".join(cmap.notes)
    assert "'EMG calf': no left/right" in notes
    assert "'Leg L tib': unit 'mg' is not a voltage" in notes
    assert "need exactly one x, y and z" in notes


def test_auto_map_keeps_one_rate_per_leg() -> None:
    cmap = auto_map(_chans(("EMG L gm", "uV", 1000), ("EMG L sol", "uV", 250)))
    assert [c.label for c in cmap.emg["left"]] == ["EMG L gm"]
    assert any("'EMG L sol': 250 Hz" in n for n in cmap.notes)


# --- detection through files -------------------------------------------------------------------


def test_synthetic_night_in_edf_finds_its_cramps(
    night: SyntheticNight, night_edf: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = _analyze_json([str(night_edf)], capsys)
    truth = night.cramps()
    assert truth.height == 2
    cramps = [e for e in doc["events"] if e["kind"] == "cramp"]
    for row in truth.iter_rows(named=True):
        hits = [e for e in cramps if e["leg"] == row["leg"]
                and abs(e["onset_s"] - row["onset_s"]) <= ONSET_TOLERANCE_S]
        assert len(hits) == 1, (row, cramps)
    assert len(cramps) == truth.height
    assert doc["channels"]["left"]["acc"] == ["Acc left X", "Acc left Y", "Acc left Z"]
    assert all(e["evidence"] == "emg+acc" for e in cramps)


def test_json_schema(night_edf: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = _analyze_json([str(night_edf)], capsys)
    assert set(doc) == {"file", "format", "start", "duration_s", "channels", "events",
                        "coverage", "sleep"}
    assert doc["file"] == str(night_edf)
    assert doc["format"] == "EDF+C"
    assert doc["start"] == "2026-11-20T22:30:00+00:00"
    assert doc["duration_s"] == NIGHT_S
    for e in doc["events"]:
        assert {"onset_s", "offset_s", "duration_s", "leg", "kind", "severity", "confidence",
                "evidence"} <= set(e)
        assert e["leg"] in LEGS
        assert e["kind"] in ("cramp", "possible_cramp")
        assert e["severity"] in ("mild", "moderate", "severe")
        assert e["evidence"] in ("emg", "acc", "emg+acc")
        assert 0.0 <= e["confidence"] <= 1.0
        assert e["duration_s"] == pytest.approx(e["offset_s"] - e["onset_s"], abs=0.02)
    cov = doc["coverage"]
    assert cov["duration_s"] == NIGHT_S
    assert set(cov["legs"]) == set(LEGS)
    for leg in LEGS:
        spans = cov["legs"][leg]["not_covered"]
        lost = sum(s["end_s"] - s["start_s"] for s in spans)
        assert cov["legs"][leg]["covered_s"] == pytest.approx(NIGHT_S - lost, abs=0.2)
        assert all(set(s) == {"start_s", "end_s", "reason"} for s in spans)
    assert set(doc["sleep"]) == set(LEGS)
    for leg in LEGS:
        assert set(doc["sleep"][leg]) == set(SLEEP_FIELDS)
        # both legs have an accelerometer, so the sleep-period figures are computed
        assert doc["sleep"][leg]["sleep_s"] is not None
        assert 0.0 <= doc["sleep"][leg]["sleep_s"] <= NIGHT_S


def test_sleep_is_taken_from_the_results_when_present() -> None:
    x = np.random.default_rng(0).standard_normal((1, 500 * 120)).astype(np.float32)
    results: Any = detect_cramps([LegSignals("left", x, 500.0)],
                                 start=NightSpec(seed=1).start)
    empty = analysis_json(file="f", file_format="EDF", results=results)
    assert all(v is None for leg in LEGS for v in empty["sleep"][leg].values())
    assert empty["coverage"]["legs"]["right"]["not_covered"][0]["reason"] == "not recorded"

    class Period:  # shaped like detection.sleep.SleepPeriod
        onset_s = 600.0
        offset_s = 7800.0
        sleep_s = 6000.0
        wake_bouts = pl.DataFrame({"start_s": [1000.0, 3000.0], "end_s": [1300.0, 3600.0]})
        nonwear = pl.DataFrame({"start_s": [], "end_s": []},
                               schema={"start_s": pl.Float64, "end_s": pl.Float64})

    class WithSleep:
        def __init__(self, inner: Any) -> None:
            self.__dict__.update({k: getattr(inner, k) for k in
                                  ("events", "coverage", "legs", "duration_s", "start")})
            self.sleep = {"left": Period()}

    doc = analysis_json(file="f", file_format="EDF", results=WithSleep(results))  # type: ignore[arg-type]
    left = doc["sleep"]["left"]
    assert left["sleep_onset_s"] == 600.0
    assert left["sleep_period_s"] == 7200.0
    assert left["wake_s"] == 900.0
    assert left["wake_bouts"] == 2
    assert left["non_wear_s"] == 0.0
    assert left["events_per_sleep_h"] == 0.0
    assert all(v is None for v in doc["sleep"]["right"].values())


def test_acc_in_g_and_mg_give_identical_events(
    night: SyntheticNight, night_edf: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    g_path = tmp_path / "g.edf"
    write_edf(g_path, _edf_signals(night, acc_unit="g"), start=night.spec.start)
    mg = _analyze_json([str(night_edf)], capsys)
    g = _analyze_json([str(g_path)], capsys)
    assert mg["events"] == g["events"]
    assert mg["events"]


def test_accelerometer_only_file_gives_the_librarys_possible_cramps(
    night: SyntheticNight, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file with accelerometers and no EMG (most consumer wearables): the command says so
    in one note, covers both legs and reports the library's accelerometer-only events."""
    path = tmp_path / "acc.edf"
    sigs = [sg for sg in _edf_signals(night) if sg.label.startswith("Acc")]
    write_edf(path, sigs, start=night.spec.start)
    code, out, err = run_cli(["analyze", str(path)], capsys)
    assert code == 0, err
    notes = [line for line in (out + err).splitlines() if line.startswith("note: no EMG")]
    assert notes == [("note: no EMG mapped; events come from the accelerometer alone "
                      "(possible cramps; an accelerometer under 25 Hz is not covered)")]
    doc = _analyze_json([str(path)], capsys)
    legs = [LegSignals(leg, None, None, acc_mg=night.render(leg)[1], acc_fs_hz=50.0)
            for leg in LEGS]
    lib = detect_cramps(legs, start=night.spec.start).events
    assert doc["events"]  # the right leg's cramp woke the sleeper: a possible cramp
    assert [(e["leg"], e["kind"], e["evidence"]) for e in doc["events"]] == [
        (r["leg"], "possible_cramp", "acc") for r in lib.iter_rows(named=True)]
    assert [e["onset_s"] for e in doc["events"]] == pytest.approx(lib["onset_s"].to_list(),
                                                                  abs=0.1)
    for leg in LEGS:
        assert all(g["reason"] != "no-emg" for g in doc["coverage"]["legs"][leg]["not_covered"])


def test_bdf_explicit_mapping_and_parquet_agree(
    night: SyntheticNight, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    emg, acc, _ = night.render("left")
    bdf = tmp_path / "left.bdf"
    write_edf(bdf, [EdfSignal("ch1", emg[0] / 1000.0, EMG_FS_HZ, "mV", -10, 10),
                    EdfSignal("a", acc[0], 50.0, "mg", -8000, 8000),
                    EdfSignal("b", acc[1], 50.0, "mg", -8000, 8000),
                    EdfSignal("c", acc[2], 50.0, "mg", -8000, 8000)],
              start=night.spec.start, bdf=True)
    pq = tmp_path / "left.parquet"
    write_samples(pq, [SampleChannel("EMG L gm", "uV", EMG_FS_HZ, emg[0])]
                  + [SampleChannel(f"ACC L {a}", "mg", 50.0, acc[k])
                     for k, a in enumerate("XYZ")], start=night.spec.start)
    from_bdf = _analyze_json([str(bdf), "--emg", "ch1=left", "--acc", "a,b,c=left"], capsys)
    from_pq = _analyze_json([str(pq)], capsys)
    assert from_pq["format"] == "parquet"
    assert from_pq["start"] == from_bdf["start"]
    (truth_onset_s,) = night.cramps().filter(pl.col("leg") == "left")["onset_s"]
    for doc in (from_bdf, from_pq):  # (one leg alone cannot reject the right leg's look-alikes)
        assert any(e["leg"] == "left" and abs(e["onset_s"] - truth_onset_s) < ONSET_TOLERANCE_S
                   for e in doc["events"]), doc["events"]
    assert [e["onset_s"] for e in from_pq["events"]] == pytest.approx(
        [e["onset_s"] for e in from_bdf["events"]], abs=0.2)


def test_csv_sample_file_with_gaps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal(300 * 60).astype(np.float32) * 3.0
    x[3000:3600] = np.nan  # a two-second hole
    path = tmp_path / "s.csv"
    write_samples(path, [SampleChannel("EMG R tib", "uV", 300.0, x)],
                  start=NightSpec(seed=1).start)
    assert path.read_text().startswith("# start: 2026-11-20T22:30:00+00:00\nEMG R tib [uV] @ 300")
    doc = _analyze_json([str(path)], capsys)
    spans = doc["coverage"]["legs"]["right"]["not_covered"]
    assert spans
    assert spans[0]["start_s"] <= 10.0
    assert spans[0]["end_s"] >= 12.0
    assert doc["coverage"]["legs"]["left"]["not_covered"][0]["reason"] == "not recorded"


def test_readable_report(night_edf: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["analyze", str(night_edf)], capsys)
    assert code == 0, err
    assert "using left leg EMG: 'EMG L gm', 'EMG L gl' (500 Hz, uV)" in out
    assert "2 cramp event(s)" in out
    assert "left leg: covered" in out
    assert "not a medical device" in out


def test_session_file_input(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (home / "config.toml").write_text("[band]\nemg_fs_hz = 500\n")
    for address, placement in ((BAND_LEFT, "left-calf"), (BAND_RIGHT, "right-calf")):
        code, _, err = run_cli(["pair", address, "--placement", placement, "--simulate"],
                               capsys)
        assert code == 0, err
    code, _, err = run_cli(["record", "--simulate", "--hours", "0.05", "--seed", "3"], capsys)
    assert code == 0, err
    (session,) = sorted((home / "sessions").glob("*.session"))
    doc = _analyze_json([str(session)], capsys)
    assert doc["format"] == "session"
    assert doc["channels"] is None
    assert doc["duration_s"] == pytest.approx(180.0, abs=2.0)
    assert set(doc["coverage"]["legs"]) == set(LEGS)
    assert doc["coverage"]["legs"]["left"]["covered_s"] > 150.0
    code, _, err = run_cli(["analyze", str(session), "--emg", "x=left"], capsys)
    assert code == EXIT_USAGE
    assert "do not apply to session files" in one_error_line(err)


# --- refusals ----------------------------------------------------------------------------------


def _small_edf(path: Path, *, emg_fs: float = 500.0, acc_fs: float = 50.0) -> Path:
    rng = np.random.default_rng(0)
    sigs = [EdfSignal("EMG L gastroc", rng.standard_normal(int(emg_fs * 30)), emg_fs, "uV")]
    sigs += [EdfSignal(f"ACC L {a}", rng.standard_normal(int(acc_fs * 30)), acc_fs, "mg")
             for a in "XYZ"]
    write_edf(path, sigs, start=NightSpec(seed=1).start)
    return path


@pytest.mark.parametrize(("args", "code", "text"), [
    (["--emg", "nope=left"], EXIT_USAGE, "no channel labelled 'nope'"),
    (["--emg", "EMG L gastroc=middle"], EXIT_USAGE, "is not 'left' or 'right'"),
    (["--emg", "EMG L gastroc"], EXIT_USAGE, "is not LABEL=LEG"),
    (["--acc", "ACC L X,ACC L Y=left"], EXIT_USAGE, "is not XLABEL,YLABEL,ZLABEL=LEG"),
    (["--emg", "ACC L X=left"], EXIT_USAGE, "not a voltage"),
    (["--emg", "EMG L gastroc=left", "--emg", "EMG L gastroc=right"], EXIT_USAGE,
     "mapped twice"),
])
def test_bad_mappings_are_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       args: list[str], code: int, text: str) -> None:
    path = _small_edf(tmp_path / "x.edf")
    got, out, err = run_cli(["analyze", str(path), *args, "--json"], capsys)
    assert got == code
    assert out == ""
    assert text in one_error_line(err)


@pytest.mark.parametrize(("emg_fs", "acc_fs", "text"), [
    (100.0, 50.0, "sampled at 100 Hz; cramp detection needs at least 200 Hz"),
    (500.0, 10.0, "sampled at 10 Hz; at least 25 Hz"),
])
def test_slow_rates_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                emg_fs: float, acc_fs: float, text: str) -> None:
    path = _small_edf(tmp_path / "x.edf", emg_fs=emg_fs, acc_fs=acc_fs)
    code, out, err = run_cli(["analyze", str(path), "--json"], capsys)
    assert code == EXIT_ERROR
    assert out == ""
    assert text in one_error_line(err)


def _edf_field(blob: bytes, offset: int, width: int, value: bytes) -> bytes:
    return blob[:offset] + value.ljust(width, b" ") + blob[offset + width:]


@pytest.mark.parametrize(("case", "text"), [
    ("truncated", "truncated"),
    ("records", "truncated"),
    ("signals", "the number of signals is 9999"),
    ("ascii", "not printable ASCII"),
    ("garbage", "not a number"),
    ("foreign", "is not an EDF/EDF+/BDF recording"),
    ("missing", "does not exist"),
    ("csv", "not 'LABEL [UNIT] @ RATE Hz'"),
    ("csv-rate", "rate 1e+06 Hz"),
    ("no-channels", "no leg EMG or accelerometer channel recognised"),
])
def test_damaged_and_hostile_files_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, text: str
) -> None:
    blob = _small_edf(tmp_path / "ok.edf").read_bytes()
    path = tmp_path / "bad.edf"
    if case == "truncated":
        path.write_bytes(blob[: len(blob) // 2])
    elif case == "records":
        path.write_bytes(_edf_field(blob, 236, 8, b"99999999"))
    elif case == "signals":
        path.write_bytes(_edf_field(blob, 252, 4, b"9999"))
    elif case == "ascii":
        path.write_bytes(blob[:20] + b"\xe9" + blob[21:])
    elif case == "garbage":
        path.write_bytes(_edf_field(blob, 244, 8, b"1.0.0"))
    elif case == "foreign":
        path = tmp_path / "x.bin"
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    elif case == "missing":
        path = tmp_path / "none.edf"
    elif case == "csv":
        path = tmp_path / "x.csv"
        path.write_text("time,emg\n0,1\n")
    elif case == "csv-rate":
        path = tmp_path / "x.csv"
        path.write_text("EMG L [uV] @ 1000000 Hz\n1\n")
    elif case == "no-channels":
        path = tmp_path / "x.csv"
        path.write_text("Fp1 [uV] @ 256 Hz\n1\n2\n")
    code, out, err = run_cli(["analyze", str(path), "--json"], capsys)
    assert code in (EXIT_ERROR, EXIT_USAGE)
    assert out == ""
    assert text in one_error_line(err)


def test_hostile_file_in_a_real_process(tmp_path: Path) -> None:
    blob = _small_edf(tmp_path / "ok.edf").read_bytes()
    path = tmp_path / "bad.edf"
    path.write_bytes(_edf_field(blob, 236, 8, b"99999999"))  # 100 M records promised
    env = {**os.environ, "CRAMPSENSE_HOME": str(tmp_path / "home"), "NO_COLOR": "1"}
    proc = subprocess.run([sys.executable, "-m", "crampsense", "analyze", str(path), "--json"],
                          capture_output=True, text=True, env=env, timeout=60, check=False)
    assert proc.returncode == EXIT_ERROR
    assert proc.stdout == ""
    assert "promises 99999999 data records" in one_error_line(proc.stderr)
