"""Chat under load: 8 questions asked at once against the served page, against one question alone, in one run.

    flock /tmp/rag_bench_heavy.lock nice -n 5 .venv/bin/python bench/chat_load.py          # SmolLM2, Factbook bm25
    .venv/bin/python bench/chat_load.py --clients 8 --max-new-tokens 32 --no-serialized

The page is ``ui.build_demo`` over DATA_DIR, launched in this process on a free port with ``--concurrency`` at
least ``--clients`` (the chat's default of 2 would queue the questions in Gradio before they reach the model);
every question goes through ``gradio_client`` to ``/ask``, the Chat tab's event (closed-book, then grounded on
the corpus's bm25 index; the default model, SmolLM2-135M-Instruct; greedy). Phases, in this order:

1. one question to warm up (loads the model and the index);
2. **alone**: the ``--clients`` questions one after another (each one's latency is a single question's);
3. **at once**: the same questions from ``--clients`` threads released together (``rag_bench.app.batching``
   puts what arrives together into shared batches);
4. **serialized** (unless ``--no-serialized``): the same at once with batches of one (``MAX_BATCH = 1``), as
   the chat served them before, one generation call per question.

Reports each phase's latencies, the p95 (nearest rank) of the concurrent phases over the median single
latency (target: at most 2), the batch sizes the queue formed, and whether the answers equal those asked one by
one (the answer texts without the timing footers). Writes bench/results/chat_load.json with the ISA and load.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import math
import os
import re
import socket
import statistics
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from decode_bench import isa
from train_bench import REPO, load_average, machine_info

import rag_bench.app.batching as batching
from rag_bench.config import READER_K
from rag_bench.records import write_json

COUNTRIES = ["Algeria", "France", "Japan", "Peru", "Kenya", "Norway", "Chile", "Egypt", "India", "Spain"]
FOOTER = re.compile(r"<sub>.*?</sub>", re.S)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answer_texts(result) -> list[str]:
    """Every assistant message of both panels, without the footers (they hold the seconds)."""
    texts = []
    for history in result:
        for message in history:
            if message["role"] == "assistant":
                content = message["content"]
                text = content[0]["text"] if isinstance(content, list) else content
                texts.append(FOOTER.sub("", text).strip())
    return texts


def ask(url: str, question: str, args) -> tuple[float, list[str]]:
    from gradio_client import Client

    client = Client(url, verbose=False)
    started = time.perf_counter()
    result = client.predict(question=question, run=None, generation=None, model_folder="",
                            k=READER_K, retrieval="bm25", temperature=0, max_new_tokens=args.max_new_tokens,
                            compare=False, generation_b=None, compare_mode="closed", left=[], right=[],
                            api_name="/ask")
    return time.perf_counter() - started, answer_texts(result)


def at_once(url: str, questions: list[str], args) -> list[tuple[float, list[str]]]:
    start = threading.Barrier(len(questions))

    def one(question: str) -> tuple[float, list[str]]:
        start.wait()
        return ask(url, question, args)

    with concurrent.futures.ThreadPoolExecutor(len(questions)) as pool:
        return list(pool.map(one, questions))


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def phase(latencies: list[float], answers: list[list[str]], alone: list[list[str]] | None, single: float,
          batch_sizes: list[int]) -> dict:
    out = {"latencies_s": [round(x, 2) for x in latencies], "p95_s": round(p95(latencies), 2),
           "median_s": round(statistics.median(latencies), 2), "batch_sizes": batch_sizes, "load": load_average()}
    if single:
        out["p95_over_single"] = round(p95(latencies) / single, 2)
    if alone is not None:
        out["same_answers_as_alone"] = sum(a == b for a, b in zip(answers, alone, strict=True))
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=str(REPO / "data"), help="holds the corpus's index and the model")
    parser.add_argument("--corpus", default="factbook")
    parser.add_argument("--clients", type=int, default=8, help="questions asked at once")
    parser.add_argument("--max-new-tokens", type=int, default=32, help="the chat's default")
    parser.add_argument("--no-serialized", action="store_true", help="skip the batches-of-one phase")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "chat_load.json")
    args = parser.parse_args(argv)
    import sys

    sys.path.insert(0, str(REPO))
    import ui

    load_start = load_average()
    demo = ui.build_demo(args.data_dir, args.corpus, concurrency=max(8, args.clients))
    port = free_port()
    ui.launch(demo, port=port, prevent_thread_lock=True, quiet=True)
    url = f"http://127.0.0.1:{port}/"
    questions = [f"What is the capital of {c}?" for c in COUNTRIES][:args.clients]
    try:
        warm = ask(url, "What is the capital of Italy?", args)[0]
        print(f"warm-up question: {warm:.1f} s", flush=True)
        alone = [ask(url, q, args) for q in questions]
        single = statistics.median(t for t, _ in alone)
        print(f"alone: {[round(t, 1) for t, _ in alone]} s, median {single:.1f} s", flush=True)
        phases = {"alone": phase([t for t, _ in alone], [a for _, a in alone], None, 0.0, [])}
        shared = [batching.batched(*demo.rag_app.lm(m)) for m in _model_dirs(demo)]
        for model in shared:
            model.batch_sizes.clear()
        together = at_once(url, questions, args)
        phases["at_once"] = phase([t for t, _ in together], [a for _, a in together], [a for _, a in alone], single,
                                  [s for m in shared for s in m.batch_sizes])
        print(f"at once: {phases['at_once']}", flush=True)
        if not args.no_serialized:
            saved = [m.max_batch for m in shared]
            for model in shared:
                model.max_batch = 1
                model.batch_sizes.clear()
            serial = at_once(url, questions, args)
            for model, size in zip(shared, saved, strict=True):
                model.max_batch = size
            phases["serialized"] = phase([t for t, _ in serial], [a for _, a in serial], [a for _, a in alone],
                                         single, [s for m in shared for s in m.batch_sizes])
            print(f"serialized: {phases['serialized']}", flush=True)
    finally:
        demo.rag_runner.shutdown()
        demo.close()
    report = {"clients": args.clients, "questions": questions, "corpus": args.corpus, "retrieval": "bm25",
              "model": "smollm2-135m (the chat's default)", "max_new_tokens": args.max_new_tokens,
              "decoding": "greedy", "single_median_s": round(single, 2), "warm_up_s": round(warm, 2),
              "phases": phases, "target_p95_over_single": 2.0, "isa": isa(), "load_start": load_start,
              "load_end": load_average(), "machine": machine_info()}
    write_json(args.out, report)
    print(f"\n== chat load: {args.clients} questions, single {single:.1f} s (median), load {load_start} -> "
          f"{report['load_end']}, ISA {' '.join(report['isa'])} ==")
    for name, p in phases.items():
        if name != "alone":
            print(f"{name:<12} p95 {p['p95_s']:>6} s = {p['p95_over_single']}x single, batches {p['batch_sizes']}, "
                  f"same answers {p['same_answers_as_alone']}/{args.clients}")
    print(f"wrote {args.out}")
    return report


def _model_dirs(demo) -> list[Path]:
    """The model folders the app has loaded (the warm-up question loaded the default one)."""
    return [Path(key.rsplit("@", 1)[0]) for key in demo.rag_app._models]


if __name__ == "__main__":
    main()
