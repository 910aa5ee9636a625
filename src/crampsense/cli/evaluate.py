"""``crampsense evaluate``: score the detector on a fresh synthetic corpus and real recordings.

The corpus and its runs live in ``firmware_sims.night.corpus`` (imported here only, lazily:
the package never needs the simulators), the scoring in :mod:`crampsense.detection.scoring`
and the real-recording checks in :mod:`crampsense.cli.evaluate_corpus`; this module is the
command and its tables. Protocol and how to reproduce: ``docs/evaluation.md``.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import click
from rich import box
from rich.console import Console
from rich.table import Table

from crampsense import __version__
from crampsense.cli.evaluate_corpus import find_data_dir, real_checks
from crampsense.errors import DetectionError, UsageError

__all__ = ["evaluate", "render_report", "run_evaluation"]

#: First seed of the evaluation corpus (the same number as
#: ``firmware_sims.night.corpus.DEFAULT_SEED_BASE``, checked by a test; a literal here keeps
#: ``crampsense --help`` from importing the simulators).
DEFAULT_SEED_BASE: Final = 10_000
#: Columns of the per-set table, in order (also the keys the tests check).
SET_COLUMNS: Final = ("set", "nights", "h", "true", "det", "TP", "FP", "FN", "sens", "prec",
                      "F1", "FA/night", "FA/8 h", "FA/h sleep", "onset s med (IQR)",
                      "|onset| s", "dur err s", "lenient F1")
#: Tables are this wide at least (characters), also when piped: 18 columns do not fit in 100.
REPORT_WIDTH: Final = 150
SWEEP_COLUMNS: Final = ("on_ratio", "TP", "FP", "FN", "sensitivity", "precision", "F1",
                        "FA/night (all)", "FA/night (cramp-free)", "")


def _f(x: Any, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.{digits}f}"


def _s(x: Any) -> str:
    return "n/a" if x is None else f"{x:+.1f}"


def matching_text() -> str:
    """The matching parameters, printed with every result."""
    from crampsense.detection.scoring import IOU, LENIENT_ONSET_S  # noqa: PLC0415 - the detector

    return (f"Matching: one-to-one per leg, greedy by best IoU (YASA compare_detection idea); "
            f"strict = interval IoU >= {IOU:g}; lenient = any overlap and onsets within "
            f"{LENIENT_ONSET_S:g} s. Onset error = detected - true onset; duration error = "
            "detected - true duration (strict matches). FA = unmatched detections (strict).")


def _set_table(title: str, rows: Sequence[dict[str, Any]], *, gains: bool = False) -> Table:
    t = Table(title=title, title_justify="left", show_edge=False, pad_edge=False,
              box=box.SIMPLE_HEAD)
    cols = [*SET_COLUMNS, "same as x1"] if gains else list(SET_COLUMNS)
    for c in cols:
        t.add_column(c, justify="left" if c == "set" else "right", no_wrap=c == "set")
    for r in rows:
        onset = ("n/a" if r["onset_error_median_s"] is None else
                 f"{r['onset_error_median_s']:+.1f} ({r['onset_error_iqr_s']:.1f})")
        cells = [r["set"], str(r["nights"]), f"{r['hours']:.1f}", str(r["n_true"]),
                 str(r["n_detected"]), str(r["tp"]), str(r["fp"]), str(r["fn"]),
                 _f(r["sensitivity"]), _f(r["precision"]), _f(r["f1"]), _f(r["fa_per_night"]),
                 _f(r["fa_per_8h"]), _f(r["fa_per_sleep_hour"], 3), onset,
                 _f(r["onset_abs_median_s"], 1), _s(r["duration_error_median_s"]),
                 _f(r["lenient_f1"])]
        if gains:
            cells.append(str(r.get("same_as_x1", "")))
        t.add_row(*cells)
    return t


def render_report(out: Console, report: dict[str, Any]) -> None:
    """Print every table of a report made by :func:`run_evaluation`."""
    meta = report["meta"]
    out.print(f"[bold]crampsense evaluate[/] {meta['corpus']} corpus, {meta.get('world', '')} "
              f"world, seeds from "
              f"{meta['seed_base']} (tuning used seeds < 1000), {meta['nights']} nights, "
              f"{meta['workers']} workers, {meta['wall_s']:.0f} s wall, "
              f"{meta['cpu_s']:.0f} s CPU in workers.")
    out.print(matching_text())
    res = report.get("results")
    if res:
        sets = res["sets"]
        groups = (("Mixed nights (cramps among every look-alike)", "mixed"),
                  ("Stress sets: cramp-free nights with one look-alike kind each", "lookalike"),
                  ("Nights with no events", "none"),
                  ("Sample rates (same nights)", "rate"))
        for title, kind in groups:
            rows = [r for r in sets if r["kind"] == kind]
            if rows:
                out.print()
                out.print(_set_table(title, rows))
        gains = [r for r in sets if r["kind"] == "gain"]
        if gains:
            out.print()
            out.print(_set_table(f"Gains (same nights as rate-{500:g}; same as x1 = events "
                                 "equal within 0.1 s)", gains, gains=True))
        pooled = res["pooled"]
        rows = [{"set": "mixed, pooled", **pooled["mixed"]},
                {"set": "cramp-free, pooled", **pooled["lookalike_free"]},
                {"set": "every night", **pooled["all_nights"]}]
        out.print()
        out.print(_set_table("Pooled", rows))
        free = pooled["lookalike_free"]
        out.print(f"False cramps on cramp-free nights: {free['fp']} in {free['nights']} nights "
                  f"= {_f(free['fa_per_night'], 3)} per night; 95 % upper bound "
                  f"{_f(free['fa_upper95_per_night'], 3)} per night (Poisson, one-sided).")
        acc = res["acc_only"]
        out.print()
        woke = {"set": "woke cramps only", **acc["woke_cramps_only"]}
        out.print(_set_table("Accelerometer only (EMG removed; kind 'possible_cramp')",
                             [*acc["sets"], woke]))
        kinds = acc["pooled"]["kinds"]
        out.print(f"Accelerometer-only detections by kind: {kinds or 'none'}")
        env = res.get("envelope", {}).get("pooled")
        if env:
            out.print()
            out.print(_set_table("Pre-computed envelope (the mixed nights' EMG as a rectified, "
                                 "5-Hz-smoothed 50-Hz envelope)", [{"set": "envelope, mixed",
                                                                   **env}]))
        if res.get("false_by_class"):
            out.print()
            out.print(_class_table("False cramps per look-alike class (EMG), cramp-free "
                                   "nights: each false cramp is blamed on the look-alike it "
                                   "overlaps most", res["false_by_class"]))
        if res.get("mixed_false_by_class"):
            out.print(_class_table("False cramps per look-alike class (EMG), mixed nights",
                                   [r for r in res["mixed_false_by_class"] if r["false"]]
                                   or res["mixed_false_by_class"][:0]))
        if res.get("acc_false_by_class"):
            out.print(_class_table("False possible cramps per look-alike class "
                                   "(accelerometer only), cramp-free nights",
                                   res["acc_false_by_class"]))
        for run, calib in res.get("reliability", {}).items():
            out.print()
            out.print(_reliability_table(run, calib))
        out.print()
        if res.get("sweep"):
            out.print(_sweep_table(res["sweep"]))
        if res.get("confidence_sweep"):
            out.print(_confidence_sweep_table(res["confidence_sweep"]))
        out.print()
        out.print(_targets_table(res["targets"]))
    real = report.get("real")
    if real is not None:
        out.print()
        _render_real(out, real)


def _sweep_table(rows: Sequence[dict[str, Any]]) -> Table:
    t = Table(title="Threshold sweep of on_ratio (x floor) over every swept night: precision-"
              "recall and false alarms vs sensitivity", title_justify="left", show_edge=False,
              pad_edge=False)
    for c in SWEEP_COLUMNS:
        t.add_column(c, justify="right" if c else "left")
    for r in rows:
        mark = []
        if r["default"]:
            mark.append("<- operating point chosen in advance (default)")
        if not r["meets_fa_limit"]:
            from crampsense.detection.scoring import MAX_FA_PER_NIGHT  # noqa: PLC0415

            mark.append(f"FA > {MAX_FA_PER_NIGHT:g}/night")
        t.add_row(f"{r['on_ratio']:g}", str(r["tp"]), str(r["fp"]), str(r["fn"]),
                  _f(r["sensitivity"], 3), _f(r["precision"], 3), _f(r["f1"], 3),
                  _f(r["fa_per_night"], 3), _f(r["fa_per_night_lookalike"], 3), "; ".join(mark))
    return t


def _class_table(title: str, rows: Sequence[dict[str, Any]]) -> Table:
    t = Table(title=title, title_justify="left", show_edge=False, pad_edge=False,
              box=box.SIMPLE_HEAD)
    for c in ("class", "false", "nights with it", "FA/night"):
        t.add_column(c, justify="left" if c == "class" else "right")
    for r in rows:
        t.add_row(r["class"], str(r["false"]), str(r["nights_with_class"]),
                  _f(r["fa_per_night"], 3))
    return t


def _reliability_table(run: str, calib: dict[str, Any]) -> Table:
    ref = ""
    if calib.get("ece_calibrated") is not None:
        ref = (f" (perfectly calibrated confidences would show {_f(calib['ece_calibrated'], 3)}"
               f" on these events, 95 % up to {_f(calib['ece_calibrated_p95'], 3)})")
    t = Table(title=f"Reliability of the confidence, {run} events (all nights): share of the "
              f"events in each bin that were true cramps; ECE {_f(calib['ece'], 3)} over "
              f"{calib['n']} events{ref}", title_justify="left", show_edge=False,
              pad_edge=False, box=box.SIMPLE_HEAD)
    for c in ("confidence", "events", "mean confidence", "share true"):
        t.add_column(c, justify="right")
    for b in calib["bins"]:
        if b["n"]:
            t.add_row(f"{b['lo']:.1f}-{b['hi']:.1f}", str(b["n"]), _f(b["mean_confidence"]),
                      _f(b["share_true"]))
    return t


def _confidence_sweep_table(rows: Sequence[dict[str, Any]]) -> Table:
    t = Table(title="Reporting threshold on the confidence (mixed nights; FA/night on "
              "cramp-free nights)", title_justify="left", show_edge=False, pad_edge=False)
    for c in ("threshold", "TP", "FP", "FN", "sensitivity", "precision", "F1",
              "FA/night (cramp-free)", ""):
        t.add_column(c, justify="right" if c else "left")
    for r in rows:
        mark = "<- operating point chosen in advance" if r["default"] else ""
        t.add_row(f"{r['threshold']:g}", str(r["tp"]), str(r["fp"]), str(r["fn"]),
                  _f(r["sensitivity"], 3), _f(r["precision"], 3), _f(r["f1"], 3),
                  _f(r["fa_per_night_lookalike"], 3), mark)
    return t


def _targets_table(rows: Sequence[dict[str, Any]]) -> Table:
    t = Table(title="Targets (issue 3 and issue 9)", title_justify="left", show_edge=False,
              pad_edge=False, box=box.SIMPLE_HEAD)
    for c in ("target", "goal", "measured", "met"):
        t.add_column(c, justify="left" if c == "target" else "right")
    for r in rows:
        met = "n/a" if r["met"] is None else "yes" if r["met"] else "NO"
        t.add_row(r["description"], f"{r['op']} {r['goal']:g}", _f(r["measured"], 3), met)
    return t


def _render_real(out: Console, real: dict[str, Any]) -> None:
    if not real.get("data_dir"):
        out.print(f"Real recordings: skipped ({real.get('skipped')}).")
        return
    t = Table(title=f"Real sustained holds (Silva et al. 2024, CC0; {real['data_dir']}): onset "
              "within 0.5 s of the force onset, one sustained activation", title_justify="left",
              show_edge=False, pad_edge=False, box=box.SIMPLE_HEAD)
    for c in ("subject", "muscle", "reference", "ref onset s", "activation s", "error s",
              "covered s", "detector err s", "passed"):
        t.add_column(c, justify="left" if c in ("subject", "muscle", "reference") else "right")
    for r in real["holds"]:
        t.add_row(r["subject"], r["muscle"], r["reference"], _f(r["force_onset_s"]),
                  "n/a" if r["activation_onset_s"] is None else
                  f"{r['activation_onset_s']:.1f}-{r['activation_end_s']:.1f}",
                  _s(r["onset_error_s"]), _f(r["covered_s"], 1),
                  _s(r["detector_onset_error_s"]), "yes" if r["passed"] else "NO")
    out.print(t)
    out.print("Shin: raw bipolar EMG. Calf: the dataset's gastrocnemius column is an envelope "
              "(never negative), so white noise x that envelope is tested (model-based). Each "
              "hold is padded with 60 s of white floor at 1/5 of its in-band RMS.")
    b = Table(title="Real short bursts (PhysioNet emgdb, ODC-By; BioSPPy, BSD-3): never cramps",
              title_justify="left", show_edge=False, pad_edge=False, box=box.SIMPLE_HEAD)
    for c in ("recording", "fs Hz", "duration s", "bursts seen (>= 0.5 s)", "longest s",
              "cramps", "passed"):
        b.add_column(c, justify="left" if c == "recording" else "right")
    for r in real["bursts"]:
        b.add_row(r["recording"], f"{r['fs_hz']:.0f}", f"{r['duration_s']:.1f}",
                  str(r["bursts_seen"]), f"{r['longest_burst_s']:.1f}", str(r["cramps"]),
                  "yes" if r["passed"] else "NO")
    out.print(b)
    n_ok = sum(r["passed"] for r in real["holds"])
    out.print(f"Real recordings: holds {n_ok}/{len(real['holds'])} passed, bursts "
              f"{sum(r['passed'] for r in real['bursts'])}/{len(real['bursts'])} passed.")


def run_evaluation(*, corpus: str = "quick", seed_base: int = DEFAULT_SEED_BASE,
                   workers: int = 2, real: bool = False, synthetic: bool = True,
                   data_dir: Path | None = None, detector: Any = None,
                   on_done: Any = None, world: str = "legacy") -> dict[str, Any]:
    """Build the corpus, run it, score it (and the real checks); return the JSON-ready report.

    Keys: ``meta`` (corpus, seed_base, workers, nights, wall_s, cpu_s, version, python,
    command), ``corpus`` (set name -> description and seeds), ``results`` (see
    :func:`crampsense.detection.scoring.summarise`), ``nights`` (one record per night),
    ``real`` (see :func:`crampsense.cli.evaluate_corpus.real_checks`, or a ``skipped`` reason).
    """
    t0 = time.perf_counter()
    report: dict[str, Any] = {}
    records: list[dict[str, Any]] = []
    if synthetic:
        from crampsense.cli.simulated import corpus as sim  # noqa: PLC0415 - simulators on demand
        from crampsense.detection.scoring import summarise  # noqa: PLC0415

        sets = sim.build_corpus(corpus, seed_base=seed_base,  # type: ignore[arg-type]
                                world=world)  # type: ignore[arg-type]
        records = sim.run_corpus(sets, workers=workers, detector=detector, on_done=on_done)
        report["corpus"] = {s.name: {"kind": s.kind, "description": s.description,
                                     "seeds": [c.spec.seed for c in s.cases]} for s in sets}
        report["results"] = summarise(sets, records)
        report["nights"] = records
    if real:
        found = find_data_dir(data_dir)
        report["real"] = (real_checks(found) if found is not None else
                          {"data_dir": None, "skipped": f"no real-data folder at "
                           f"{data_dir or '<repo>/../shared/data'}"})
    report["meta"] = {
        "corpus": corpus if synthetic else "none", "world": world,
        "seed_base": seed_base, "workers": workers,
        "nights": len(records), "wall_s": time.perf_counter() - t0,
        "cpu_s": float(sum(r["cpu_s"] for r in records)), "version": __version__,
        "python": platform.python_version(), "cpus": os.cpu_count(),
        "command": " ".join(["crampsense", *sys.argv[1:]]) if sys.argv else "",
    }
    return report


def _failed(report: dict[str, Any]) -> list[str]:
    bad = [r["description"] for r in report.get("results", {}).get("targets", [])
           if r["met"] is False]
    real = report.get("real")
    if real and real.get("data_dir") and not real["passed"]:
        bad.append("real-recording checks")
    return bad


@click.command()
@click.option("--quick", is_flag=True,
              help="The quick corpus (1-h nights, ~40 nights, about a minute on 2 cores).")
@click.option("--corpus", "corpus", type=click.Choice(["tiny", "quick", "medium", "full"]),
              default="full", show_default=True,
              help="Corpus size: full = 8-h nights where it matters (~170 nights).")
@click.option("--seed-base", type=int, default=DEFAULT_SEED_BASE, show_default=True,
              help="First seed (the detector was tuned on seeds < 1000).")
@click.option("--workers", type=int, default=2, show_default=True,
              help="Worker processes (1: run in this process).")
@click.option("--json", "json_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Write every result (tables, per-night records, real checks) to this file.")
@click.option("--real", is_flag=True,
              help="Also check real recordings from ../shared/data (read in place).")
@click.option("--real-only", is_flag=True, help="Only the real-recording checks.")
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False),
              help="Real-data folder (default: <repo>/../shared/data).")
@click.option("--world", type=click.Choice(["shifted", "tuning", "legacy"]), default="shifted",
              show_default=True,
              help="Which world the nights come from: shifted (wider priors, another mix; the "
                   "test world), tuning (the world the decision model was fitted on) or legacy "
                   "(the original catalogue: every event alone with quiet around it).")
@click.option("--check", is_flag=True,
              help="Exit with status 1 when a target or a real check is not met.")
@click.pass_context
def evaluate(ctx: click.Context, quick: bool, corpus: str, seed_base: int, workers: int,
             json_path: Path | None, real: bool, real_only: bool, data_dir: Path | None,
             world: str, check: bool) -> None:
    """Score the cramp detector on fresh synthetic nights and on real recordings.

    \b
    Per set: sensitivity, precision, F1, false alarms per night / 8 h / hour of sleep,
    onset error (median, IQR), duration error, strict (IoU >= 0.2) and lenient scores,
    a threshold sweep with the operating point chosen in advance, accelerometer-only
    scores, and the issue's targets. Seeds start at 10000 (tuning used seeds < 1000).
    \b
    Examples:
      crampsense evaluate --quick
      crampsense evaluate --real --json results.json     (full corpus, 15-25 min)
      crampsense evaluate --real-only
    """
    obj = ctx.find_root().obj
    out: Console = getattr(obj, "out", None) or Console(highlight=False)
    err: Console = getattr(obj, "err", None) or Console(stderr=True, highlight=False)
    if quick:
        corpus = "quick"
    if workers < 1:
        raise UsageError(f"--workers {workers} must be at least 1")
    done = [0]

    def progress(rec: dict[str, Any]) -> None:
        done[0] += 1
        if done[0] % 10 == 0:
            err.print(f"  {done[0]} nights done (last: {rec['set']} seed {rec['seed']}, "
                      f"{rec['cpu_s']:.1f} s CPU)")

    report = run_evaluation(corpus=corpus, seed_base=seed_base, workers=workers,
                            real=real or real_only, synthetic=not real_only,
                            data_dir=data_dir, on_done=progress, world=world)
    wide = Console(width=max(out.width, REPORT_WIDTH), no_color=out.no_color, highlight=False,
                   soft_wrap=False, file=out.file)
    render_report(wide, report)
    if json_path is not None:
        json_path.write_text(json.dumps(report, indent=1, default=str) + "\n",
                             encoding="utf-8")
        out.print(f"Wrote {json_path}")
    failed = _failed(report)
    if failed:
        out.print(f"Not met: {'; '.join(failed)}.")
        if check:
            raise DetectionError(f"evaluation targets not met: {'; '.join(failed)}; see the "
                                 "tables above")
