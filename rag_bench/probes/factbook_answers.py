"""Factbook answers: one cleaner per field turns a record value into the answers a probe accepts (the first is the
main one).

    from rag_bench.probes.factbook_answers import factbook_answers
    factbook_answers("Capital", "Washington, D.C.")     # -> ("text", ["Washington, D.C.", "Washington"])

    rag-bench probes --kind factbook                    # DEFAULT_FIELDS, cleaned here (rag_bench.probes.build)

A value that is not short and unambiguous gives no answers, and its fact no probe.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable


def _strip_parens(text: str) -> str:
    """Drop trailing parentheticals: "Baku (Baki, Baky)" -> "Baku". Inner ones stay, so the answer is still a
    span of the value (the model writes the value, and a span is what contains-match can find in it)."""
    while True:
        stripped = re.sub(r"\s*(?:\([^()]*\)|\[[^\[\]]*\])\s*$", "", text)
        if stripped == text:
            return " ".join(text.split()).strip(" ,;:")
        text = stripped


def _first_number(value: str, unit: str = "") -> list[str]:
    match = re.match(r"(-?\d{1,3}(?:,\d{3})+|-?\d+)(\.\d+)?" + (rf"\s*{unit}\b" if unit else r"(?![\w,])"), value)
    if not match:
        return []
    number = match[1] + (match[2] or "")
    return [number, f"{number} {unit}"] if unit else [number]


def _capital(value: str) -> list[str]:
    names = []
    for part in re.split(r";\s*|(?<=\)),\s*", value):
        name = re.sub(r"\s+in [A-Z]\w+$", "", _strip_parens(part))  # "Chisinau in Romanian"
        if name and name[0].isupper() and len(name.split()) <= 4 and not part.lower().startswith("note"):
            names += [name, name.split(",")[0]] if "," in name else [name]  # "Washington, D.C." also "Washington"
    return names


def _currency(value: str) -> list[str]:
    match = re.match(r"(.+?) per US dollar", value)
    if not match:
        return []
    name = _strip_parens(match[1])
    codes = re.findall(r"\b[A-Z]{3}\b", " ".join(re.findall(r"\(([^)]*)\)", match[1])))
    singular = re.sub(r"s$", "", name)
    return [name, *codes, *([singular] if singular != name else [])]


_MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"


def _independence(value: str) -> list[str]:
    date = re.split(r"[;(]", value)[0].strip()
    match = re.fullmatch(rf"(?:\d{{1,2}} )?(?:(?:{_MONTHS}) )?(\d{{3,4}})", date)
    return ([match[1], date] if date != match[1] else [date]) if match else []


def _highest_point(value: str) -> list[str]:
    match = re.match(r"(.+?)\s+-?[\d,.]+ m(?:$|;)", value)
    name = _strip_parens(match[1]) if match else ""
    if not name or len(name.split()) > 5 or re.search(r"\d", name):
        return []
    alias = re.sub(r"^Mount ", "Mt. ", name) if name.startswith("Mount ") else re.sub(r"^Mt\.? ", "Mount ", name)
    return [name, alias] if alias != name else [name]


def _time_difference(value: str) -> list[str]:
    match = re.match(r"UTC\s*([+-]\d{1,2}(?::\d{2})?|0)\b", value)
    if not match:
        return []
    return ["UTC 0", "UTC+0"] if match[1] == "0" else [f"UTC{match[1]}"]


def _short_text(max_words: int) -> Callable[[str], list[str]]:
    def clean(value: str) -> list[str]:
        text = _strip_parens(value.split(";")[0])
        ok = text and text.lower() != "none" and len(text.split()) <= max_words
        return [text] if ok else []

    return clean


def _anthem(value: str) -> list[str]:
    head = value.split(";")[0]
    title = _strip_parens(head).strip(" \"“”'")
    translation = re.findall(r"\(([^()]*)\)", head)
    return [title, *translation[:1]] if title and len(title.split()) <= 12 else []


def _list_of_codes(value: str) -> list[str]:
    codes = [c.strip() for c in value.split(",")]
    return codes if all(re.fullmatch(r"[A-Z0-9]{1,4}(?:-[A-Z0-9]{1,4})?", c) for c in codes) else []


def _adjective(value: str) -> list[str]:
    parts = [p.strip() for p in re.split(r"[;,]\s*|\s+or\s+", _strip_parens(value)) if p.strip()]
    return parts if parts and all(len(p.split()) <= 3 for p in parts) else []


# field label -> (answer_type, cleaner); answer_type tells evaluate which accuracy metric fits
FIELD_ANSWERS: dict[str, tuple[str, Callable[[str], list[str]]]] = {
    "Capital": ("text", _capital),
    "Internet country code": ("text", lambda v: [v] if re.fullmatch(r"\.[a-z]{2}", v) else []),
    "Exchange rates - Currency": ("text", _currency),
    "Independence": ("year", _independence),
    "Elevation - highest point": ("text", _highest_point),
    "Population - total": ("number", _first_number),
    "Area - total": ("number", lambda v: _first_number(v, "sq km")),
    "Capital - time difference": ("text", _time_difference),
    "Government type": ("text", _short_text(6)),
    "National anthem(s) - title": ("text", _anthem),
    "Civil aircraft registration country code prefix": ("text", _list_of_codes),
    "Country name - conventional long form": ("text", _short_text(10)),
    "Nationality - adjective": ("text", _adjective),
    "Median age - total": ("number", lambda v: _first_number(v, "years")),
    "Coastline": ("number", lambda v: _first_number(v, "km")),
    "Airports": ("number", _first_number),
}
# Not the time difference: normalize_answer drops punctuation, so "UTC+1" and "UTC-1" would score as equal.
# Not airports: a bare count such as "18" co-occurs with the country by chance ("18 years of age"), so its
# frequency would measure noise, not exposure to the fact.
DEFAULT_FIELDS: tuple[str, ...] = tuple(f for f in FIELD_ANSWERS if f not in {"Capital - time difference", "Airports"})


def factbook_answers(field: str, value: str) -> tuple[str, list[str]]:
    """``(answer_type, answers)`` of a record value; no answers when the value is not short and unambiguous.

    The main answer is a span of the value without quotes, so that it can be found in the model's output and
    counted in the corpus. A field without its own cleaner keeps the value before any ``;`` without trailing
    parentheticals, up to 8 words.
    """
    answer_type, clean = FIELD_ANSWERS.get(field, ("text", _short_text(8)))
    cleaned = clean(value)
    if not cleaned or cleaned[0] not in value or re.search(r"[\"“”\[\]]", cleaned[0]):
        return answer_type, []
    answers = []
    for answer in cleaned:
        folded = unicodedata.normalize("NFKD", answer).encode("ascii", "ignore").decode()
        answers += [answer, folded] if folded.strip() else [answer]  # "Brasília" also "Brasilia"
    answers = list(dict.fromkeys(a for a in answers if a))
    if answer_type == "text" and answers and re.fullmatch(r"[\d,.]+", answers[0]):
        answer_type = "number"
    return answer_type, answers
