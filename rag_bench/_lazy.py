"""Lazy package exports: a name is imported from its module on first use, so `rag-bench --help` pays for no torch.

    __getattr__, __dir__ = lazy_exports(__name__, {"LM": "lm"}, extra=("__version__",))
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Any


def lazy_exports(package: str, exports: dict[str, str], *,
                 extra: Sequence[str] = ()) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A package's module-level ``__getattr__`` and ``__dir__`` for ``exports`` (name -> module under it)."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)  # cached: later lookups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted([*exports, *extra])

    return __getattr__, __dir__
