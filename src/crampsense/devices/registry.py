"""Which device families crampsense knows, and which one an advertisement belongs to.

:data:`FAMILIES` maps a family key (stored with every paired device) to its
:class:`~crampsense.devices.base.DeviceProtocol` class. :func:`identify` picks the family of a
scanned device; :func:`protocol_for` builds the protocol of a paired one.

Families are tried most specific first: a crampsense reference band is recognised by its own
service before the generic Heart Rate Service, which many devices expose next to their own.
The reference band module is optional here: it is registered when it is importable.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Sequence
from typing import Any

from crampsense.devices.base import DeviceProtocol
from crampsense.devices.heart_rate import HeartRateProtocol
from crampsense.errors import ConfigError, DeviceError

__all__ = ["FAMILIES", "families", "identify", "protocol_for", "register"]

logger = logging.getLogger(__name__)

#: Family key -> protocol class, in the order :func:`identify` tries them.
FAMILIES: dict[str, type[DeviceProtocol]] = {}

#: Optional family modules (module path, class name), registered when importable.
_OPTIONAL: tuple[tuple[str, str], ...] = (
    ("crampsense.devices.reference_band", "ReferenceBandProtocol"),
)


def register(cls: type[DeviceProtocol], *, first: bool = False) -> None:
    """Add a family (``cls.family`` is the key); ``first`` makes :func:`identify` try it first."""
    key = cls.family
    if first:
        rest = {k: v for k, v in FAMILIES.items() if k != key}
        FAMILIES.clear()
        FAMILIES[key] = cls
        FAMILIES.update(rest)
    else:
        FAMILIES[key] = cls


def _load_optional() -> None:
    for module_name, class_name in _OPTIONAL:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                logger.debug("device family module %s not present; skipped", module_name)
            else:
                # The module exists but cannot import (a missing dependency or a bug): keep the
                # other families usable and say why. tests/test_heart_rate.py fails on this.
                logger.warning("device family module %s is broken and skipped: %s",
                               module_name, exc)
            continue
        cls = getattr(module, class_name, None)
        if isinstance(cls, type) and issubclass(cls, DeviceProtocol):
            register(cls, first=True)
        else:
            logger.warning("%s has no DeviceProtocol class %s; skipped", module_name, class_name)


register(HeartRateProtocol)
_load_optional()


def families() -> tuple[str, ...]:
    """Known family keys, in the order :func:`identify` tries them."""
    return tuple(FAMILIES)


def identify(local_name: str | None, service_uuids: Sequence[str]) -> DeviceProtocol | None:
    """The protocol (default options) of the first family whose ``matches`` accepts the advert.

    Parameters
    ----------
    local_name : str or None
        Advertised local name.
    service_uuids : sequence of str
        Advertised service UUIDs (any case, 16- or 128-bit form).

    Returns
    -------
    DeviceProtocol or None
        ``None`` when no known family matches (the device is not supported).
    """
    for cls in FAMILIES.values():
        protocol = cls()
        if protocol.matches(local_name, service_uuids):
            return protocol
    return None


def protocol_for(family: str, **options: Any) -> DeviceProtocol:
    """Build the protocol of ``family`` with ``options`` passed to its constructor.

    Raises
    ------
    DeviceError
        ``family`` is not known (the message lists the known ones).
    ConfigError
        ``options`` are not accepted by that family.
    """
    cls = FAMILIES.get(family)
    if cls is None:
        known = ", ".join(sorted(FAMILIES))
        msg = f"unknown device family {family!r}; known families are: {known}"
        raise DeviceError(msg)
    try:
        return cls(**options)
    except TypeError as exc:
        msg = f"device family {family!r} does not accept options {sorted(options)}: {exc}"
        raise ConfigError(msg, key=f"devices.{family}") from exc
