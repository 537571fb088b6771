"""The Chat tab's record-prefix helper: pick a country and a field of a corpus's facts.jsonl, get the record line
prefix the Factbook models were trained on ("Algeria | Government | Capital:"), which they answer best.

    from rag_bench.app.prefix import facts_table, prefix_fields, record_prefix
    prefix_fields(cfg, "factbook", "Algeria")                    # the probed fields first
    record_prefix(cfg, "factbook", "Algeria", "Capital")          # "Algeria | Government | Capital:"
"""

from __future__ import annotations

import functools
import json

from rag_bench.app.state import AppConfig


@functools.lru_cache(maxsize=2)
def _facts(path: str, stamp: int) -> dict[str, dict[str, str]]:
    table: dict[str, dict[str, str]] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                fact = json.loads(line)
                table.setdefault(fact["country"], {}).setdefault(fact["field"], fact["record_prefix"])
            except (ValueError, KeyError, TypeError):
                continue  # the helper only suggests prefixes; a bad line costs one suggestion
    return table


def facts_table(cfg: AppConfig, corpus: str) -> dict[str, dict[str, str]]:
    path = cfg.data_path / "corpora" / corpus / "facts.jsonl"
    if not path.is_file():
        return {}
    return _facts(str(path), path.stat().st_mtime_ns)


def prefix_fields(cfg: AppConfig, corpus: str, country: str) -> list[str]:
    """The fields of a country, the probed ones (capital, population, ...) first."""
    from rag_bench.probes.factbook_answers import FIELD_ANSWERS

    fields = facts_table(cfg, corpus).get(country or "", {})
    return [f for f in FIELD_ANSWERS if f in fields] + sorted(f for f in fields if f not in FIELD_ANSWERS)


def record_prefix(cfg: AppConfig, corpus: str, country: str, field: str) -> str:
    return facts_table(cfg, corpus).get(country or "", {}).get(field or "", "")
