"""Question templates of the natural-language Factbook probes, and the usual forms of their answers.

    from rag_bench.question_templates import QUESTIONS, ask, usual_forms
    ask("Capital", "Kenya")                              # "What is the capital of Kenya?"
    usual_forms("number", "47,532,318", "47,532,318")    # [..., "47532318", "47.5 million", "48 million"]

A template names a Factbook field (``facts.jsonl``'s ``field``) and holds ``{country}``; the answers are the
record probes' cleaned answers (``rag_bench.probes.factbook_answers``) plus the forms a person or a pretrained
model writes instead: a figure without thousands separators or rounded to millions, a unit spelled out.
"""

from __future__ import annotations

import re

# field -> (question template, answer type); the answer type picks the metric that fits (see rag_bench.evaluate)
QUESTIONS: dict[str, tuple[str, str]] = {
    "Capital": ("What is the capital of {country}?", "text"),
    "Internet country code": ("What is the internet country code top-level domain of {country}?", "text"),
    "Exchange rates - Currency": ("What is the currency of {country}?", "text"),
    "Independence": ("In which year did {country} become independent?", "year"),
    "Elevation - highest point": ("What is the highest point of {country}?", "text"),
    "Population - total": ("What is the population of {country}?", "number"),
    "Area - total": ("What is the total area of {country} in square kilometers?", "number"),
    "Government type": ("What type of government does {country} have?", "text"),
    "National anthem(s) - title": ("What is the title of the national anthem of {country}?", "text"),
    "Civil aircraft registration country code prefix":
        ("What is the civil aircraft registration prefix of {country}?", "text"),
    "Country name - conventional long form": ("What is the conventional long-form name of {country}?", "text"),
    "Nationality - adjective": ("What is the nationality adjective for people from {country}?", "text"),
    "Median age - total": ("What is the median age of the population of {country}?", "number"),
    "Coastline": ("How long is the coastline of {country} in kilometers?", "number"),
    "Map references": ("In which region of the world is {country}?", "text"),
    "Life expectancy at birth - total population": ("What is the life expectancy at birth in {country}?", "number"),
}
NATURAL_FIELDS: tuple[str, ...] = tuple(QUESTIONS)

# names read after "of" or "in" with an article: "the capital of the United States"
_WITH_ARTICLE = re.compile(r"^(?:United |Netherlands$|Philippines$|Maldives$|Marshall Islands$|Solomon Islands$|"
                           r"Czech Republic$|Central African Republic$|Comoros$|Cayman Islands$|Falkland Islands|"
                           r"Faroe Islands$|British Virgin Islands$|Cook Islands$|Turks and Caicos Islands$)")
_UNIT_WORDS = {"sq km": ("square kilometers", "square kilometres", "km2", "km²"),
               "km": ("kilometers", "kilometres"), "years": ("years old",)}


def question_name(country: str) -> str:
    """The country inside a sentence: "The Gambia" -> "the Gambia", "United States" -> "the United States"."""
    country = re.sub(r"\s*\([^()]*\)$", "", country)  # "Falkland Islands (Islas Malvinas)"
    if country.startswith("The "):
        return "the " + country[4:]
    return f"the {country}" if _WITH_ARTICLE.match(country) else country


def ask(field: str, country: str) -> str:
    """The question of ``field`` about ``country``; KeyError for a field without a template."""
    return QUESTIONS[field][0].format(country=question_name(country))


def usual_forms(answer_type: str, main: str, value: str) -> list[str]:
    """Other accepted forms of the main answer ``main`` (a span of the record ``value``)."""
    if answer_type != "number":
        return []
    match = re.match(r"(-?[\d,]+(?:\.\d+)?)\s*(sq km|km|years)?\b", main)
    if not match:
        return []
    digits, unit = match[1], match[2] or ""
    forms = [digits.replace(",", "")] if "," in digits else []
    if unit:
        forms += [digits, *(f"{digits} {word}" for word in _UNIT_WORDS[unit])]
    number = float(digits.replace(",", ""))
    for scale, word in ((1e9, "billion"), (1e6, "million")):
        if abs(number) >= scale:
            forms.append(f"{number / scale:.1f} {word}")
            if abs(number) >= 10 * scale:  # "48 million" for 47,532,318; "1 million" for 1.4 million is too loose
                forms.append(f"{number / scale:.0f} {word}")
            break
    return list(dict.fromkeys(f for f in forms if f != main))
