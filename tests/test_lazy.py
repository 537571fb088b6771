"""Lazy package exports: imported on first use, cached, unknown names refused, listed by dir()."""

from __future__ import annotations

import sys

import pytest

from rag_bench._lazy import lazy_exports


def test_a_name_is_imported_on_first_use_and_cached():
    getattr_, dir_ = lazy_exports("rag_bench", {"read_jsonl": "records"}, extra=("__version__",))
    sys.modules["rag_bench"].__dict__.pop("read_jsonl", None)
    from rag_bench.records import read_jsonl

    try:
        assert getattr_("read_jsonl") is read_jsonl
        assert sys.modules["rag_bench"].__dict__["read_jsonl"] is read_jsonl  # the next lookup skips __getattr__
    finally:
        sys.modules["rag_bench"].__dict__.pop("read_jsonl", None)  # not a public name of rag_bench
    assert dir_() == ["__version__", "read_jsonl"]
    with pytest.raises(AttributeError, match="module 'rag_bench' has no attribute 'nope'"):
        getattr_("nope")
