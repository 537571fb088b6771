"""Which reader reads best: prompt template, free or extractive answers, k and retriever, on the DEV split only.

    flock /tmp/rag_bench_heavy.lock nice -n 5 .venv/bin/python bench/reader_bench.py --limit 60
    .venv/bin/python bench/reader_bench.py --limit 100 --grid "bm25:1,3,5;dense:1,3,5;hybrid:1,3,5"
    .venv/bin/python bench/reader_bench.py --model data/runs/quick-control-s0/gen_0/model \
        --probes data/runs/quick-control-s0/data/probes.jsonl --limit 1000 --templates plain --skip-company \
        --grid "bm25:1,3,5;dense:1,3,5;hybrid:1,3,5" --choose-by exact_match --out bench/results/reader_quick.json

The model is the base SmolLM2-135M-Instruct (``smollm2-135m``), or ``--model`` (a registry name or a model folder:
the ``quick`` preset's generation 0 chooses its own reader this way, by exact match); the probes are a seeded
sample of the Factbook natural-question probes (or ``--probes``) on the dev side of ``rag_bench.eval.splits``
(never the test side). Every configuration is one ``rag_bench.eval.run.evaluate`` call, so the figures are the
registered metrics of results.json.

The search is sequential, to fit 2 shared cores:

1. templates: every registered template, free and extractive, in the ``oracle`` mode (the probe's own chunk is
   the one passage), so the reading is compared apart from retrieval (``--stage1-grounded`` adds grounded at bm25
   k=``--stage1-k``, which the 2-core run left out for time);
2. k and retriever: the winner of step 1 (by oracle ``contains``) at each (retriever, k) of ``--grid``
   (default bm25 at k 1, 3, 5; dense and hybrid at k 3);
3. the company-style set (``corpora/company_qa.jsonl`` over ``corpora/company/``, which no test tunes on), with
   the chosen reader and with today's reader (``plain``, free, k=3 bm25).

Per configuration: grounded ``contains`` over every probe and over the primary probes (answer not in the
question), ``contains`` where a retrieved passage holds the answer (``answer_recall`` 1), recall@k of the gold
chunk, exact match, supported, and the oracle mode's ``contains``. Writes bench/results/reader.json with the CPU ISA
and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from rag_bench.answer import NO_SPAN  # noqa: E402
from rag_bench.config import DEFAULT_READER, EvalConfig  # noqa: E402
from rag_bench.config.eval import READER_ANSWERS  # noqa: E402
from rag_bench.eval.run import evaluate, provenance  # noqa: E402
from rag_bench.eval.splits import probe_split  # noqa: E402
from rag_bench.index.retrieve import make_retriever  # noqa: E402
from rag_bench.index.store import load_index  # noqa: E402
from rag_bench.models import load_model  # noqa: E402
from rag_bench.probes.build import load_probes  # noqa: E402
from rag_bench.prompt import list_templates  # noqa: E402
from rag_bench.records import read_jsonl, write_json  # noqa: E402

OUT = REPO / "bench" / "results" / "reader.json"
COMPANY_DOCS = REPO / "corpora" / "company"
COMPANY_QA = REPO / "corpora" / "company_qa.jsonl"


def scratch_dir(data_dir: str, prefix: str) -> Path:
    """A fresh folder under DATA_DIR/scratch (made when missing) for this run's evaluation outputs."""
    (Path(data_dir) / "scratch").mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=Path(data_dir) / "scratch"))


def cpu_isa() -> list[str]:
    flags = Path("/proc/cpuinfo").read_text().split()
    return sorted({f for f in flags if f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16")})


def dev_probes(path: Path, limit: int, seed: int) -> list:
    """A seeded sample of ``limit`` dev-split probes, in file order."""
    dev = [p for p in load_probes(path) if probe_split(p.id) == "dev"]
    keep = set(random.Random(seed).sample(range(len(dev)), min(limit, len(dev))))
    return [p for i, p in enumerate(dev) if i in keep]


def summarise(results: dict, out_dir: Path, mode: str) -> dict:
    """The reader's figures for one grounded (or oracle) mode of one evaluate call."""
    metrics = results["metrics"][mode]["all"]
    rows = read_jsonl(out_dir / f"samples_{mode}.jsonl")
    held = [r["scores"]["contains"] for r in rows if r["scores"].get("answer_recall") == 1.0]

    def value(name: str) -> float | None:
        return round(metrics[name]["value"], 4) if name in metrics else None

    primary = results["primary"].get(mode, {})
    return {"contains": value("contains"), "exact_match": value("exact_match"), "token_f1": value("token_f1"),
            "contains_primary": round(primary["contains"]["value"], 4) if "contains" in primary else None,
            "contains_when_passage_holds_answer": round(sum(held) / len(held), 4) if held else None,
            "n_passage_holds_answer": len(held), "recall_at_k": value("recall_at_k"),
            "answer_recall": value("answer_recall"), "supported": value("supported"),
            "hit_cap": sum(bool(r.get("hit_cap")) for r in rows),
            "refused": sum(r["prediction"] == NO_SPAN for r in rows), "n": len(rows)}


def answers_of(extractive: bool | str) -> str:
    """free | span | scored (the step-1 and step-2 search knows free and span, ``--compare`` all three)."""
    return extractive if isinstance(extractive, str) else "span" if extractive else "free"


def run_config(lm, probes, retriever, *, template: str, extractive: bool | str, k: int, retrieval: str,
               oracle: bool, scratch: Path, batch_size: int, grounded: bool = True) -> dict:
    answers = answers_of(extractive)
    grounded_mode = READER_ANSWERS[answers]
    oracle_mode = grounded_mode.replace("grounded", "oracle")
    modes = ((grounded_mode,) if grounded else ()) + ((oracle_mode,) if oracle else ())
    cfg = EvalConfig(modes=modes, k=k, retrieval=retrieval, template=template, diversity_prompts=0,
                     batch_size=batch_size, cache_dir=str(scratch / "cache"))
    out_dir = scratch / f"{template}-{answers}-{retrieval}-k{k}"
    started = time.perf_counter()
    results = evaluate(lm, probes, retriever=retriever, cfg=cfg, out_dir=out_dir, progress=False)
    row = {"template": template, "answers": "extractive" if answers == "span" else answers, "retrieval": retrieval,
           "k": k,
           "seconds": round(time.perf_counter() - started, 1), "load_avg_after": os.getloadavg()[0]}
    if grounded:
        row["grounded"] = summarise(results, out_dir, grounded_mode)
    if oracle:
        row["oracle"] = summarise(results, out_dir, oracle_mode)
    row["echo_excluded"] = results["echo_excluded"]["n"]
    print(json.dumps({k: v for k, v in row.items()}), flush=True)
    return row


def company_set(lm, template: str, extractive: bool | str, k: int, scratch: Path, batch_size: int,
                baseline: tuple[str, bool | str, int] = ("plain", False, 3)) -> dict:
    """Grounded accuracy on the company-style QA set (bm25: its index is built here from corpora/company)."""
    from rag_bench.cli import index_dir, ingest
    from rag_bench.index.embedding import load_embedder

    ingest(str(COMPANY_DOCS), data_dir=scratch / "data", name="company", progress=False)
    index = load_index(index_dir(scratch / "data", "company"), embeddings=load_embedder())
    retriever = make_retriever(index.store, mode="bm25", k=k)
    probes = load_probes(COMPANY_QA)
    out = {}
    base_name = f"{baseline[0]}_{answers_of(baseline[1])}_k{baseline[2]}"
    for name, (tpl, extr, kk) in {"chosen": (template, extractive, k), base_name: baseline}.items():
        row = run_config(lm, probes, retriever, template=tpl, extractive=extr, k=kk, retrieval="bm25", oracle=False,
                         scratch=scratch / "company" / name, batch_size=batch_size)
        out[name] = row
    out["questions"], out["documents"] = len(probes), len(list(COMPANY_DOCS.iterdir()))
    return out


def compare(args: argparse.Namespace, lm, started: float, load_before: tuple) -> None:
    """``--compare``: the listed readers on the dev probes, then the company set (the old results kept)."""
    from rag_bench.index.embedding import load_embedder

    previous = json.loads(Path(args.out).read_text()) if Path(args.out).is_file() else None
    probes = dev_probes(Path(args.probes), args.limit, args.seed)
    index = load_index(args.index, embeddings=load_embedder())
    result = {"command": " ".join(sys.argv), "model": args.model, "probes": args.probes, "split": "dev",
              "n_probes": len(probes), "seed": args.seed, "isa": cpu_isa(), "threads": args.threads,
              "load_avg_before": load_before, "default_reader_at_run": DEFAULT_READER.to_dict(), "compare": [],
              **provenance()}
    scratch = scratch_dir(args.data_dir, "reader_bench.")

    def save() -> None:
        result["seconds"] = round(time.perf_counter() - started, 1)
        result["load_avg_after"] = os.getloadavg()
        write_json(args.out, {**result, "previous": previous} if previous else result)

    retrievers: dict = {}
    for part in args.compare.split(";"):
        template, answers, retrieval, k = part.split(",")
        oracle_only = retrieval == "oracle"  # the gold chunk, found in the bm25 retriever's store
        mode = "bm25" if oracle_only else retrieval
        if mode not in retrievers:
            retrievers[mode] = make_retriever(index.store, mode=mode, k=int(k))
        result["compare"].append(run_config(lm, probes, retrievers[mode], template=template, extractive=answers,
                                            k=int(k), retrieval=retrieval, oracle=oracle_only, scratch=scratch,
                                            batch_size=args.batch_size, grounded=not oracle_only))
        save()
    if not args.skip_company:
        (tpl, answers, k), (base_tpl, base_answers, base_k) = (p.split(",") for p in args.company.split(";"))
        result["company"] = company_set(lm, tpl, answers, int(k), scratch, args.batch_size,
                                        baseline=(base_tpl, base_answers, int(base_k)))
    save()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--model", default="smollm2-135m", help="registry name or model folder")
    parser.add_argument("--choose-by", choices=["contains", "exact_match"], default="contains",
                        help="the metric that chooses the template (oracle) and the retriever and k (grounded)")
    parser.add_argument("--probes", default="data/probes/factbook-natural.jsonl", help="natural-question probes")
    parser.add_argument("--index", default="data/indexes/factbook")
    parser.add_argument("--limit", type=int, default=60, help="dev probes (seeded sample)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stage1-k", type=int, default=3)
    parser.add_argument("--stage1-grounded", action="store_true", help="also grounded (bm25) in step 1")
    parser.add_argument("--grid", default="bm25:1,3,5;dense:3;hybrid:3", help="step 2: RETRIEVER:K,K;...")
    parser.add_argument("--templates", default=",".join(list_templates()))
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is faster on 2 shared cores)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--skip-company", action="store_true")
    parser.add_argument("--company-only", default=None, metavar="TEMPLATE,ANSWERS,K",
                        help="only the company set, with this reader (e.g. short,free,3), beside plain,free,3")
    parser.add_argument("--compare", default=None, metavar="TEMPLATE,ANSWERS,RETRIEVER,K;...",
                        help="only these readers on the dev probes (ANSWERS: free | span | scored; RETRIEVER oracle: "
                             "the gold chunk alone), then the company set (--company); old results stay as 'previous'")
    parser.add_argument("--company", default="short,scored,3;short,free,3", metavar="TEMPLATE,ANSWERS,K;BASELINE",
                        help="with --compare: the company set's reader and its baseline (bm25)")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started, load_before = time.perf_counter(), os.getloadavg()
    lm = load_model(args.model, args.data_dir, device="cpu")
    if args.compare:
        compare(args, lm, started, load_before)
        return
    if args.company_only:
        template, answers, k = args.company_only.split(",")
        scratch = scratch_dir(args.data_dir, "reader_company.")
        company = company_set(lm, template, answers == "extractive", int(k), scratch, args.batch_size)
        write_json(args.out, {"command": " ".join(sys.argv), "model": args.model, "isa": cpu_isa(),
                              "threads": args.threads, "load_avg_before": load_before, "company": company,
                              "seconds": round(time.perf_counter() - started, 1), "load_avg_after": os.getloadavg(),
                              **provenance()})
        return
    probes = dev_probes(Path(args.probes), args.limit, args.seed)
    from rag_bench.index.embedding import load_embedder

    index = load_index(args.index, embeddings=load_embedder())
    grid = [(part.split(":")[0], [int(k) for k in part.split(":")[1].split(",")]) for part in args.grid.split(";")]
    result = {"command": " ".join(sys.argv), "model": args.model, "probes": args.probes, "split": "dev",
              "n_probes": len(probes), "seed": args.seed, "isa": cpu_isa(), "threads": args.threads,
              "load_avg_before": load_before, "stage1": [], "stage2": [], "default_reader_at_run":
              DEFAULT_READER.to_dict(), **provenance()}
    scratch = scratch_dir(args.data_dir, "reader_bench.")

    def save() -> None:
        result["seconds"] = round(time.perf_counter() - started, 1)
        result["load_avg_after"] = os.getloadavg()
        write_json(args.out, result)

    bm25 = make_retriever(index.store, mode="bm25", k=args.stage1_k)
    for template in args.templates.split(","):
        for extractive in (False, True):
            result["stage1"].append(run_config(lm, probes, bm25, template=template, extractive=extractive,
                                               k=args.stage1_k, retrieval="bm25", oracle=True, scratch=scratch,
                                               batch_size=args.batch_size, grounded=args.stage1_grounded))
            save()
    second = "exact_match" if args.choose_by == "contains" else "contains"
    best = max(result["stage1"], key=lambda r: (r["oracle"][args.choose_by], r["oracle"][second]))
    result["stage1_winner"] = {"template": best["template"], "answers": best["answers"]}
    extractive = best["answers"] == "extractive"
    for retrieval, ks in grid:
        retriever = make_retriever(index.store, mode=retrieval, k=max(ks))
        for k in ks:
            result["stage2"].append(run_config(lm, probes, retriever, template=best["template"],
                                               extractive=extractive, k=k, retrieval=retrieval, oracle=False,
                                               scratch=scratch, batch_size=args.batch_size))
            save()
    chosen = max(result["stage2"], key=lambda r: (r["grounded"][args.choose_by], -r["k"]))
    result["chosen"] = {key: chosen[key] for key in ("template", "answers", "retrieval", "k")}
    if not args.skip_company:
        result["company"] = company_set(lm, chosen["template"], extractive, chosen["k"], scratch, args.batch_size)
    save()
    print(json.dumps(result["chosen"]))


if __name__ == "__main__":
    main()
