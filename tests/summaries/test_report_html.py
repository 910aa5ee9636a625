"""``crampsense summary --night/--json/--html`` over a simulated history in a real home, and the
page in a real headless browser (Debian's ``chromium``; skipped when it is not installed)."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import zlib
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from tests.clihelp import run_cli


@pytest.fixture
def home(demo_home: Path) -> Path:
    return demo_home


def _last_night() -> date:
    return (datetime.now().astimezone() - timedelta(days=1)).date()


def test_summary_json_carries_what_the_text_shows(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    night = (_last_night() - timedelta(days=1)).isoformat()
    code, text, err = run_cli(["summary", "--night", night], capsys)
    assert code == 0, err
    code, out, err = run_cli(["summary", "--night", night, "--json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    assert data["night"] == night
    assert data["wake_date"] == (date.fromisoformat(night) + timedelta(days=1)).isoformat()
    assert data["headline"].split(".")[0] in text
    for line in data["cramp_log"]:
        assert line["text"] in text
    for entry in data["day_before"]:
        assert entry["text"] in text
    for c in data["contributors"]:
        assert c["compared"] in text
    for notice in data["notices"]:
        assert notice[:40] in text.replace("\n  ", " ")
    assert data["disclaimer"][:60] in text


def test_summary_unknown_night_is_one_line(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["summary", "--night", "1999-01-01"], capsys)
    assert code == 1  # bad input or state; 2 is for command-line usage
    assert "no night 1999-01-01" in err
    assert len(err.strip().splitlines()) == 1


def _html(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    night = _last_night()
    journal = home / "journal.txt"
    hostile = f'{night.isoformat()} 19:00+00:00  note "<script>alert(1)</script> & <b>x</b>"\n'
    if hostile not in journal.read_text():
        with journal.open("a") as fh:
            fh.write(hostile)
    page = tmp_path / "report.html"
    code, out, err = run_cli(["summary", "--night", night.isoformat(), "--html", str(page)],
                             capsys)
    assert code == 0, err
    assert "Report written" in out
    return page


def test_html_is_self_contained_and_escapes_user_text(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = _html(home, tmp_path, capsys)
    text = page.read_text(encoding="utf-8")
    assert page.stat().st_mode & 0o077 == 0
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;x&lt;/b&gt;" in text
    assert "<script" not in text.lower()
    assert "<b>x" not in text
    # No reference that could load anything: the only URL is the SVG namespace (not fetched).
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", text))
    assert urls <= {"http://www.w3.org/2000/svg"}
    for needle in ("<link", "@import", "url(http", " src=", "<iframe", "<object"):
        assert needle not in text
    assert "Content-Security-Policy" in text
    for section in ("The night", "Cramp log", "The day before", "Cramp nights, last 30",
                    "What went with more or fewer cramps", "not medical advice"):
        assert section in text
    assert "not covered" in text  # the legend always; gaps when the night has them
    assert text.count("<svg") >= 3
    # The planted associations show with their intervals; the null factor shows none.
    water = re.search(r"<li>after days under 1.5 L of water:[^<]*</li>", text)
    caffeine = re.search(r"<li>after days with caffeine:[^<]*</li>", text)
    assert water is not None
    assert "more cramps went with these days" in water.group(0)
    assert "95% CI" in water.group(0)
    assert caffeine is not None
    assert "no clear difference" in caffeine.group(0)


def _png_pixels_vary(png: bytes) -> bool:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind = png[pos + 4 : pos + 8]
        if kind == b"IDAT":
            idat += png[pos + 8 : pos + 8 + length]
        pos += 12 + length
    raw = zlib.decompress(idat)
    return len(set(raw)) > 50


def test_html_in_headless_chromium(home: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    if shutil.which("chromium") is None:
        if os.environ.get("CI") == "true":  # .ci/run installs it: in CI this test must run
            pytest.fail("chromium is missing in CI; .ci/run should have installed it")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    page = _html(home, tmp_path, capsys)
    shot, netlog = tmp_path / "shot.png", tmp_path / "net.json"
    proc = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--disable-default-apps", "--hide-scrollbars",
         # Nothing may leave the machine, even if the page tried: every host resolves nowhere.
         "--host-resolver-rules=MAP * ~NOTFOUND",
         "--enable-logging=stderr", "--v=0", f"--log-net-log={netlog}",
         "--window-size=1040,2600", f"--screenshot={shot}", page.as_uri()],
        capture_output=True, text=True, timeout=90, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []  # no script, so any console line is an error (e.g. a CSP violation)
    log = json.loads(netlog.read_text())
    names = {v: k for k, v in log["constants"]["logEventTypes"].items()}
    starts = [e.get("params", {}) for e in log["events"]
              if names.get(e["type"]) == "URL_REQUEST_START_JOB"]
    from_page = [
        p["url"] for p in starts
        if "url" in p and p.get("initiator") != "not an origin"  # "not an origin": the browser
        and not str(p["url"]).startswith("file:")
    ]
    assert from_page == []
    assert shot.stat().st_size > 20_000
    assert _png_pixels_vary(shot.read_bytes())


def test_recorded_session_to_report_and_back_from_storage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The seam with real parts on both sides: a simulated night recorded through bleak, its
    replay stored, the report built from the replay and again from the stored tables alone."""
    from firmware_sims.bedroom import BAND_LEFT, BAND_RIGHT  # noqa: PLC0415
    from firmware_sims.night import NightSpec, generate_night  # noqa: PLC0415

    emg_fs_hz, night_s = 500, 300.0

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("CRAMPSENSE_HOME", str(home))
    monkeypatch.setenv("NO_COLOR", "1")
    (home / "config.toml").write_text(f"[band]\nemg_fs_hz = {emg_fs_hz}\n")
    seed = next(s for s in range(1, 200) if generate_night(
        NightSpec(seed=s, duration_s=night_s, emg_fs_hz=emg_fs_hz)).cramps().height >= 1)
    for address, placement in ((BAND_LEFT, "left-calf"), (BAND_RIGHT, "right-calf")):
        assert run_cli(["pair", address, "--placement", placement, "--simulate"], capsys)[0] == 0
    code, _, err = run_cli(["record", "--simulate", "--hours", str(night_s / 3600), "--seed",
                            str(seed)], capsys)
    assert code == 0, err
    page = tmp_path / "night.html"
    code, out, err = run_cli(["summary", "--json", "--html", str(page)], capsys)
    assert code == 0, err
    replayed = json.loads(out)
    assert replayed["cramp_log"], "the seed has a cramp"
    assert date.fromisoformat(replayed["wake_date"]) >= date.fromisoformat(replayed["night"])
    text = page.read_text()
    for line in replayed["cramp_log"]:
        assert line["text"] in text
    folder = next((home / "nights").glob("participant=me/night=*/session=*"))
    assert {p.stem for p in folder.iterdir()} >= {"events", "night", "gaps", "sleep", "wake",
                                                  "activity"}
    assert "<polyline" in text  # both legs' activity trace from the replayed EMG
    assert "activity trace not stored" not in text
    # From storage alone: the session file can go, the night stays readable.
    for session in (home / "sessions").glob("*.session"):
        session.unlink()
    code, out, err = run_cli(["summary", "--night", replayed["night"], "--json"], capsys)
    assert code == 0, err
    stored = json.loads(out)
    assert stored["cramp_log"] == replayed["cramp_log"]
    assert stored["headline"] == replayed["headline"]
