"""``crampsense.__all__`` is the public face: what docs/api.md promises, every name real."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import crampsense

API_DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def _documented() -> set[str]:
    return set(re.findall(r"^\| `([A-Za-z_]+)` \| `crampsense[.a-z_]*` \|", API_DOC.read_text(),
                          re.M))


def test_the_exported_names_are_the_documented_names() -> None:
    documented = _documented()
    assert len(documented) > 30
    assert set(crampsense.__all__) - {"__version__"} == documented


def test_every_exported_name_resolves_to_the_object_of_its_module() -> None:
    for line in API_DOC.read_text().splitlines():
        m = re.match(r"^\| `([A-Za-z_]+)` \| `(crampsense[.a-z_]*)` \|", line)
        if m is None:
            continue
        name, module = m.groups()
        owner = __import__(module, fromlist=[name])
        assert getattr(crampsense, name) is getattr(owner, name), name


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = crampsense.no_such_name  # type: ignore[attr-defined]


def test_import_crampsense_loads_no_submodule() -> None:
    code = ("import sys, crampsense; "
            "print(sorted(m for m in sys.modules if m.startswith('crampsense.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
