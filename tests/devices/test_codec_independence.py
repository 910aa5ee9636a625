"""The simulators encode with their own codecs, and produce the specifications' test vectors.

A simulator that borrowed the host's codec could not catch a codec bug: both ends would agree
with each other, not with the device. So ``firmware_sims`` may take from ``crampsense.devices``
only what the specifications state (see :func:`_allowed`):

- UPPER_CASE names: UUIDs, opcodes, flag bits, rates, scales (``FS_HZ``, ``EMG_UV_PER_LSB``);
- CamelCase names: enums of spec numbers and plain records (``Opcode``, ``BandConfig``),
  but not the host's ``...Protocol`` classes, which hold the decoders;
- the UUID helpers in :data:`SPEC_HELPERS`.

Everything else is codec and refused: any other function (``encode_*``, ``decode_*``,
``parse_*``, ``pack_*``, bit readers, ``*_to_counts``, ...) and every private name, whether
imported by name or reached as an attribute of an imported ``crampsense.devices`` module.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Final

import numpy as np
import pytest

from crampsense.devices import ganglion as gd
from crampsense.devices import heart_rate as hd
from crampsense.devices import polar as pd
from crampsense.devices import reference_band as rb
from firmware_sims import ganglion as gs
from firmware_sims import heart_rate as hs
from firmware_sims import polar as ps
from firmware_sims import reference_band as bs

ROOT = Path(__file__).resolve().parents[2]
SIMS = ROOT / "firmware_sims"
#: Functions of crampsense.devices that only spell spec identifiers (no bytes in or out).
SPEC_HELPERS: Final = frozenset({"sig_uuid", "band_uuid"})
#: Top-level names of modules that live under tests/ (shipped code must not import them).
TEST_MODULES: Final = frozenset(
    p.stem for p in (ROOT / "tests").rglob("*.py") if p.stem != "__init__"
) | {"devices", "tests"}


def _allowed(name: str) -> bool:
    if name.startswith("_"):
        return False
    if name.isupper():
        return True
    if name[:1].isupper():
        return not name.endswith("Protocol")
    return name in SPEC_HELPERS


def _devices_imports(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, name) of everything a module takes from crampsense.devices."""
    taken: list[tuple[int, str]] = []
    module_aliases: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            "crampsense.devices"
        ):
            for alias in node.names:
                if node.module == "crampsense.devices":  # a module: check its attributes
                    module_aliases.add(alias.asname or alias.name)
                else:
                    taken.append((node.lineno, alias.name))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("crampsense.devices"):
                    module_aliases.add(alias.asname or alias.name)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in module_aliases
        ):
            taken.append((node.lineno, node.attr))
    return taken


def _sim_files() -> list[Path]:
    return sorted(SIMS.rglob("*.py"))


def test_the_rule_refuses_codec_names_and_allows_spec_names() -> None:
    for codec in ("encode_acc_frame", "decode_pmd_frame", "parse_settings", "pack_fields",
                  "fw2_delta_fields", "uv_to_counts", "_le_bytes", "_bits_needed",
                  "split_message", "PolarPmdProtocol", "raw_resolution_bits"):
        assert not _allowed(codec), codec
    for spec in ("SERVICE_UUID", "FS_HZ", "EMG_UV_PER_LSB", "Opcode", "StreamId", "BandConfig",
                 "sig_uuid"):
        assert _allowed(spec), spec
    tree = ast.parse("from crampsense.devices import polar as p\np.encode_acc_frame(0, [])\n")
    assert _devices_imports(tree) == [(2, "encode_acc_frame")]


@pytest.mark.parametrize("path", _sim_files(), ids=lambda p: str(p.relative_to(SIMS)))
def test_no_simulator_borrows_a_host_codec(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    borrowed = [f"line {line}: {name}" for line, name in _devices_imports(tree)
                if not _allowed(name)]
    assert not borrowed, (
        f"{path.relative_to(ROOT)} takes codec code from crampsense.devices: {borrowed}; "
        "write the simulator's own encoder from the spec (constants may be shared)"
    )


@pytest.mark.parametrize(
    "path",
    sorted((ROOT / "src").rglob("*.py")) + _sim_files(),
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_shipped_code_does_not_import_from_tests(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
              and not n.level]
    assert not [m for m in names if m.split(".")[0] in TEST_MODULES]


# ------------------------------------------- the specifications' vectors, from the simulators


def test_polar_sdk_vectors_come_from_the_simulator() -> None:
    raw = "02 00 94 35 77 00 00 00 00 01 f7 ff ff ff e7 03 f8 ff fe ff e5 03"
    assert ps.encode_acc_frame(2_000_000_000, [[-9, -8], [-1, -2], [999, 997]]).hex(" ") == raw
    # compressed: reference (-15, 20, 1008), one block of 6-bit deltas read LSB first;
    # the device's last byte carries garbage padding bits (08), the simulator zeros them
    delta = bytes.fromhex("02 65 00 00 00 00 00 00 00 81 f1 ff 14 00 f0 03 06 01 7b 0f 08")
    ours = ps.encode_delta_frame(2, 101, 1, [[-15, -20], [20, 17], [1008, 1008]],
                                 min_delta_bits=6)
    assert ours[:-1] == delta[:-1]
    assert ours[-1] == delta[-1] & 0b11  # 18 bits of deltas: 2 used in the last byte
    assert pd.decode_pmd_frame(ours).samples.T.tolist() == [[-15, 20, 1008], [-20, 17, 1008]]


def test_polar_deltas_are_lsb_first_in_the_simulator() -> None:
    # one block of three 4-bit deltas (+1, -2, +3): LSB first gives nibbles 1, e, 3 -> e1 03
    frame = ps.encode_delta_frame(2, 0, 1, [[0, 1], [0, -2], [0, 3]], min_delta_bits=4)
    assert frame[-4:].hex(" ") == "04 01 e1 03"


def test_ganglion_vector_106_comes_from_the_simulator() -> None:
    vector = "6a 00 97 c0 2a 30 01 38 01 59 60 17 64 03 83 00 78 30 02 b2"
    deltas = [[1214, 2700, 624, 5526, 2994, 3596, 3846, 690]]
    assert gs.encode_sample_packets([106], deltas, firmware=2)[0].hex(" ") == vector
    assert gd.decode_deltas(bytes.fromhex(vector)).ravel().tolist() == deltas[0]


def test_heart_rate_spec_examples_come_from_the_simulator() -> None:
    first = hs.encode_heart_rate_measurement(72, contact_detected=True, rr_ticks=[1079, 775])
    assert first.hex(" ") == "16 48 37 04 07 03"
    second = hs.encode_heart_rate_measurement(328, energy_expended_kj=300, rr_ticks=[1024])
    assert second.hex(" ") == "19 48 01 2c 01 00 04"
    m = hd.decode_heart_rate_measurement(second)
    assert (m.heart_rate_bpm, m.energy_expended_kj, m.rr_ticks) == (328, 300, (1024,))


def test_reference_band_examples_come_from_the_simulator() -> None:
    emg = np.array([[400, 404], [-201, -200]], dtype=np.int16)
    assert bs.encode_data_packet(rb.StreamId.EMG, 513, 4294966296, 0, emg).hex(" ") == (
        "11 01 02 18 fc ff ff 00 02 90 01 37 ff 94 01 38 ff"
    )
    acc, _ = bs.acc_mg_to_counts([[0.0], [-1000.0], [1000.0]])
    assert bs.encode_data_packet(rb.StreamId.ACC, 5, 10**6, rb.FLAG_CLOCK_NOT_SET, acc).hex(
        " ") == "12 05 00 40 42 0f 00 08 01 00 00 00 f0 00 10"
    assert bs.encode_status_packet(7, 10**7, rb.FLAG_LEAD_OFF_GM, 87, 32.5).hex(" ") == (
        "13 07 00 80 96 98 00 01 01 57 b2 0c"
    )
