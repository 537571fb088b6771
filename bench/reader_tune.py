"""How the scored reader's weights and refusal floor were chosen: dev probes that reader_bench.py does not measure.

    flock /tmp/rag_bench_heavy.lock nice -n 10 .venv/bin/python bench/reader_tune.py --limit 100

The scored reader (``rag_bench.extract.choose_span``, ``config.DEFAULT_READER``) adds ``match_weights`` (key,
extra) times a candidate's ``question_match`` to the model's mean log-probability of it, and refuses below
``min_score``. This script scores every candidate once with SmolLM2-135M-Instruct (the ``short`` template, as
the reader) over a seeded sample of Factbook natural-question probes from the dev split **outside** the sample
reader_bench.py measures (its ``--limit 120 --seed 0``), with bm25 k=3 passages and with the gold chunk alone
(oracle), then grid-searches the weights offline and reports, for each setting, ``contains``, exact match and
``contains`` where a passage holds the answer; plus two ablations: the model's scores alone (weights 0), and the
question match alone with each line's first candidate (its whole value) and no model. At DEFAULT_READER's weights
it lists each floor's effect: refusals, and answers that are right or rightly refused. Writes
bench/results/reader_tuning.json.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import torch  # noqa: E402
from reader_bench import cpu_isa, dev_probes  # noqa: E402

from rag_bench.answer import NO_SPAN  # noqa: E402
from rag_bench.config import DEFAULT_READER  # noqa: E402
from rag_bench.eval.inputs import gold_documents  # noqa: E402
from rag_bench.eval.metrics import contains, exact_match  # noqa: E402
from rag_bench.eval.run import provenance  # noqa: E402
from rag_bench.extract import candidate_spans, echoes, question_match, span_logprobs  # noqa: E402
from rag_bench.index.embedding import load_embedder  # noqa: E402
from rag_bench.index.retrieve import make_retriever  # noqa: E402
from rag_bench.index.store import load_index  # noqa: E402
from rag_bench.models import load_model  # noqa: E402
from rag_bench.prompt import render_prompt  # noqa: E402
from rag_bench.records import write_json  # noqa: E402

OUT = REPO / "bench" / "results" / "reader_tuning.json"
KEY_WEIGHTS = (0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 100.0)
EXTRA_WEIGHTS = (0.0, 1.0, 2.0, 4.0, 8.0)
FLOORS = (None, 20.0, 30.0, 35.0, 40.0, 42.0, 45.0, 50.0, 60.0)


def candidates(lm, question: str, passages: list[str]) -> list[tuple]:
    """(log-probability, key share, extra share, -passage, order, text) of every candidate that is not an echo."""
    prompt = render_prompt(question, passages[::-1], tokenizer=lm.tokenizer, template="short")  # best last
    found = [(i, s) for i, p in enumerate(passages) for s in candidate_spans(p) if not echoes(question, s.text)]
    texts = list(dict.fromkeys(s.text for _, s in found))
    logprob = dict(zip(texts, span_logprobs(lm, prompt, texts, end=lm.tokenizer.eos_token), strict=True))
    rows = []
    for order, (i, span) in enumerate(found):
        match = question_match(question, span.context)
        rows.append((logprob[span.text], match.key, match.extra, -i, -order, span.text))
    return rows


def pick(rows: list[tuple], weights: tuple[float, float], floor: float | None, *, model: bool = True) -> str:
    if not rows:
        return NO_SPAN
    score, *_, text = max(((lp if model else 0.0) + weights[0] * key - weights[1] * extra, i, order, text)
                          for lp, key, extra, i, order, text in rows)
    return NO_SPAN if floor is not None and score < floor else text


def figures(scored: list[dict], answer) -> dict:
    right = [contains(answer(s), s["gold"]) for s in scored]
    held = [r for r, s in zip(right, scored, strict=True) if s["held"]]
    refused = [answer(s) == NO_SPAN for s in scored]
    rightly = [r if s["held"] else float(no) for r, s, no in zip(right, scored, refused, strict=True)]
    return {"contains": round(sum(right) / len(right), 4),
            "exact_match": round(sum(exact_match(answer(s), s["gold"]) for s in scored) / len(scored), 4),
            "contains_when_passage_holds_answer": round(sum(held) / len(held), 4) if held else None,
            "refused": sum(refused), "right_or_rightly_refused": round(sum(rightly) / len(rightly), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--probes", default="data/probes/factbook-natural.jsonl")
    parser.add_argument("--index", default="data/indexes/factbook")
    parser.add_argument("--limit", type=int, default=100, help="tuning probes (dev, outside reader_bench's sample)")
    parser.add_argument("--bench-limit", type=int, default=120, help="reader_bench.py's --limit, left out here")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started, load_before = time.perf_counter(), os.getloadavg()
    measured = {p.id for p in dev_probes(Path(args.probes), args.bench_limit, 0)}
    pool = [p for p in dev_probes(Path(args.probes), 10**9, 0) if p.id not in measured]
    probes = random.Random(args.seed).sample(pool, min(args.limit, len(pool)))
    index = load_index(args.index, embeddings=load_embedder())
    bm25 = make_retriever(index.store, mode="bm25", k=3)
    lm = load_model("smollm2-135m", args.data_dir, device="cpu")
    contexts = {"bm25_k3": [[d.page_content for d in docs] for docs in bm25.batch_search([p.prompt for p in probes])],
                "oracle": [[d.page_content] if d else [] for d in gold_documents(bm25, probes)]}
    chosen = DEFAULT_READER.match_weights  # the floors and the match-alone ablation are read at the default weights
    result = {"command": " ".join(sys.argv), "default_reader_at_run": DEFAULT_READER.to_dict(),
              "model": "smollm2-135m", "template": "short", "split": "dev",
              "n_probes": len(probes), "left_out": f"reader_bench.py --limit {args.bench_limit} --seed 0",
              "isa": cpu_isa(), "threads": args.threads, "load_avg_before": load_before, "settings": {},
              **provenance()}
    for name, passages in contexts.items():
        scored = [{"rows": candidates(lm, p.prompt, ps), "gold": p.golden_answers,
                   "held": any(contains(text, p.golden_answers) for text in ps)}
                  for p, ps in zip(probes, passages, strict=True)]
        grid = {f"{k},{e}": figures(scored, lambda s, w=(k, e): pick(s["rows"], w, None))
                for k, e in itertools.product(KEY_WEIGHTS, EXTRA_WEIGHTS)}
        best = max(grid, key=lambda w: (grid[w]["contains"], grid[w]["exact_match"]))
        result["settings"][name] = {
            "grid": grid, "best": best, "model_alone": grid["0.0,0.0"],
            "match_alone_first_value": figures(scored, lambda s: pick(s["rows"], chosen, None, model=False)),
            "floors_at_default_weights": {str(f): figures(scored, lambda s, f=f: pick(s["rows"], chosen, f))
                                          for f in FLOORS}}
        print(name, best, grid[best], flush=True)
    result["seconds"], result["load_avg_after"] = round(time.perf_counter() - started, 1), os.getloadavg()
    write_json(args.out, result)


if __name__ == "__main__":
    main()
