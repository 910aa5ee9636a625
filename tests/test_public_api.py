"""Every module's ``__all__`` names what it really exports, and every docstring example runs."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from types import ModuleType

import pytest

import crampsense
import firmware_sims


def _modules() -> list[ModuleType]:
    found = []
    for package in (crampsense, firmware_sims):
        found.append(package)
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if info.name.endswith("__main__"):
                continue  # running it would start the CLI
            found.append(importlib.import_module(info.name))
    return found


MODULES = _modules()
FINDER = doctest.DocTestFinder(exclude_empty=True)
WITH_ALL = [m for m in MODULES if hasattr(m, "__all__")]
WITH_EXAMPLES = [m for m in MODULES if any(t.examples for t in FINDER.find(m, m.__name__))]


def test_the_package_is_walked() -> None:
    assert len(MODULES) > 40
    assert len(WITH_ALL) > 30
    assert WITH_EXAMPLES  # e.g. crampsense.models.grade_severity


@pytest.mark.parametrize("module", WITH_ALL, ids=lambda m: m.__name__)
def test_all_lists_only_real_names_without_duplicates(module: ModuleType) -> None:
    names = module.__all__
    assert len(names) == len(set(names)), f"duplicates in {module.__name__}.__all__"
    missing = [n for n in names if not hasattr(module, n)]
    assert not missing, f"{module.__name__}.__all__ names missing objects: {missing}"


@pytest.mark.parametrize("module", WITH_EXAMPLES, ids=lambda m: m.__name__)
def test_docstring_examples_run(module: ModuleType) -> None:
    tests = [t for t in FINDER.find(module, module.__name__) if t.examples]
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {module.__name__}"
