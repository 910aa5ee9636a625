"""crampsense: detect nocturnal leg cramps from BLE wearables and join them with the day before.

The library is quiet: it logs to ``logging.getLogger("crampsense...")`` with a ``NullHandler``
and never prints; only :mod:`crampsense.cli` configures logging and writes to the terminal.
Not a medical device: it reports associations, never causes.
"""

from __future__ import annotations

import logging

from crampsense.errors import CrampsenseError

__version__ = "0.1.0"
__all__ = ["CrampsenseError", "__version__"]

logging.getLogger(__name__).addHandler(logging.NullHandler())
