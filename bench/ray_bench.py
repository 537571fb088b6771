"""Ray on one machine: the quick preset's branch phase on two Ray workers against the sequential run, and Ray Data
(writing and answering probes) over one actor against calling the model directly.

    mkdir -p data && cp -r /work/main/data/{corpora,indexes,probes} data/ && rag-bench prepare --data-dir data
    flock /tmp/rag_bench_heavy.lock .venv/bin/python bench/ray_bench.py --sections branches             # ~9 min
    flock /tmp/rag_bench_heavy.lock .venv/bin/python bench/ray_bench.py --sections answering,generation \
        --answer-probes 3009 --gen-parts 6                                                              # ~9 min

On a reduced ``quick`` (its first ``--countries`` countries, ``--gen0-steps`` optimizer steps for generation 0
instead of 1100, ``--next-steps`` for later ones instead of 16, ``--eval-limit`` probes and 8 diversity prompts per
evaluation, ``--generations``; what the models learn does not change what a step costs), generation 0 is trained,
evaluated and written once in RUN/seq; then each ``--sections`` part runs in this process:
1. branches: ``--repeats`` times, in alternating order, a fresh copy of RUN/seq's generation 0 resumes with
   ``run_collapse`` sequentially (``threads=2``, both cores; the branches one after the other) and another on a
   local Ray cluster of 2 CPUs (one task per branch, one thread each; cluster already started). Speed-up =
   sequential wall time / Ray wall time; the pools must be identical;
2. generation: generation 0's writer (``--gen-parts`` parts of 512 prompts, repeated past the supply; one thread)
   writes directly with ``write_synthetic`` and through ``write_parts`` over one Ray Data actor (actor start and
   model load included); the two files must be identical. Ratio = Ray Data / direct;
3. answering: ``--answer-probes`` probes in both modes, ``--repeats`` times in alternating order, with
   ``eval.run.answer_probes`` and over one Ray Data actor (``distributed.answer.answer_on_ray``: passages retrieved
   once in the driver for both), with the actor's start-up split into Ray's part, imports, model load and
   delivery, and its answering time and CPU time against the direct path's. Answers must be identical.
Ratios get a 95% t-interval over the repeats. Prints a table and merges the parts it ran into
bench/results/ray.json (each stamped with its command, commit, time and load averages).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch
from train_bench import REPO, load_average, machine_info

from rag_bench.collapse.data import stable_seed
from rag_bench.collapse.run import run_collapse
from rag_bench.collapse.synthetic import PART_PROMPTS, prompt_blocks, write_synthetic
from rag_bench.config import collapse_preset
from rag_bench.distributed.answer import answer_on_ray
from rag_bench.distributed.cluster import connect
from rag_bench.distributed.generate import write_parts
from rag_bench.eval.inputs import ContextRetriever, load_eval_probes, retrieve_contexts
from rag_bench.eval.run import answer_probes
from rag_bench.index.retrieve import make_retriever
from rag_bench.index.store import load_index
from rag_bench.lm import LM
from rag_bench.records import read_json, read_jsonl, sha256_file, write_json


def branch_seconds(run: Path) -> dict[str, float]:
    """Seconds of every finished step of generations >= 1, by ``<strategy>/gen_<k>/<step>``."""
    out = {}
    for manifest in sorted(run.glob("*/gen_*/manifest.json")):
        for key, seconds in read_json(manifest).get("timings", {}).items():
            out[f"{manifest.parent.relative_to(run)}/{key.removesuffix('_s')}"] = seconds
    return out


def fresh_copy(seq: Path, target: Path) -> Path:
    """A run folder holding ``seq``'s generation 0, inputs and config only: running it runs the branches."""
    target.mkdir(parents=True)
    for name in ("gen_0", "data", "cache", "config.json"):
        source = seq / name
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, target / name)
    return target


def bench_branches(cfg, workdir: Path, data_dir: Path, address: str, repeats: int) -> dict:
    """The branch phase (every step after generation 0) sequentially (2 threads) and on Ray (2 one-thread tasks),
    ``repeats`` times in alternating order, each from a fresh copy of the same generation 0; wall time of the
    ``run_collapse`` call that resumes after generation 0 (inputs and models loaded on both sides)."""
    seq = workdir / "seq"
    run_collapse(cfg.replace(threads=2), run_dir=seq, data_dir=data_dir, echo=False)  # generation 0 (and a warm-up)
    connect(address, num_cpus=2)
    rows = []
    for repeat in range(repeats):
        row: dict = {"load_average_before": load_average()}
        runs = {}
        for path in (("sequential", "ray") if repeat % 2 == 0 else ("ray", "sequential")):
            run = fresh_copy(seq, workdir / f"{path}{repeat}")
            started = time.perf_counter()
            if path == "sequential":
                run_collapse(cfg.replace(threads=2), run_dir=run, data_dir=data_dir, echo=False)
            else:
                run_collapse(cfg.replace(threads=0), run_dir=run, data_dir=data_dir, echo=False, ray_address=address)
            row[f"{path}_s"] = round(time.perf_counter() - started, 2)
            row[f"{path}_steps_s"] = branch_seconds(run)
            runs[path] = run
        # each branch task's fixed cost, from its log line (rag_bench.distributed.branches.run_branch)
        starts = re.findall(r"started ([\d.]+) s after it was submitted; imports and inputs took ([\d.]+) s",
                            (runs["ray"] / "log.txt").read_text())
        row.update(task_start_s=[float(a) for a, _ in starts], task_imports_inputs_s=[float(b) for _, b in starts],
                   speedup=round(row["sequential_s"] / row["ray_s"], 3),
                   pools_identical=all(sha256_file(runs["sequential"] / p) == sha256_file(runs["ray"] / p)
                                       for p in ("replace/gen_1/pool.jsonl", "accumulate/gen_1/pool.jsonl")))
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if not k.endswith("steps_s")}))
    return {"speedup": mean_interval([r["speedup"] for r in rows]),
            "sequential_s": mean_interval([r["sequential_s"] for r in rows]),
            "ray_s": mean_interval([r["ray_s"] for r in rows]),
            "pools_identical": all(r["pools_identical"] for r in rows), "repeats": rows}


def bench_generation(cfg, run: Path, workdir: Path, address: str, parts: int) -> dict:
    torch.set_num_threads(1)
    model = run / "gen_0" / "model"
    lm = LM.load(model)
    texts = [r["contents"] for r in read_jsonl(run / "data" / "human_train.jsonl")]
    prompts = prompt_blocks(texts, lm.tokenizer, prompt_tokens=cfg.prompt_tokens, new_tokens=cfg.decode.max_new_tokens)
    prompts = (prompts * -(-parts * PART_PROMPTS // len(prompts)))[:parts * PART_PROMPTS]  # repeated past the supply
    seed = stable_seed(cfg.seed, "bench", 0)
    load_before = load_average()
    started = time.perf_counter()
    write_synthetic(lm, prompts, cfg.decode, out=workdir / "direct.jsonl", generation=0, seed=seed)
    direct = time.perf_counter() - started
    load_middle = load_average()
    started = time.perf_counter()
    done = write_parts(model, prompts, cfg.decode, out=workdir / "ray.jsonl", generation=0, seed=seed,
                       address=address, threads=1, actors=1)
    write_synthetic(lm, prompts, cfg.decode, out=workdir / "ray.jsonl", generation=0, seed=seed)  # joins the parts
    via_ray = time.perf_counter() - started
    return {"prompts": len(prompts), "parts": done["parts"], "new_tokens": len(prompts) * cfg.decode.max_new_tokens,
            "direct_s": round(direct, 1), "ray_data_one_actor_s": round(via_ray, 1),
            "ratio": round(via_ray / direct, 3),
            "identical_text": sha256_file(workdir / "direct.jsonl") == sha256_file(workdir / "ray.jsonl"),
            "load_average": {"before_direct": load_before, "before_ray": load_middle, "after": load_average()}}


def mean_interval(values: list[float]) -> dict:
    """Mean and its 95% t-interval over repeats (Student's t, n - 1 degrees of freedom)."""
    from scipy import stats

    n, mean = len(values), sum(values) / len(values)
    if n < 2:
        return {"mean": round(mean, 3), "ci95": None, "n": n, "test": "t-interval over repeats"}
    sd = (sum((v - mean) ** 2 for v in values) / (n - 1)) ** 0.5
    half = stats.t.ppf(0.975, n - 1) * sd / n ** 0.5
    return {"mean": round(mean, 3), "ci95": [round(float(mean - half), 3), round(float(mean + half), 3)], "n": n,
            "test": "t-interval over repeats"}


def cpu_since(before: resource.struct_rusage) -> float:
    """CPU seconds (user + system, every thread) this process used since ``before``."""
    after = resource.getrusage(resource.RUSAGE_SELF)
    return round(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, 2)


def bench_answering(cfg, run: Path, data_dir: Path, address: str, probes: int, repeats: int) -> dict:
    """Answering ``probes`` probes in both modes directly and over one Ray Data actor (1 thread each), ``repeats``
    times in alternating order; every Ray run starts its actor afresh, so each pays the start-up again."""
    torch.set_num_threads(1)
    started = time.perf_counter()
    lm = LM.load(run / "gen_0" / "model")
    load_s = time.perf_counter() - started
    ecfg = cfg.eval.replace(limit=probes)
    selected, _ = load_eval_probes(data_dir / "probes" / "factbook-factbook.jsonl", limit=probes, seed=0)
    prompts = [p.prompt for p in selected]
    retriever = make_retriever(load_index(data_dir / "indexes" / "factbook").store, mode=ecfg.retrieval, k=ecfg.k)
    contexts, _ = retrieve_contexts(retriever, prompts, k=ecfg.k)  # in the driver, before either path (as evaluate)
    served = ContextRetriever(prompts, contexts)
    rows = []
    for repeat in range(repeats):
        row: dict = {"load_average_before": load_average()}
        for path in (("direct", "ray") if repeat % 2 == 0 else ("ray", "direct")):
            tick, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
            if path == "direct":
                direct = {mode: answer_probes(lm, selected, mode, ecfg, retriever=served, progress=False)
                          for mode in ecfg.modes}
                row["direct_s"] = round(time.perf_counter() - tick, 2)
                row["direct_cpu_s"] = cpu_since(cpu)
            else:
                done = answer_on_ray(run / "gen_0" / "model", selected, ecfg, served, address=address, threads=1,
                                     actors=1)
                row["ray_driver_cpu_s"] = cpu_since(cpu)  # Ray Data's executor and the driver's share of it
                startup = done["startup"][0]
                row.update(ray_s=round(done["seconds"], 2), first_chunk_s=round(done["first_chunk_s"], 2),
                           actor_import_s=round(startup["import_s"], 2), actor_load_s=round(startup["load_s"], 2),
                           first_chunk_answer_s=round(done["first_chunk_answer_s"], 2),
                           actor_answer_s=round(done["answer_s"], 2), actor_answer_cpu_s=round(done["answer_cpu_s"], 2),
                           actor_torch_threads=startup["torch_threads"],
                           actor_omp_num_threads=startup["omp_num_threads"],
                           ray_startup_s=round(done["actor_began_s"], 2),
                           first_delivery_s=round(done["first_delivery_s"], 2))
        row["identical_answers"] = done["answers"] == direct
        row["ratio"] = round(row["ray_s"] / row["direct_s"], 3)
        row["ratio_after_start"] = round((row["ray_s"] - row["first_chunk_s"]) / row["direct_s"]
                                         * done["chunks"] / max(1, done["chunks"] - 1), 3)
        rows.append(row)
        print(json.dumps(row))
    return {"probes": len(selected), "modes": list(ecfg.modes), "batch_size": ecfg.batch_size,
            "chunks": done["chunks"], "direct_model_load_s": round(load_s, 2), "repeats": rows,
            "ratio": mean_interval([r["ratio"] for r in rows]),
            "ratio_after_start": mean_interval([r["ratio_after_start"] for r in rows]),
            "compute_ratio": mean_interval([r["actor_answer_s"] / r["direct_s"] for r in rows]),
            "compute_cpu_ratio": mean_interval([r["actor_answer_cpu_s"] / r["direct_cpu_s"] for r in rows]),
            "ray_driver_cpu_s": mean_interval([r["ray_driver_cpu_s"] for r in rows]),
            "first_chunk_s": mean_interval([r["first_chunk_s"] for r in rows]),
            "fixed_s": {key: mean_interval([r[key] for r in rows])
                        for key in ("ray_startup_s", "actor_import_s", "actor_load_s", "first_delivery_s")},
            "identical_answers": all(r["identical_answers"] for r in rows)}


def projection(branch_phase: dict, workers: tuple[int, ...] = (1, 2, 4, 8, 16, 32)) -> dict:
    """Branch-phase speed-up of ``full`` and ``paper`` (B branches per seed) on N workers, from the measured one.

    B branches on N workers run in ceil(B / N) waves; each worker runs at the efficiency measured here
    (median speed-up of 2 workers / 2), which is an assumption for nodes that do not share memory bandwidth.
    """
    # the median of the repeats: one repeat whose 2-thread sequential run stalled under other jobs' load measured
    # 11x, which the mean would carry into every projection
    repeats = branch_phase.get("repeats")
    speedup = statistics.median(r["speedup"] for r in repeats) if repeats else branch_phase["speedup"]
    efficiency = min(1.0, speedup / 2)
    out: dict = {"efficiency_per_worker": round(efficiency, 3), "presets": {}}
    for name in ("full", "paper"):
        branches = len(collapse_preset(name).strategies)
        out["presets"][name] = {"branches_per_seed": branches, "speedup_by_workers": {
            n: round(efficiency * branches / -(-branches // n) if n > 1 else 1.0, 2) for n in workers}}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=REPO / "data", help="holds the Factbook corpus, index, probes")
    parser.add_argument("--gen0-steps", type=int, default=4, help="generation 0's optimizer steps (quick: 1100)")
    parser.add_argument("--gen-parts", type=int, default=1, help="parts (512 prompts each) of the timed writer")
    parser.add_argument("--countries", type=int, default=4, help="the first N of quick's 16 countries")
    parser.add_argument("--next-steps", type=int, default=4, help="steps of each later generation (quick: 16)")
    parser.add_argument("--eval-limit", type=int, default=60, help="probes per evaluation (quick: all of the run's)")
    parser.add_argument("--generations", type=int, default=2, help="generations per branch, generation 0 included")
    parser.add_argument("--answer-probes", type=int, default=1024, help="probes answered in each mode, timed")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of the answering comparison")
    parser.add_argument("--sections", default="branches,generation,answering",
                        help="which parts to run; the others keep their figures in --out")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "ray.json")
    parser.add_argument("--project", action="store_true", help="only (re)write the projection of --out's figures")
    args = parser.parse_args()
    if args.project:
        result = read_json(args.out)
        result["projection"] = projection(result["branch_phase"])
        write_json(args.out, result)
        print(json.dumps(result["projection"], indent=1))
        return
    quick = collapse_preset("quick")
    steps = args.gen0_steps
    cfg = quick.replace(generations=args.generations, report=False, countries=quick.countries[:args.countries],
                        next_train=quick.next_train.replace(max_steps=args.next_steps, eval_every=args.next_steps,
                                                            save_every=args.next_steps),
                        eval=quick.eval.replace(limit=args.eval_limit, diversity_prompts=8),
                        train=quick.train.replace(max_steps=steps, copy_warmup_steps=min(quick.train.copy_warmup_steps,
                                                                                           steps // 2),
                                                  eval_every=steps, save_every=steps))
    sections = set(args.sections.split(","))
    result = read_json(args.out) if args.out.is_file() else {"bench": "ray"}
    stamp = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "measured": time.strftime("%Y-%m-%dT%H:%MZ",
             time.gmtime()), "git_commit": machine_info()["git_commit"]}
    with tempfile.TemporaryDirectory(prefix="ray_bench_") as tmp:
        workdir = Path(tmp)
        data_dir = workdir / "data"  # the corpus, index and probes are shared; generation 0's cache is not
        data_dir.mkdir()
        for name in ("corpora", "indexes", "probes"):
            (data_dir / name).symlink_to((args.data_dir / name).resolve())
        address = "local"
        if "branches" in sections:
            result["branch_phase"] = {**bench_branches(cfg, workdir, data_dir, address, args.repeats), **stamp}
            result["projection"] = projection(result["branch_phase"])
        else:  # generation 0 only, for the other parts
            run_collapse(cfg.replace(threads=2, generations=1), run_dir=workdir / "seq", data_dir=data_dir, echo=False)
        connect(address, num_cpus=2)
        if "generation" in sections:
            result["generation"] = {**bench_generation(cfg, workdir / "seq", workdir, address, args.gen_parts), **stamp}
        if "answering" in sections:
            result["answering"] = {**bench_answering(cfg, workdir / "seq", data_dir, address, args.answer_probes,
                                                     args.repeats), **stamp}
    result.update(command=stamp["command"], machine=machine_info(),
                  config={"preset": "quick", "gen0_steps": steps, "generations": args.generations,
                          "countries": list(cfg.countries), "next_steps": args.next_steps,
                          "eval_limit": args.eval_limit, "diversity_prompts": 8, "strategies": list(cfg.strategies),
                          "ray_cluster_cpus": 2})
    write_json(args.out, result)
    report(result, cfg, args)


def report(result: dict, cfg, args) -> None:
    branches, generation, answering = (result.get(k) for k in ("branch_phase", "generation", "answering"))
    if branches:
        print(f"\nbranch phase of quick ({args.generations} generations, {' + '.join(cfg.strategies)}), 2 cores:")
        print(f"  sequential (2 threads)      {branches['sequential_s']['mean']:8.1f} s")
        print(f"  Ray, 2 workers x 1 thread   {branches['ray_s']['mean']:8.1f} s   speed-up "
              f"{branches['speedup']['mean']:.2f}x {branches['speedup']['ci95']} ({len(branches['repeats'])} repeats)")
    if generation:
        print(f"generation 0's writer ({generation['prompts']} prompts, {generation['parts']} parts, 1 thread):")
        print(f"  direct                      {generation['direct_s']:8.1f} s")
        print(f"  Ray Data, one actor         {generation['ray_data_one_actor_s']:8.1f} s   "
              f"ratio {generation['ratio']:.3f}   identical text: {generation['identical_text']}")
    if answering:
        ratio, after, fixed = answering["ratio"], answering["ratio_after_start"], answering["fixed_s"]
        print(f"answering {answering['probes']} probes in {' + '.join(answering['modes'])} (1 thread, "
              f"{len(answering['repeats'])} repeats, mean [95% t-interval]):")
        print(f"  Ray Data / direct           {ratio['mean']:.3f} {ratio['ci95']}   identical answers: "
              f"{answering['identical_answers']}")
        print(f"  after the first chunk       {after['mean']:.3f} {after['ci95']}")
        print(f"  answering inside the actor  {answering['compute_ratio']['mean']:.3f} of direct's wall time, "
              f"{answering['compute_cpu_ratio']['mean']:.3f} of its CPU time; the driver used "
              f"{answering['ray_driver_cpu_s']['mean']:.1f} CPU s meanwhile")
        print(f"  time to the first chunk     {answering['first_chunk_s']['mean']:.1f} s: Ray "
              f"{fixed['ray_startup_s']['mean']:.1f} s, imports {fixed['actor_import_s']['mean']:.1f} s, "
              f"model load {fixed['actor_load_s']['mean']:.1f} s, the chunk, its delivery "
              f"{fixed['first_delivery_s']['mean']:.1f} s")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
