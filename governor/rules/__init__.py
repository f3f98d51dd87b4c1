"""The rule catalogue. Adding a rule is adding one module here, named by its id
(``leaver_holds_access.py`` holds ``leaver-holds-access``)."""

from __future__ import annotations

import importlib
import pkgutil

from governor.rules.base import RULES, Outcome, Result, Rule, Severity, register

for _mod in pkgutil.iter_modules(__path__):
    if _mod.name != "base" and not _mod.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_mod.name}")

__all__ = ["RULES", "Outcome", "Result", "Rule", "Severity", "register"]
