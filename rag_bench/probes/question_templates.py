"""Question templates of the natural-language Factbook probes, and the usual forms of their answers.

    from rag_bench.probes.question_templates import QUESTIONS, ask, usual_forms
    ask("Capital", "Kenya")                              # "What is the capital of Kenya?"
    usual_forms("number", "47,532,318", "47,532,318")    # [..., "47532318", "47.5 million", "48 million"]

A template names a Factbook field (``facts.jsonl``'s ``field``) and holds ``{country}``; the answers are the
record probes' cleaned answers (``rag_bench.probes.factbook_answers``) plus the forms a person or a pretrained
model writes instead: a figure without thousands separators or rounded to millions, a unit spelled out.
"""

from __future__ import annotations

import re

# field -> (question, the start of a one-sentence answer, answer type). The answer start is where generation 0's
# confidence in the gold answer is scored (rag_bench.eval.buckets): an instruct model answers in a sentence.
# The answer type picks the metric that fits (see rag_bench.eval.scoring).
QUESTIONS: dict[str, tuple[str, str, str]] = {
    "Capital": ("What is the capital of {country}?", "The capital of {country} is", "text"),
    "Internet country code": ("What is the internet country code top-level domain of {country}?",
                              "The internet country code top-level domain of {country} is", "text"),
    "Exchange rates - Currency": ("What is the currency of {country}?", "The currency of {country} is the", "text"),
    "Independence": ("In which year did {country} become independent?", "{country} became independent in", "year"),
    "Elevation - highest point": ("What is the highest point of {country}?", "The highest point of {country} is",
                                  "text"),
    "Population - total": ("What is the population of {country}?", "The population of {country} is", "number"),
    "Area - total": ("What is the total area of {country} in square kilometers?", "The total area of {country} is",
                     "number"),
    "Government type": ("What type of government does {country} have?", "The government of {country} is a", "text"),
    "National anthem(s) - title": ("What is the title of the national anthem of {country}?",
                                   "The national anthem of {country} is", "text"),
    "Civil aircraft registration country code prefix":
        ("What is the civil aircraft registration prefix of {country}?",
         "The civil aircraft registration prefix of {country} is", "text"),
    "Country name - conventional long form": ("What is the conventional long-form name of {country}?",
                                              "The conventional long-form name of {country} is the", "text"),
    "Nationality - adjective": ("What is the nationality adjective for people from {country}?",
                                "The nationality adjective for people from {country} is", "text"),
    "Median age - total": ("What is the median age of the population of {country}?",
                           "The median age of the population of {country} is", "number"),
    "Coastline": ("How long is the coastline of {country} in kilometers?", "The coastline of {country} is",
                  "number"),
    "Map references": ("In which region of the world is {country}?", "{country} is in", "text"),
    "Life expectancy at birth - total population": ("What is the life expectancy at birth in {country}?",
                                                    "The life expectancy at birth in {country} is", "number"),
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


def answer_start(field: str, country: str) -> str:
    """The first words of a one-sentence answer: "The capital of Kenya is" (the gold answer follows it)."""
    text = QUESTIONS[field][1].format(country=question_name(country))
    return text[0].upper() + text[1:]


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
