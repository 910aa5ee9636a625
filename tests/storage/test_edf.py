"""EDF/EDF+/BDF reader and writer: round trips, pyedflib agreement, hostile headers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyedflib
import pytest

from crampsense.errors import CorruptFileError, ForeignFileError, StorageError
from crampsense.storage import edf
from crampsense.storage.edf import EdfSignal, read_edf_header, read_edf_signals, write_edf

START = datetime(2026, 11, 20, 22, 30, 5, tzinfo=UTC)


def _signals(rng: np.random.Generator, seconds: float) -> list[EdfSignal]:
    """Several rates, including odd samples per record and a signal that does not fill
    its last record."""
    return [
        EdfSignal("EMG L gastroc", rng.standard_normal(int(1000 * seconds)) * 40.0, 1000.0, "uV"),
        EdfSignal("ACC L X", rng.standard_normal(int(50 * seconds)) * 300.0 + 1000.0, 50.0, "mg"),
        EdfSignal("odd", rng.standard_normal(int(334 * seconds) - 7) * 0.5, 334.0, "mV"),
        EdfSignal("const", np.full(int(2 * seconds), 3.25), 2.0, "degC"),
    ]


def _tolerance(sig: EdfSignal, bdf: bool) -> float:
    lo, hi = float(np.min(sig.data)), float(np.max(sig.data))
    span = max(hi - lo, 2.0)
    step = span / (2**24 - 1 if bdf else 2**16 - 1)
    return step * 0.51 + max(abs(lo), abs(hi)) * 2e-7  # half a step + float32 rounding


@pytest.mark.parametrize("bdf", [False, True])
@pytest.mark.parametrize("record_s", [1.0, 0.5])
@pytest.mark.parametrize("plus", [True, False])
def test_round_trip(tmp_path: Path, bdf: bool, record_s: float, plus: bool) -> None:
    rng = np.random.default_rng(7)
    sigs = _signals(rng, 12.0)
    path = tmp_path / ("x.bdf" if bdf else "x.edf")
    write_edf(path, sigs, start=START, record_duration_s=record_s, bdf=bdf, plus=plus)
    assert path.stat().st_mode & 0o077 == 0
    header = read_edf_header(path)
    assert header.file_format == ("BDF" if bdf else "EDF") + ("+C" if plus else "")
    assert header.start == START
    assert header.record_duration_s == record_s
    assert [s.label for s in header.data_signals] == [s.label for s in sigs]
    assert len(header.signals) == len(sigs) + plus  # the annotation signal
    assert [s.fs_hz for s in header.data_signals] == [1000.0, 50.0, 334.0, 2.0]
    out = read_edf_signals(header, [s.index for s in header.data_signals])
    for i, (sig, x) in enumerate(zip(sigs, out, strict=True)):
        assert x.dtype == np.float32
        n = np.shape(sig.data)[0]
        assert x.size == header.n_samples(i) >= n
        np.testing.assert_allclose(x[:n], sig.data, rtol=0, atol=_tolerance(sig, bdf))
        assert np.all(np.abs(x[n:]) <= _tolerance(sig, bdf) * 2 + 1e-6)  # padded with ~0


def test_small_chunks_give_the_same_samples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    rng = np.random.default_rng(3)
    path = tmp_path / "x.bdf"
    write_edf(path, _signals(rng, 20.0), start=START, bdf=True)
    header = read_edf_header(path)
    idx = [s.index for s in header.data_signals]
    whole = read_edf_signals(header, idx)
    monkeypatch.setattr(edf, "CHUNK_BYTES", header.record_bytes * 3 + 1)  # 3 records a chunk
    for a, b in zip(whole, read_edf_signals(header, idx), strict=True):
        np.testing.assert_array_equal(a, b)


def test_scale_is_folded_into_the_decoding(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    path = tmp_path / "x.edf"
    write_edf(path, _signals(rng, 4.0), start=START)
    header = read_edf_header(path)
    (plain,) = read_edf_signals(header, [1])
    (scaled,) = read_edf_signals(header, [1], scales=[1000.0])
    np.testing.assert_allclose(scaled, plain * 1000.0, rtol=1e-6)


@pytest.mark.parametrize("bdf", [False, True])
def test_pyedflib_reads_what_we_write(tmp_path: Path, bdf: bool) -> None:
    rng = np.random.default_rng(5)
    sigs = _signals(rng, 10.0)
    path = tmp_path / ("x.bdf" if bdf else "x.edf")
    write_edf(path, sigs, start=START, bdf=bdf)
    ours = read_edf_signals(read_edf_header(path), range(len(sigs)))
    with pyedflib.EdfReader(str(path)) as f:
        assert f.signals_in_file == len(sigs)
        assert f.getStartdatetime() == START.replace(tzinfo=None)
        for i, x in enumerate(ours):
            assert f.getLabel(i) == sigs[i].label
            assert f.getSampleFrequency(i) == sigs[i].fs_hz
            ref = f.readSignal(i)
            np.testing.assert_allclose(x, ref, rtol=1e-6, atol=1e-6 * np.abs(ref).max())


@pytest.mark.parametrize("file_type", [pyedflib.FILETYPE_EDFPLUS, pyedflib.FILETYPE_BDFPLUS,
                                       pyedflib.FILETYPE_EDF])
def test_we_read_what_pyedflib_writes(tmp_path: Path, file_type: int) -> None:
    rng = np.random.default_rng(6)
    rates = [1000, 50, 333, 7]
    path = tmp_path / ("x.bdf" if file_type == pyedflib.FILETYPE_BDFPLUS else "x.edf")
    data = [rng.standard_normal(r * 9) * 100.0 for r in rates]
    with pyedflib.EdfWriter(str(path), len(rates), file_type=file_type) as w:
        w.setStartdatetime(START.replace(tzinfo=None))
        bits = 2**23 - 1 if file_type == pyedflib.FILETYPE_BDFPLUS else 32767
        w.setSignalHeaders([
            {"label": f"s{r}", "dimension": "uV", "sample_frequency": r,
             "physical_max": 500.0, "physical_min": -500.0, "digital_max": bits,
             "digital_min": -bits - 1, "transducer": "", "prefilter": ""} for r in rates])
        w.writeSamples(data)
        if file_type != pyedflib.FILETYPE_EDF:
            w.writeAnnotation(2.0, -1, "lights off")
    header = read_edf_header(path)
    assert [s.label for s in header.data_signals] == [f"s{r}" for r in rates]
    assert [s.fs_hz for s in header.data_signals] == rates
    ours = read_edf_signals(header, [s.index for s in header.data_signals])
    with pyedflib.EdfReader(str(path)) as f:
        for i, x in enumerate(ours):
            ref = f.readSignal(i)
            assert x.size == ref.size
            np.testing.assert_allclose(x, ref, rtol=1e-6, atol=1e-4)


def test_annotation_signals_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "x.edf"
    write_edf(path, _signals(np.random.default_rng(1), 3.0), start=START)
    header = read_edf_header(path)
    annot = [s for s in header.signals if s.is_annotation]
    assert [s.label for s in annot] == ["EDF Annotations"]
    with pytest.raises(StorageError, match="no data signal"):
        read_edf_signals(header, [annot[0].index])


# --- hostile and damaged files ------------------------------------------------------------------


def _valid(tmp_path: Path) -> bytes:
    path = tmp_path / "ok.edf"
    write_edf(path, _signals(np.random.default_rng(2), 6.0), start=START)
    return path.read_bytes()


def _field(blob: bytes, offset: int, width: int, value: bytes) -> bytes:
    return blob[:offset] + value.ljust(width, b" ")[:width] + blob[offset + width:]


def _sig_field(blob: bytes, name: str, signal: int, value: bytes) -> bytes:
    ns = int(blob[252:256])
    pos = 256
    for field, width in edf._SIGNAL_FIELDS:
        if field == name:
            return _field(blob, pos + signal * width, width, value)
        pos += width * ns
    raise KeyError(name)


HOSTILE: dict[str, Callable[[bytes], bytes]] = {
    "empty": lambda b: b"",
    "short header": lambda b: b[:200],
    "cut signal header": lambda b: b[:600],
    "truncated data": lambda b: b[: len(b) - 100],
    "records beyond the file": lambda b: _field(b, 236, 8, b"99999999"),
    "negative records": lambda b: _field(b, 236, 8, b"-5"),
    "garbage records": lambda b: _field(b, 236, 8, b"12x"),
    "zero signals": lambda b: _field(b, 252, 4, b"0"),
    "absurd signal count": lambda b: _field(b, 252, 4, b"9999"),
    "header size mismatch": lambda b: _field(b, 184, 8, b"99999999"),
    "zero record duration": lambda b: _field(b, 244, 8, b"0"),
    "nan record duration": lambda b: _field(b, 244, 8, b"nan"),
    "negative samples per record": lambda b: _sig_field(b, "samples_per_record", 0, b"-1000"),
    "absurd rate": lambda b: _sig_field(b, "samples_per_record", 0, b"9999999"),
    "garbage physical max": lambda b: _sig_field(b, "physical_max", 1, b"1e400"),
    "text physical min": lambda b: _sig_field(b, "physical_min", 1, b"lots"),
    "digital range inverted": lambda b: _sig_field(b, "digital_max", 0, b"-32768"),
    "digital beyond 16 bits": lambda b: _sig_field(b, "digital_max", 0, b"99999"),
    "non-ascii label": lambda b: _sig_field(b, "label", 0, "EMG Łeft".encode()),
    "non-ascii patient": lambda b: _field(b, 8, 80, b"\x00\x01binary"),
    "bad date": lambda b: _field(b, 168, 8, b"31.02.26"),
    "discontinuous": lambda b: _field(b, 192, 44, b"EDF+D"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_headers_are_refused(tmp_path: Path, case: str) -> None:
    path = tmp_path / "bad.edf"
    path.write_bytes(HOSTILE[case](_valid(tmp_path)))
    with pytest.raises(CorruptFileError) as info:
        read_edf_header(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message


def test_not_edf_is_a_foreign_file(tmp_path: Path) -> None:
    path = tmp_path / "x.edf"
    path.write_bytes(b"PK\x03\x04" + bytes(300))
    with pytest.raises(ForeignFileError, match="not an EDF or BDF"):
        read_edf_header(path)


def test_unknown_record_count_is_counted_from_the_size(tmp_path: Path) -> None:
    blob = _valid(tmp_path)
    path = tmp_path / "x.edf"
    path.write_bytes(_field(blob, 236, 8, b"-1"))
    assert read_edf_header(path).n_records == 6


def test_latin1_micro_sign_in_the_unit_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "x.edf"
    path.write_bytes(_sig_field(_valid(tmp_path), "dimension", 0, b"\xb5V"))
    assert read_edf_header(path).signals[0].dimension == "uV"
