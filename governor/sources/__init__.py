"""Source connectors, registered by type. Adding a source is adding one module here."""

from __future__ import annotations

import importlib
import pkgutil

from governor.sources.base import (
    CONNECTORS,
    Action,
    Check,
    Connector,
    SourceContext,
    register,
)

for _mod in pkgutil.iter_modules(__path__):
    if not _mod.name.startswith("_") and _mod.name != "base":
        importlib.import_module(f"{__name__}.{_mod.name}")

__all__ = ["CONNECTORS", "Action", "Check", "Connector", "SourceContext", "register"]
