"""Score the detector on fresh synthetic nights: a thin wrapper of ``crampsense evaluate``.

The corpus lives in ``firmware_sims.night.corpus``, the scoring in
``crampsense.detection.scoring`` and the tables in ``crampsense.cli.evaluate``; see
``docs/evaluation.md``. Examples::

    python benchmarks/eval_detection.py --quick
    python benchmarks/eval_detection.py --real --json results.json
"""

from __future__ import annotations

import sys

from crampsense.cli.main import main

if __name__ == "__main__":
    main(["evaluate", *sys.argv[1:]])
