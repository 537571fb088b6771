"""Corpus figures of a built Factbook: documents, characters, words and tokens per split.

    python corpora/factbook/stats.py --corpus data/corpora/factbook/corpus.jsonl [--vocab-size 8192]

Tokens are counted under the default tokenizer of generation 0: the byte-level BPE that
``rag_bench.models.scratch.train_tokenizer`` trains on the training split (vocabulary 8192).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from rag_bench.models.scratch import train_tokenizer
from rag_bench.records import read_corpus


def corpus_figures(corpus_path: Path, *, vocab_size: int = 8192) -> dict:
    records = read_corpus(corpus_path)
    splits = {"train": [r for r in records if r.metadata.get("split") == "train"],
              "heldout": [r for r in records if r.metadata.get("split") == "heldout"]}
    splits["total"] = records
    started = time.perf_counter()
    tokenizer = train_tokenizer((r.contents for r in splits["train"]), vocab_size=vocab_size)
    figures: dict = {"vocab_size": len(tokenizer), "tokenizer_seconds": round(time.perf_counter() - started, 1)}
    for name, docs in splits.items():
        texts = [r.contents for r in docs]
        tokens = sum(len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"])
        figures[name] = {"documents": len(docs), "characters": sum(map(len, texts)),
                         "words": sum(len(t.split()) for t in texts), "tokens": tokens}
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=Path("data/corpora/factbook/corpus.jsonl"))
    parser.add_argument("--vocab-size", type=int, default=8192)
    args = parser.parse_args()
    figures = corpus_figures(args.corpus, vocab_size=args.vocab_size)
    print("| | documents | characters | words | tokens |\n|---|---:|---:|---:|---:|")
    for name in ("train", "heldout", "total"):
        row = figures[name]
        print(f"| {name} | {row['documents']:,} | {row['characters']:,} | {row['words']:,} | {row['tokens']:,} |")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
