"""Training examples: packed corpus blocks, retrieval-augmented examples, the copy curriculum and fact rows.

A small model trained on a corpus it can memorise prefers memory to reading its context. The
copy curriculum makes reading the only way to lower the loss: passages about invented entities
(or real ones with counterfactual values), then a query block that repeats some of their record
lines in a new order, with the loss on every token of the repeat. Every value token there is
predictable only by finding the same ``Name | Section | Field:`` prefix in the context and
copying what follows it -- the induction step that grounded answering needs. See docs/copying.md.

    from rag_bench.training.examples import CopyTask, record_lines
    task = CopyTask(record_lines(texts), seed=0)
    example = task.example(tokenizer)            # Example(ids, labels), labels -100 outside the repeat
    prompt, answer = task.probe()                # a held-out style probe: (rendered prompt, gold value)
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections.abc import Iterable, Sequence

from rag_bench.prompt import PASSAGE_SEPARATOR, render_prompt

IGNORE = -100  # label of a position without loss
RECORD_LINE = re.compile(r"^(?P<prefix>[^|\n]+? \| [^|\n]+? \| [^\n]+?:) (?P<value>\S[^\n]*)$")
_SYLLABLES = [c + v for c in "bdfgklmnprstvzhj" for v in ("a", "e", "i", "o", "u", "ai", "ou")] + [
    "ar", "el", "in", "or", "un", "ask", "est", "ind", "orn", "ul", "an", "en", "on"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Example:
    """Token ids of one training example and its labels (``IGNORE`` where there is no loss)."""

    ids: list[int]  # starts with BOS
    labels: list[int]  # same length as ids


@dataclasses.dataclass(frozen=True, kw_only=True)
class RecordLine:
    """One ``Entity | Section | Field: value`` line of a record document."""

    entity: str
    section: str
    field: str
    value: str

    @property
    def prefix(self) -> str:
        return f"{self.entity} | {self.section} | {self.field}:"

    def text(self) -> str:
        return f"{self.prefix} {self.value}"


def parse_record_line(line: str) -> RecordLine | None:
    """Split ``Entity | Section | Field: value``; None for any other line."""
    match = RECORD_LINE.match(line.strip())
    if not match:
        return None
    entity, section, field = (part.strip() for part in match["prefix"][:-1].split(" | ", 2))
    return RecordLine(entity=entity, section=section, field=field, value=match["value"].strip())


def record_lines(texts: Iterable[str]) -> dict[str, list[RecordLine]]:
    """Record lines of ``texts`` grouped by entity, in corpus order."""
    by_entity: dict[str, list[RecordLine]] = {}
    for text in texts:
        for line in text.splitlines():
            if (rec := parse_record_line(line)) is not None:
                by_entity.setdefault(rec.entity, []).append(rec)
    return by_entity


def invent_name(rng: random.Random) -> str:
    """A pronounceable name that is no real country (e.g. 'Velmora'), sometimes two words."""
    word = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4))).capitalize()
    if rng.random() < 0.15:
        word += " " + "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()
    return word


def invent_value(value: str, rng: random.Random, words: Sequence[str] = ()) -> str:
    """A value of the same shape with new content: each word replaced, each digit a random digit.

    Words come from ``words`` (e.g. the corpus's own, so the value tokenises like real text) or are
    made of random syllables; short lowercase words (units, 'of', 'and') are kept so the value
    still looks like a Factbook value.
    """
    def word(match: re.Match) -> str:
        w = match.group(0)
        if len(w) <= 3 and w.islower():
            return w
        if words:
            new = rng.choice(words)
        else:
            new = "".join(rng.choice(_SYLLABLES) for _ in range(max(1, min(4, len(w) // 3))))
        return new.capitalize() if w[0].isupper() else new.lower()

    value = re.sub(r"[^\W\d_]+", word, value)
    return re.sub(r"\d", lambda _: str(rng.randint(0, 9)), value)


class CopyTask:
    """Copy-curriculum examples and probes built from real record lines.

    An example is 1-3 passages (windows of one entity's record lines, like retrieved chunks), one
    of them the target; then a query block repeating ``repeat`` lines of the target passage in a
    new order. The target entity is invented (new name, invented values) with ``p_invented``,
    otherwise a real entity with counterfactual values borrowed from other entities.
    """

    def __init__(self, records: dict[str, list[RecordLine]], *, seed: int = 0, min_lines: int = 2,
                 max_lines: int = 8, max_distractors: int = 2, p_invented: float = 0.7, p_borrow: float = 0.5,
                 max_value_chars: int = 60, loss_on: str = "values", p_same_fields: float = 0.0) -> None:
        self.entities = {e: [r for r in lines if len(r.value) <= max_value_chars] for e, lines in records.items()}
        self.entities = {e: lines for e, lines in self.entities.items() if len(lines) >= min_lines}
        if not self.entities:
            raise ValueError("the copy curriculum needs record lines 'Entity | Section | Field: value'; none found")
        self.names = sorted(self.entities)
        self.by_field: dict[str, list[str]] = {}
        words: set[str] = set()
        for lines in self.entities.values():
            for r in lines:
                self.by_field.setdefault(r.field, []).append(r.value)
                words.update(w for w in re.findall(r"[^\W\d_]+", r.value) if len(w) > 3)
        self.words = sorted(words)
        self.rng = random.Random(seed)
        self.min_lines, self.max_lines = min_lines, max_lines
        self.max_distractors, self.p_invented, self.p_borrow = max_distractors, p_invented, p_borrow
        self.p_same_fields = p_same_fields
        if loss_on not in ("values", "lines"):
            raise ValueError(f"loss_on must be 'values' or 'lines', got {loss_on!r}")
        self.loss_on = loss_on

    def _passage(self, invented: bool | None = None) -> list[RecordLine]:
        """A window of one entity's lines under a new name (invented) or its own, with every value changed."""
        rng = self.rng
        lines = self.entities[rng.choice(self.names)]
        n = rng.randint(self.min_lines, min(self.max_lines, len(lines)))
        start = rng.randrange(len(lines) - n + 1)
        window = lines[start:start + n]
        if invented is None:
            invented = rng.random() < self.p_invented
        name = invent_name(rng) if invented else window[0].entity
        return [dataclasses.replace(r, entity=name, value=self._new_value(r)) for r in window]

    def _new_value(self, rec: RecordLine) -> str:
        """Another entity's value for the same field (counterfactual) or an invented value of the same shape."""
        if self.rng.random() < self.p_borrow:
            others = self.by_field.get(rec.field, ())
            for _ in range(4):
                value = self.rng.choice(others)
                if value != rec.value:
                    return value
        return invent_value(rec.value, self.rng, self.words)

    def _same_fields(self, target: list[RecordLine]) -> list[RecordLine]:
        """A distractor holding the target's fields for another entity (real name, changed values), as retrieval
        puts the same section of a similar record beside the right one; a random window if none has them."""
        fields = {r.field for r in target}
        for _ in range(8):
            name = self.rng.choice(self.names)
            lines = [r for r in self.entities[name] if r.field in fields]
            if name != target[0].entity and lines:
                return [dataclasses.replace(r, value=self._new_value(r)) for r in lines]
        return self._passage()

    def _passages(self, invented: bool | None = None) -> tuple[list[RecordLine], list[str]]:
        target = self._passage(invented)
        hard = self.p_same_fields  # no draw when 0, so the examples of configs without it stay as they were
        passages = [target] + [self._same_fields(target) if hard and self.rng.random() < hard else self._passage()
                               for _ in range(self.rng.randint(0, self.max_distractors))]
        self.rng.shuffle(passages)
        return target, ["\n".join(r.text() for r in p) for p in passages]

    def example(self, tokenizer, *, repeat: int | None = None, max_tokens: int | None = None) -> Example:
        """One training example: the loss covers the repeated lines (``loss_on="lines"``) or only their values.

        Cut from the left to ``max_tokens``.
        """
        target, passages = self._passages()
        k = repeat or self.rng.randint(1, len(target))
        ids = tokenizer(render_prompt("", passages))["input_ids"]  # ends with the separator
        labels = [IGNORE] * len(ids)
        for rec in self.rng.sample(target, min(k, len(target))):
            prefix = tokenizer(rec.prefix, add_special_tokens=False)["input_ids"]
            value = tokenizer(f" {rec.value}\n", add_special_tokens=False)["input_ids"]
            ids += prefix + value
            labels += (prefix if self.loss_on == "lines" else [IGNORE] * len(prefix)) + value
        cut = max(0, len(ids) - max_tokens) if max_tokens else 0
        return Example(ids=ids[cut:], labels=labels[cut:])

    def probe(self, *, invented: bool = True) -> tuple[str, str, list[str]]:
        """(prompt, gold value, passages): a question about one line of the target passage."""
        target, passages = self._passages(invented)
        prefixes = [r.prefix for r in target]
        unique = [r for r in target if prefixes.count(r.prefix) == 1] or target
        line = self.rng.choice(unique)
        return render_prompt(line.prefix, passages), line.value, passages


def repeat_example(rng: random.Random, vocab_size: int, *, skip_ids: Sequence[int] = (), bos_id: int | None = None,
                   min_len: int = 8, max_len: int = 32) -> Example:
    """Random tokens, then the same tokens again, with the loss on the repeat.

    Nothing but an induction head (find the earlier occurrence of the current token, copy the token
    after it) predicts the repeat, so these rows build the circuit without the shortcuts that
    record-copy rows alone allow (copying the first line, guessing from the field's usual values).
    """
    skip = set(skip_ids)
    n = rng.randint(min_len, max_len)
    seq = []
    while len(seq) < n:
        token = rng.randrange(vocab_size)
        if token not in skip:
            seq.append(token)
    head = [bos_id] if bos_id is not None else []
    return Example(ids=head + seq + seq, labels=[IGNORE] * (len(head) + n + 1) + seq[1:])


END_OF_TEXT = "<|endoftext|>"  # the document separator of GPT-2, SmolLM2's pretraining and tokenizers built here


def document_separator(tokenizer) -> int:
    """The token that starts every document: ``<|endoftext|>`` where the vocabulary has it (the BOS of tokenizers
    built here; SmolLM2's pretraining separator, whose BOS ``<|im_start|>`` opens a chat turn), else BOS, else EOS."""
    eot = tokenizer.get_vocab().get(END_OF_TEXT)
    if eot is not None:
        return eot
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id


def corpus_stream(texts: Sequence[str], tokenizer, *, origins: Sequence[str] | None = None):
    """The corpus as one token stream, each document preceded by ``document_separator``.

    With ``origins`` (one label per text) returns ``(stream, origin of each token)``.
    """
    stream: list[int] = []
    labels: list[str] = []
    separator = document_separator(tokenizer)
    for i, enc in enumerate(tokenizer(list(texts))["input_ids"]):
        if not enc or enc[0] != separator:
            enc = [separator, *enc]
        stream.extend(enc)
        if origins is not None:
            labels.extend([origins[i]] * len(enc))
    return (stream, labels) if origins is not None else stream


def text_segments(texts: Sequence[str], max_chars: int) -> list[str]:
    """Texts cut at line ends into segments of at most ``max_chars`` (a longer line is its own segment)."""
    segments = []
    for text in texts:
        current = ""
        for line in text.splitlines():
            if current and len(current) + 1 + len(line) > max_chars:
                segments.append(current)
                current = ""
            current = f"{current}\n{line}" if current else line
        if current.strip():
            segments.append(current)
    return segments


def retrieval_examples(texts: Sequence[str], tokenizer, neighbours, *, block: int, max_examples: int, seed: int,
                       segment_chars: int = 400) -> list[Example]:
    """Segments of ``texts`` prefixed with their neighbours' passages through ``render_prompt``.

    The loss covers the segment only. A segment's own chunk may be among its neighbours: copying
    it is exactly what grounded answering asks of the model. Passages that do not fit in ``block``
    are dropped from the end (the retriever ranks the best first).
    """
    segments = text_segments(texts, segment_chars)
    random.Random(seed).shuffle(segments)
    segments = segments[:max_examples]
    passages_per_segment = neighbours(segments) if segments else []
    if len(passages_per_segment) != len(segments):
        raise ValueError(f"neighbours returned {len(passages_per_segment)} lists for {len(segments)} texts")
    examples = []
    for segment, passages in zip(segments, passages_per_segment, strict=True):
        seg_ids = tokenizer(segment + "\n", add_special_tokens=False)["input_ids"][: block - 1]
        passages = list(passages)
        while True:
            ctx_ids = tokenizer(render_prompt("", passages))["input_ids"] if passages else tokenizer("")["input_ids"]
            if len(ctx_ids) + len(seg_ids) <= block or not passages:
                break
            passages.pop()
        examples.append(Example(ids=ctx_ids + seg_ids, labels=[IGNORE] * len(ctx_ids) + seg_ids))
    return examples


class FactRows:
    """Rows of record lines drawn from random entities, in random order: each value is keyed by its prefix alone.

    Inside a record document every line follows the same neighbours, so a model can learn the document as a
    sequence (training loss 0.009 on the ``quick`` subset) and still not answer ``Japan | Government | Capital:``
    asked alone, which is what a closed-book prompt does. Allen-Zhu & Li (2023, "Physics of Language Models 3.1")
    found the same: knowledge is extractable only when it was stored from varied contexts (permuted, rewritten).
    Lines drawn at random, with the loss on every token, are that variation for field records.
    """

    def __init__(self, records: dict[str, list[RecordLine]], tokenizer, *, fields: Sequence[str] = ()) -> None:
        lines = [f"{r.text()}\n" for r in _lines_of(records, fields)]
        if not lines and fields:
            seen = sorted({r.field for rs in records.values() for r in rs})
            raise ValueError(f"fact_fields {list(fields)} match no record line; the corpus has fields like {seen[:8]}")
        if not lines:
            raise ValueError("fact rows need record lines 'Entity | Section | Field: value'; none found")
        self.lines = tokenizer(lines, add_special_tokens=False)["input_ids"]
        self.bos = document_separator(tokenizer)

    def example(self, rng: random.Random, *, block: int) -> Example:
        """BOS, then whole random lines up to ``block`` tokens (the last one cut)."""
        ids = [self.bos]
        while len(ids) < block:
            ids += self.lines[rng.randrange(len(self.lines))]
        return Example(ids=ids[:block], labels=ids[:block])


def _lines_of(records: dict[str, list[RecordLine]], fields: Sequence[str]) -> list[RecordLine]:
    """Every record line, or those of ``fields`` when some are named."""
    wanted = set(fields)
    return [r for rs in records.values() for r in rs if not wanted or r.field in wanted]


def probe_lines(records: dict[str, list[RecordLine]], count: int, *, seed: int, max_value_chars: int = 40,
                fields: Sequence[str] = ()) -> list[tuple[str, str]]:
    """(record prefix, value) of ``count`` training facts with short values (of ``fields``): closed-book probes."""
    lines = [r for r in _lines_of(records, fields) if len(r.value) <= max_value_chars]
    rng = random.Random(seed)
    return [(r.prefix, r.value) for r in rng.sample(lines, min(count, len(lines)))]


__all__ = ["IGNORE", "PASSAGE_SEPARATOR", "CopyTask", "Example", "FactRows", "RecordLine", "corpus_stream",
           "document_separator", "invent_name", "invent_value", "parse_record_line", "probe_lines", "record_lines",
           "repeat_example", "retrieval_examples", "text_segments"]
