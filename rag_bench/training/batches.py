"""The rows of every training step: packed corpus blocks, retrieval-augmented, fact and copy rows.

    from rag_bench.training.batches import Batches
    batches = Batches(cfg, lm, texts, block=512, neighbours=None)
    rows = batches.batch(step)                 # a pure function of (seed, step): a resumed run sees the same rows
    batches.account(timings["trained_tokens"], rows)   # tokens per row kind and origin

The row kinds themselves are built in rag_bench.training.examples; their shares come from TrainConfig.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence

from rag_bench.config import DecodeConfig, TrainConfig
from rag_bench.lm import LM
from rag_bench.training.examples import (
    CopyTask,
    Example,
    FactRows,
    corpus_stream,
    probe_lines,
    record_lines,
    repeat_example,
    retrieval_examples,
)

Neighbours = Callable[[list[str]], list[list[str]]]  # texts -> passages to place before each text
PROBE_DECODE = DecodeConfig(max_new_tokens=24, batch_size=64)  # greedy, up to the newline


class Batches:
    """The rows of every step: corpus blocks, retrieval-augmented, fact and copy rows, by (seed, step)."""

    def __init__(self, cfg: TrainConfig, lm: LM, texts: Sequence[str], block: int, neighbours: Neighbours | None,
                 origins: Sequence[str] | None = None):
        self.cfg, self.block, self.tok = cfg, block, lm.tokenizer
        self._orders: dict[tuple[int, int], list[int]] = {}
        self.pad = lm.tokenizer.pad_token_id
        stream, stream_origins = corpus_stream(texts, lm.tokenizer, origins=origins or ["train"] * len(texts))
        self.corpus = [stream[i:i + block] for i in range(0, len(stream) - block + 1, block)]
        self.block_origins = [Counter(stream_origins[i:i + block]) for i in range(0, len(stream) - block + 1, block)]
        self.row_kinds: list[str] = []  # the kind of each row of the last batch, in order
        self.corpus_picked: list[int] = []  # the corpus blocks of the last batch
        # what each curriculum kind is built from: tokens of the texts (that hold record lines) by origin
        self.built_from = _built_from(texts, origins or ["train"] * len(texts), lm.tokenizer)
        if not self.corpus:
            raise ValueError(f"the training texts hold {len(stream)} tokens, fewer than one block of {block}")
        self.retrieval: list[Example] = []
        if cfg.retrieval_share > 0:
            if neighbours is None:
                raise ValueError("retrieval_share > 0 needs a neighbours function (the index's retriever)")
            self.retrieval = retrieval_examples(texts, lm.tokenizer, neighbours, block=block,
                                                max_examples=cfg.retrieval_examples, seed=cfg.seed)
        records = record_lines(texts)
        self.copy = None
        if cfg.copy_share > 0 and records:
            self.copy = CopyTask(records, seed=cfg.seed, min_lines=cfg.copy_min_lines, max_lines=cfg.copy_max_lines,
                                 max_distractors=cfg.copy_max_distractors, max_value_chars=cfg.copy_max_value_chars,
                                 loss_on=cfg.copy_loss_on, p_invented=cfg.copy_invented_share,
                                 p_same_fields=cfg.copy_same_fields_share)
        elif cfg.copy_share > 0:
            print("no 'Entity | Section | Field: value' record lines in the corpus: copy rows are random repeats only")
        self.facts = FactRows(records, lm.tokenizer, fields=cfg.fact_fields) if cfg.fact_share > 0 and records else None
        if self.facts is not None:
            print(f"fact rows: {len(self.facts.lines):,} record lines, {sum(map(len, self.facts.lines)):,} tokens")
        if cfg.fact_share > 0 and not records:
            print("no 'Entity | Section | Field: value' record lines in the corpus: no fact rows")
        self.rng = random.Random(cfg.seed)
        self.skip_ids = [i for i in (lm.tokenizer.bos_token_id, lm.tokenizer.pad_token_id, lm.tokenizer.eos_token_id)
                         if i is not None]
        # the facts this run means to store: those of the fact rows' fields when the rows are limited to some
        fields = cfg.fact_fields if self.facts is not None else ()
        self.probes = probe_lines(records, cfg.probe_count, seed=cfg.seed, fields=fields) if cfg.probe_count else []
        if 0 < len(self.probes) < cfg.probe_count:
            print(f"warning: probe_count={cfg.probe_count} requested, {len(self.probes)} closed-book probes used: "
                  "only so many short record lines in the training texts")
        self.copy_probes = []
        if cfg.probe_count and records:
            probe_task = CopyTask(records, seed=cfg.seed + 7919, min_lines=2, max_lines=max(2, cfg.copy_max_lines),
                                  max_distractors=cfg.copy_max_distractors, max_value_chars=cfg.copy_max_value_chars)
            self.copy_probes = [probe_task.probe(invented=True)[:2] for _ in range(cfg.probe_count)]

    def batch(self, step: int) -> list[Example]:
        cfg = self.cfg
        copy_share = 1.0 if cfg.copy_share > 0 and step < cfg.copy_warmup_steps else cfg.copy_share
        n_copy = round(copy_share * cfg.batch_size)
        n_retrieval = min(round(cfg.retrieval_share * cfg.batch_size), cfg.batch_size - n_copy) if self.retrieval else 0
        n_fact = min(round(cfg.fact_share * cfg.batch_size), cfg.batch_size - n_copy - n_retrieval) if self.facts else 0
        n_corpus = cfg.batch_size - n_copy - n_retrieval - n_fact
        self.corpus_picked = self._take(list(range(len(self.corpus))), step, n_corpus, key=id(self.corpus))
        rows = [Example(ids=self.corpus[i], labels=self.corpus[i]) for i in self.corpus_picked]
        rows += self._take(self.retrieval, step, n_retrieval)
        if n_fact:
            fact_rng = random.Random(cfg.seed * 1_000_033 + step)
            rows += [self.facts.example(fact_rng, block=self.block) for _ in range(n_fact)]
        n_repeat = 0
        if n_copy:
            self.rng.seed(cfg.seed * 1_000_003 + step)
            n_repeat = n_copy if self.copy is None else round(cfg.copy_repeat_share * n_copy)
            rows += [repeat_example(self.rng, len(self.tok), skip_ids=self.skip_ids, bos_id=self.tok.bos_token_id,
                                    max_len=min(32, (self.block - 1) // 2)) for _ in range(n_repeat)]
            if self.copy is not None:
                self.copy.rng.seed(cfg.seed * 1_000_003 + step)
                rows += [self.copy.example(self.tok, max_tokens=self.block) for _ in range(n_copy - n_repeat)]
        self.row_kinds = (["corpus"] * n_corpus + ["retrieval"] * n_retrieval + ["fact"] * n_fact
                          + ["repeat"] * n_repeat + ["copy"] * (n_copy - n_repeat))
        return rows

    def account(self, totals: dict, rows: list[Example]) -> None:
        """Add the last batch's tokens to ``totals``: per row kind, corpus blocks split by origin (exact), the
        curriculum kinds with the origins of the texts they are built from (``built_from``)."""
        for row, kind in zip(rows, self.row_kinds, strict=True):
            entry = totals.setdefault(kind, {"rows": 0, "tokens": 0})
            entry["rows"] += 1
            entry["tokens"] += len(row.ids)
        corpus = totals.get("corpus")
        for i in self.corpus_picked:
            by_origin = corpus.setdefault("by_origin", {})
            for origin, n in self.block_origins[i].items():
                by_origin[origin] = by_origin.get(origin, 0) + n
        for kind in ("retrieval", "fact", "copy"):
            if kind in totals:
                totals[kind]["built_from"] = self.built_from["texts" if kind == "retrieval" else "records"]
        if "repeat" in totals:
            totals["repeat"]["built_from"] = {"random tokens": totals["repeat"]["tokens"]}

    def _take(self, pool: list, step: int, n: int, key: int | None = None) -> list:
        """Rows ``step*n .. step*n+n`` of an endless sequence of seeded per-epoch permutations of ``pool``."""
        out, name = [], id(pool) if key is None else key
        for index in range(step * n, step * n + n):
            epoch, offset = divmod(index, len(pool))
            if (name, epoch) not in self._orders:
                order = list(range(len(pool)))
                random.Random(self.cfg.seed * 7_919 + epoch).shuffle(order)
                self._orders = {k: v for k, v in self._orders.items() if k[0] != name} | {(name, epoch): order}
            out.append(pool[self._orders[(name, epoch)][offset]])
        return out

    def probe_scores(self, lm: LM) -> dict[str, float]:
        """Closed-book EM on training facts and copy EM on invented entities (held-out names)."""
        scores = {}
        for name, pairs in (("closed_book_em", self.probes), ("copy_em", self.copy_probes)):
            if pairs:
                answers = lm.generate([p for p, _ in pairs], PROBE_DECODE)
                scores[name] = sum(a.strip() == g for a, (_, g) in zip(answers, pairs, strict=True)) / len(pairs)
        return scores


def _built_from(texts: Sequence[str], origins: Sequence[str], tokenizer) -> dict[str, dict[str, int]]:
    """Tokens of the training texts by origin: all of them (retrieval rows) and those holding record lines (fact
    and copy rows)."""
    lengths = [len(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]] if texts else []
    every, records = Counter(), Counter()
    for text, origin, n in zip(texts, origins, lengths, strict=True):
        every[origin] += n
        if record_lines([text]):
            records[origin] += n
    return {"texts": dict(every), "records": dict(records)}
