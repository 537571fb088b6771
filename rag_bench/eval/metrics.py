"""Metrics: pure functions registered by name with ``higher_is_better`` (lm-evaluation-harness style).

No I/O, no models, no randomness beyond an explicit seed, so every number in ``results.json`` can be
recomputed from the samples file. Registration runs one way: a module that defines metrics imports this one and
registers them when it is imported; this module imports none of them. Diversity metrics live in
:mod:`rag_bench.eval.diversity`, provenance metrics in ``rag_bench.contaminate.metrics``; the code that looks
them up imports the module that defines them, and ``rag_bench.get_metric`` / ``rag_bench.list_metrics`` (the
package's API) first import every module of ``rag_bench.METRIC_MODULES``::

    from rag_bench.eval.metrics import get_metric, list_metrics, mean_score
    get_metric("exact_match").fn("The Paris.", ["paris"])          # 1.0
    mean_score("token_f1", ["Paris", "Lyon"], [["Paris"], ["Nice"]])  # 0.5
    import rag_bench.eval.diversity                                 # registers the diversity metrics
    [m.name for m in list_metrics(kind="diversity")]

Kinds and their call conventions:

* ``accuracy``: ``fn(prediction: str, golden_answers: Sequence[str]) -> float``, the max over golden answers;
* ``grounding``: per-sample functions of retrieved ids / texts (see each function);
* ``fit``: ``perplexity_from_nll(total_nll, total_tokens)``;
* ``diversity``: functions of a list of generated texts, of an embedding matrix, or of texts and rare n-grams;
* ``provenance``: functions of retrieved passages' origins and of a filter's verdicts (``rag_bench.contaminate``).

Run the tests with ``.venv/bin/pytest tests/test_eval_metrics.py``.
"""

from __future__ import annotations

import dataclasses
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np

MetricKind = Literal["accuracy", "grounding", "fit", "diversity", "provenance"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Metric:
    """A registered metric: the function and how to read its value."""

    name: str  # the key in results.json
    fn: Callable[..., float]  # the pure function; its call convention depends on ``kind``
    higher_is_better: bool  # direction, so reports can colour a change as better or worse
    kind: MetricKind  # which family, hence which arguments ``fn`` takes
    doc: str = ""  # one line for tables and the UI


_REGISTRY: dict[str, Metric] = {}


def register_metric(
    name: str, *, higher_is_better: bool, kind: MetricKind, doc: str | None = None
) -> Callable[[Callable[..., float]], Callable[..., float]]:
    """Decorator that registers ``fn`` under ``name``; a second registration of a name is an error."""

    def decorator(fn: Callable[..., float]) -> Callable[..., float]:
        if name in _REGISTRY and _REGISTRY[name].fn is not fn:
            raise ValueError(f"metric {name!r} is already registered")
        first_line = doc if doc is not None else (fn.__doc__ or "").strip().split("\n")[0]
        _REGISTRY[name] = Metric(name=name, fn=fn, higher_is_better=higher_is_better, kind=kind, doc=first_line)
        return fn

    return decorator


def get_metric(name: str) -> Metric:
    """The metric registered under ``name`` (its module must have been imported; see the module docstring)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; known metrics: {', '.join(sorted(_REGISTRY))}") from None


def list_metrics(kind: MetricKind | None = None) -> list[Metric]:
    """Registered metrics sorted by name, optionally of one kind."""
    return [m for _, m in sorted(_REGISTRY.items()) if kind is None or m.kind == kind]


# --- normalisation ---------------------------------------------------------------------------

_THOUSANDS_COMMA = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_OTHER_DIGIT_COMMA = re.compile(r"(?<=\d),(?=\d)")
# Every non-word, non-space character except a decimal point between two digits ("3.5" must not become "35").
_PUNCTUATION = re.compile(r"(?!(?<=\d)\.\d)[^\w\s]|_")
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str, *, joined_as_space: bool = False) -> str:
    """SQuAD normalisation plus number handling: the form every accuracy metric compares.

    Lowercase; drop thousands separators ("2,381,740" -> "2381740"); drop punctuation (deleted,
    as in SQuAD, so "U.S." -> "us"); drop the articles a/an/the; collapse whitespace.

    Numbers differ from SQuAD on purpose: a decimal point between digits is kept ("3.5" stays
    "3.5", SQuAD would give "35", which equals "35"). A comma between digits that is not followed
    by exactly three digits is not a thousands separator: "1,5" becomes "1 5" (two numbers, as in
    a list), never "15"; it is not read as a European decimal comma because the corpora are English.

    Text is first composed to Unicode NFC, so a decomposed "Lome\u0301" keeps its accent as the precomposed
    "Lomé" does (the combining mark alone would be dropped as punctuation). ``joined_as_space=True`` turns
    punctuation into a space instead of deleting it ("Kampala-based" -> "kampala based"), the form ``contains``
    also tries so that a gold answer punctuation joins to a neighbour still counts.
    """
    text = unicodedata.normalize("NFC", text).lower()
    text = _THOUSANDS_COMMA.sub("", text)
    text = _OTHER_DIGIT_COMMA.sub(" ", text)
    text = _PUNCTUATION.sub(" " if joined_as_space else "", text)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _answers(golden_answers: Sequence[str] | str) -> Sequence[str]:
    # A bare string would otherwise be iterated character by character and match almost anything.
    answers = [golden_answers] if isinstance(golden_answers, str) else list(golden_answers)
    if not answers:
        raise ValueError("golden_answers is empty: a probe needs at least one answer")
    return answers


def _contains_tokens(haystack: str, needle: str) -> bool:
    """Both already normalised; ``needle`` occurs as whole tokens, so "1" is not found in "1991"."""
    return bool(needle) and f" {needle} " in f" {haystack} "


# --- accuracy ----------------------------------------------------------------------------------


@register_metric("exact_match", higher_is_better=True, kind="accuracy")
def exact_match(prediction: str, golden_answers: Sequence[str]) -> float:
    """1.0 if the normalised prediction equals a normalised golden answer."""
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(g) for g in _answers(golden_answers)))


def _f1(pred_tokens: list[str], gold_tokens: list[str]) -> float:
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    same = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


@register_metric("token_f1", higher_is_better=True, kind="accuracy")
def token_f1(prediction: str, golden_answers: Sequence[str]) -> float:
    """SQuAD token F1 between normalised prediction and the best golden answer."""
    pred = normalize_answer(prediction).split()
    return max(_f1(pred, normalize_answer(g).split()) for g in _answers(golden_answers))


@register_metric("contains", higher_is_better=True, kind="accuracy")
def contains(prediction: str, golden_answers: Sequence[str]) -> float:
    """Sub-EM: a normalised golden answer occurs in the normalised prediction as whole tokens.

    Tried twice: with punctuation deleted (SQuAD: "U.S." is "us") and with punctuation read as a space, so that
    "Kampala-based", "Canberra's" and "Paris,France" hold Kampala, Canberra and Paris. Matching stays whole-word:
    ".om" is not found in "Oman" (FlashRAG's substring ``acc`` finds it). The price: "Guinea" is found in
    "Guinea-Bissau".
    """
    return float(any(_contains_tokens(normalize_answer(prediction, joined_as_space=joined),
                                      normalize_answer(g, joined_as_space=joined))
                     for joined in (False, True) for g in _answers(golden_answers)))


@register_metric("echo", higher_is_better=False, kind="grounding",
                 doc="1.0 if a golden answer occurs in the question itself: contains would give echo credit")
def answer_in_question(question: str, golden_answers: Sequence[str]) -> float:
    """1.0 if a golden answer occurs (as ``contains`` finds it) in the question: an answer that repeats the
    question would be counted right, so such probes are left out of the primary metric."""
    return contains(question, golden_answers)


_NUMBER = re.compile(
    r"(?P<sign>(?<![\w.])[-\u2212])?(?P<digits>\d{1,3}(?:,\d{3})+(?!\d)(?:\.\d+)?|\d+(?:\.\d+)?)"
    r"(?:\s*(?P<scale>thousand|million|billion|trillion|bn)\b)?",
    re.IGNORECASE,
)
_SCALES = {"thousand": 1e3, "million": 1e6, "billion": 1e9, "bn": 1e9, "trillion": 1e12}


def first_number(text: str) -> float | None:
    """The first number in ``text``: thousands commas, a leading minus and a scale word are understood.

    "$2.5 billion (2020 est.)" -> 2.5e9; "-28 m" -> -28.0; "9,833,517 sq km" -> 9833517.0; "none" -> None.
    """
    match = _NUMBER.search(text)
    if match is None:
        return None
    value = float(match["digits"].replace(",", ""))
    if match["scale"]:
        value *= _SCALES[match["scale"].lower()]
    return -value if match["sign"] else value


@register_metric("numeric_match", higher_is_better=True, kind="accuracy")
def numeric_match(prediction: str, golden_answers: Sequence[str], rel_tol: float = 0.01) -> float:
    """First number of the prediction within ``rel_tol`` of the first number of a golden answer.

    0.0 when the prediction or a golden answer holds no number. Meant for figures (population,
    area, elevation): with the default 1% tolerance 1990 and 1991 match, so score years with exact_match.
    """
    pred = first_number(prediction)
    if pred is None:
        return 0.0
    golds = [first_number(g) for g in _answers(golden_answers)]
    return float(any(g is not None and math.isclose(pred, g, rel_tol=rel_tol) for g in golds))


def mean_score(name: str, predictions: Sequence[str], references: Sequence[Sequence[str]], **kwargs: Any) -> float:
    """Mean of an accuracy metric over aligned predictions and golden-answer lists."""
    metric = get_metric(name)
    if metric.kind != "accuracy":
        raise ValueError(f"mean_score needs an accuracy metric; {name!r} is a {metric.kind} metric")
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    if not predictions:
        raise ValueError("mean_score of no predictions is undefined")
    return sum(metric.fn(p, r, **kwargs) for p, r in zip(predictions, references, strict=True)) / len(predictions)


# --- grounding ---------------------------------------------------------------------------------


@register_metric("retrieval_recall", higher_is_better=True, kind="grounding")
def retrieval_recall(
    retrieved_ids: Sequence[str],
    gold_ids: Sequence[str] | None,
    retrieved_texts: Sequence[str] | None = None,
    golden_answers: Sequence[str] | None = None,
) -> float:
    """Recall@k for one probe, k = len(retrieved_ids): a gold chunk, or a chunk holding the answer, was retrieved.

    With gold chunk ids, 1.0 if any was retrieved. Without them, 1.0 if a normalised golden answer
    occurs (whole tokens) in a normalised retrieved text.
    """
    if gold_ids:
        return float(bool(set(gold_ids) & set(retrieved_ids)))
    if retrieved_texts is None or golden_answers is None:
        raise ValueError("retrieval_recall needs gold_ids, or retrieved_texts and golden_answers")
    answers = [normalize_answer(g) for g in _answers(golden_answers)]
    texts = [normalize_answer(t) for t in retrieved_texts]
    return float(any(_contains_tokens(t, a) for t in texts for a in answers))


@register_metric("recall_at_k", higher_is_better=True, kind="grounding")
def recall_at_k(retrieved_ids: Sequence[str], gold_id: str) -> float:
    """Recall@k, k = len(retrieved_ids): 1.0 if the probe's gold chunk (the chunk it was made from) was retrieved.

    Unlike ``retrieval_recall`` there is no fallback to answer-bearing chunks: a probe without a gold chunk in the
    index has no recall@k (evaluation leaves it out and says how many).
    """
    if not gold_id:
        raise ValueError("recall_at_k needs the probe's gold chunk id")
    return float(gold_id in set(retrieved_ids))


@register_metric("supported", higher_is_better=True, kind="grounding")
def supported(prediction: str, context_texts: Sequence[str]) -> float:
    """1.0 if the normalised, non-empty prediction occurs (whole tokens) in one normalised context text.

    Each retrieved text is searched on its own, so a match never straddles two chunks.
    """
    pred = normalize_answer(prediction)
    return float(any(_contains_tokens(normalize_answer(t), pred) for t in context_texts))


def accuracy_by_retrieval(scores: Sequence[float], retrieval_hits: Sequence[float | bool]) -> dict[str, Any]:
    """Mean score when retrieval succeeded vs failed, with group sizes; an empty group's mean is None."""
    if len(scores) != len(retrieval_hits):
        raise ValueError(f"{len(scores)} scores but {len(retrieval_hits)} retrieval hits")
    hit = [s for s, h in zip(scores, retrieval_hits, strict=True) if h]
    miss = [s for s, h in zip(scores, retrieval_hits, strict=True) if not h]
    return {
        "accuracy_retrieval_hit": sum(hit) / len(hit) if hit else None,
        "accuracy_retrieval_miss": sum(miss) / len(miss) if miss else None,
        "n_retrieval_hit": len(hit),
        "n_retrieval_miss": len(miss),
    }


# --- fit and distribution ----------------------------------------------------------------------


@register_metric("perplexity", higher_is_better=False, kind="fit")
def perplexity_from_nll(total_nll: float | Sequence[float], total_tokens: int | Sequence[int]) -> float:
    """Token-weighted perplexity exp(sum nll / sum tokens); nll in nats, summed over tokens (not averaged)."""
    nll = float(np.sum(total_nll))
    tokens = int(np.sum(total_tokens))
    if tokens <= 0:
        raise ValueError(f"perplexity needs at least one token, got {tokens}")
    return math.exp(nll / tokens)


def perplexity_histogram(
    values: Sequence[float], bins: int | Sequence[float] = 30, value_range: tuple[float, float] | None = None
) -> dict[str, Any]:
    """Histogram data of per-sequence perplexities (Shumailov et al. 2024, Fig. 1) as JSON-ready lists.

    Non-finite values (an overflowed perplexity) are left out and counted in ``n_nonfinite``.
    Pass the same ``bins`` edges for every generation so their histograms overlay.
    """
    array = np.asarray(values, dtype=np.float64)
    finite = array[np.isfinite(array)]
    if finite.size == 0 and value_range is None and isinstance(bins, int):
        value_range = (0.0, 1.0)  # numpy cannot infer edges from no data
    counts, edges = np.histogram(finite, bins=bins, range=value_range)
    return {
        "edges": edges.tolist(),
        "counts": counts.tolist(),
        "n": int(finite.size),
        "n_nonfinite": int(array.size - finite.size),
        "mean": float(finite.mean()) if finite.size else None,
        "median": float(np.median(finite)) if finite.size else None,
    }
