"""Every device family end to end: scan, pair, record through bleak into a session, replay.

Two views of the device zoo (``firmware_sims.bedroom.device_zoo``: a reference band, a Polar
Verity Sense and H10, an OpenBCI Ganglion, a Movesense and a heart-rate strap on one clock):

- the command line: ``scan --simulate --world zoo`` recognises every family, ``pair`` stores
  each with its placement and configuration, ``record --simulate --world zoo`` records all six
  into one session log that ``replay`` decodes without a single undecodable frame;
- known signals: each simulator measures its contract case's known signal
  (``firmware_sims/zoo.py``, cases in ``tests/devices/families.py``); the session is
  recorded through bleak and IngestSession, replayed, and every stream is compared with what
  its simulator was given: values within the wire format's resolution, units canonical,
  per-sample times within 0.1 s, no loss.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from clihelp import run_cli
from crampsense.pipeline.legs import choose_leg_sources
from crampsense.pipeline.replay import (
    analyze_session,
    decode_session,
)
from crampsense.storage.session_log import SessionReader
from devices.families import (
    CANONICAL_UNITS,
    case,
    match_irregular,
    match_timeline,
    run_firmware,
)
from firmware_sims.bedroom import (
    ZOO_BAND,
    ZOO_GANGLION,
    ZOO_HR_STRAP,
    ZOO_MOVESENSE,
    ZOO_PLACEMENT_OF,
    ZOO_POLAR_H10,
    ZOO_POLAR_SENSE,
)
from zoohelp import record_known_zoo

#: Simulated seconds of the known-signal recording.
KNOWN_S = 60.0
#: Simulated seconds of the command-line recording.
CLI_S = 120.0
#: Largest error of a replayed per-sample host time (s).
TIME_TOLERANCE_S = 0.1
#: Contract case of each zoo device in known-signal mode (device_zoo's choice).
CASE_OF = {
    ZOO_BAND: "crampsense-band",
    ZOO_POLAR_SENSE: "polar-pmd-verity-sense",
    ZOO_POLAR_H10: "polar-pmd-h10",
    ZOO_GANGLION: "openbci-ganglion-fw3",
    ZOO_MOVESENSE: "movesense",
    ZOO_HR_STRAP: "heart-rate",
}
FAMILIES = {"crampsense-band", "polar-pmd", "openbci-ganglion", "movesense", "heart-rate"}




@pytest.fixture
def home(crampsense_home: Path) -> Path:
    (crampsense_home / "config.toml").write_text("[band]\nemg_fs_hz = 500\n")
    return crampsense_home


def test_cli_scans_pairs_records_and_replays_every_family(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(["scan", "--simulate", "--world", "zoo"], capsys)
    assert code == 0, err
    for family in FAMILIES:
        assert family in out
    for address, placement in ZOO_PLACEMENT_OF.items():
        code, out, err = run_cli(
            ["pair", address, "--placement", placement, "--simulate", "--world", "zoo"], capsys
        )
        assert code == 0, err
        assert "Streams:" in out
    info = json.loads((home / "device-info.json").read_text())["devices"]
    assert info[ZOO_GANGLION.lower()]["software"].startswith("3")
    assert (home / "device-info.json").stat().st_mode & 0o077 == 0

    code, out, err = run_cli(
        ["record", "--simulate", "--world", "zoo", "--hours", str(CLI_S / 3600), "--seed", "2"],
        capsys,
    )
    assert code == 0, err
    session = next((home / "sessions").glob("*.session"))
    with SessionReader(session) as reader:
        recorded = {d.address: d.family for d in reader.devices}
        assert set(recorded.values()) == FAMILIES
        for address in ZOO_PLACEMENT_OF:
            assert reader.frame_count(address) > 0, address
        assert reader.device_metadata(ZOO_GANGLION)["firmware"] == "3"
        assert reader.device_metadata(ZOO_POLAR_SENSE)["model"] == "verity-sense"
    code, out, err = run_cli(["replay", "--json", str(session)], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["undecodable_frames"] == 0
    assert doc["lost_packets"] == 0
    assert set(doc["coverage"]) == {"left", "right"}


@pytest.fixture(scope="module")
def known_session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """KNOWN_S of the zoo measuring known signals, recorded through bleak."""
    return record_known_zoo(tmp_path_factory.mktemp("zoo") / "known.session", KNOWN_S)


@pytest.mark.parametrize("address", list(CASE_OF))
def test_every_family_replays_to_what_its_simulator_was_given(
    address: str, known_session: Path
) -> None:
    c = case(CASE_OF[address])
    with SessionReader(known_session) as reader:
        timelines, n, bad, errors = decode_session(reader)
        frames = reader.frame_count(address)
    assert (bad, errors) == (0, [])
    assert frames > 0
    # the simulator measured the case's known signal: rebuild it the same way
    sim = c.simulator(address, KNOWN_S)
    for s in c.streams:
        if not s.timeline:
            continue
        tl = timelines[(address, s.stream)]
        assert tl.unit == s.unit == CANONICAL_UNITS[s.stream]
        assert tuple(tl.channels) == s.channels
        assert tl.fs_hz == s.fs_hz
        assert (tl.lost_packets, tl.gaps) == (0, [])
        m = match_timeline(tl, c.truth(sim, s.stream), realign_runs=s.host_timed)
        assert m.max_error <= s.truth_tol, (s.stream, m)
        assert m.max_time_error_s <= TIME_TOLERANCE_S, (s.stream, m)
        assert m.n_valid >= (KNOWN_S - 2.0) * float(s.fs_hz or 0), (s.stream, m)
    assert n > 0


def test_heart_rate_replays_the_beats_the_strap_made(known_session: Path) -> None:
    c = case("heart-rate")
    strap = c.simulator(ZOO_HR_STRAP, KNOWN_S)
    with SessionReader(known_session) as reader:
        protocol = c.protocol()
        frames = [f for f in reader.frames() if f.device_address == ZOO_HR_STRAP]
    blocks = [b for f in frames for b in protocol.decode(f) if b.stream == "rr"]
    assert blocks
    assert all(b.unit == "s" for b in blocks)
    rr = np.concatenate([b.values for b in blocks], axis=1).astype(np.float64)
    # the strap's beats follow a seeded trace: a fresh strap run over the same span makes them
    run_firmware(strap, c.protocol(), KNOWN_S)
    assert match_irregular(rr, c.truth(strap, "rr"), c.stream("rr").truth_tol) >= 0


def test_legs_get_emg_from_two_families_and_acceleration_from_others(
    known_session: Path,
) -> None:
    with SessionReader(known_session) as reader:
        devices = tuple(reader.devices)
        timelines, _, _, _ = decode_session(reader)
        meta = {d.address: dict(reader.device_metadata(d.address)) for d in devices}
    chosen = {(s.leg, s.stream): s for s in choose_leg_sources(devices, timelines, meta)}
    assert chosen[("left", "emg")].address == ZOO_BAND  # 500 Hz beats the Ganglion's 200
    assert chosen[("right", "emg")].address == ZOO_GANGLION  # its ch3-4 on the right calf
    assert chosen[("right", "emg")].channels == (2, 3)
    assert chosen[("left", "acc")].address == ZOO_BAND
    assert chosen[("right", "acc")].address == ZOO_POLAR_SENSE
    analysis = analyze_session(known_session)
    assert set(analysis.night.legs) == {"left", "right"}
