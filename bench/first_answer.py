"""Seconds from an empty data dir to the first closed-book and grounded answer, asked through the served page.

    flock /tmp/rag_bench_heavy.lock .venv/bin/python bench/first_answer.py --repeats 3
    flock /tmp/rag_bench_heavy.lock .venv/bin/python bench/first_answer.py --repeats 3 --isa avx2

Each repeat starts `python ui.py --data-dir <new empty folder>` as `make run` does: the page serves, the Factbook
corpus and its dense index build in the background, and the quick experiment is queued behind them. From the
moment the process starts, the script asks a natural question over gradio_client's /ask with no run chosen,
again each second, until both answers come back: the closed-book one and the grounded one with a cited passage.
``--isa avx2`` restricts torch's kernels, oneDNN and MKL to AVX2 (ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA,
MKL_ENABLE_INSTRUCTIONS), as on a CPU without AVX-512 or native bf16. Prints a table and writes
bench/results/first_answer.json (or first_answer_avx2.json).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
QUESTION = "What is the capital of Kenya?"
AVX2_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}  # two-sided


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def text_of(message: dict) -> str:
    content = message.get("content")
    if isinstance(content, list):  # gradio_client returns message content as a list of parts
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return str(content or "")


def answered(left: list[dict], right: list[dict]) -> dict | None:
    """The two answers and the sources, once both are real answers (not a warning or a placeholder)."""
    if len(left) < 2 or len(right) < 2:
        return None
    closed, grounded = text_of(left[1]), text_of(right[1])
    sources = [text_of(m) for m in right[2:] if m.get("metadata")]
    if "closed-book" not in closed or "grounded on" not in grounded or not sources:
        return None
    return {"closed_book": closed, "grounded": grounded, "first_source": sources[0][:300], "sources": len(sources)}


def one_repeat(isa: str, timeout: float) -> dict:
    from gradio_client import Client

    data = Path(tempfile.mkdtemp(prefix="rag_bench_first_answer_"))
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           **(AVX2_ENV if isa == "avx2" else {})}
    log = data.parent / f"{data.name}.log"
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    with open(log, "w") as console:
        server = subprocess.Popen([sys.executable, "ui.py", "--data-dir", str(data), "--port", str(port)],
                                  cwd=REPO, env=env, stdout=console, stderr=subprocess.STDOUT,
                                  start_new_session=True)  # its own group: the index build and run stop with it
    row: dict = {"isa": isa, "load_1min_before": round(load_before, 2)}
    try:
        client = None
        while client is None:
            if server.poll() is not None or time.perf_counter() - started > timeout:
                raise RuntimeError(f"the page did not come up; see {log}")
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
            except Exception:  # not listening yet
                time.sleep(0.5)
        row["page_s"] = round(time.perf_counter() - started, 1)
        attempts, last_error = 0, ""
        while True:
            if time.perf_counter() - started > timeout:
                raise RuntimeError(f"no answer within {timeout:.0f} s (last: {last_error[:200]}); see {log}")
            attempts += 1
            ask_started = time.perf_counter()
            try:
                left, right = client.predict(question=QUESTION, run=None, generation=None, model_folder="", k=1,
                                             retrieval="bm25", temperature=0, max_new_tokens=32, compare=False,
                                             generation_b=None, compare_mode="closed", left=[], right=[],
                                             api_name="/ask")
                found = answered(left, right)
                last_error = "" if found else text_of(right[1]) if len(right) > 1 else "no answer"
            except Exception as exc:  # e.g. no model yet: asked again
                found, last_error = None, str(exc)
            if found:
                break
            time.sleep(1.0)
        row.update(first_answer_s=round(time.perf_counter() - started, 1),
                   ask_s=round(time.perf_counter() - ask_started, 1), attempts=attempts,
                   dense_index_ready=(data / "indexes" / "factbook" / "CURRENT").is_file(), **found)
    finally:
        row["load_1min_after"] = round(os.getloadavg()[0], 2)
        with_group_stopped(server)
        shutil.rmtree(data, ignore_errors=True)
    log.unlink(missing_ok=True)
    return row


def with_group_stopped(server: subprocess.Popen) -> None:
    """SIGTERM to the server's process group (ui.py, its index build and its run), SIGKILL after 20 s."""
    try:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
    except ProcessLookupError:
        pass
    time.sleep(1.0)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGKILL)  # children that outlived their parent


def summary(values: list[float]) -> dict:
    mean = statistics.fmean(values)
    if len(values) < 2:
        return {"mean": round(mean, 1), "ci95": None, "n": len(values)}
    half = T95.get(len(values) - 1, 1.96) * statistics.stdev(values) / math.sqrt(len(values))
    return {"mean": round(mean, 1), "ci95": [round(mean - half, 1), round(mean + half, 1)], "n": len(values),
            "min": min(values), "max": max(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="fresh starts measured (each from an empty data dir)")
    parser.add_argument("--isa", choices=["native", "avx2"], default="native", help="restrict the kernels to AVX2")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds one repeat may take")
    parser.add_argument("--out", type=Path, default=None, help="default bench/results/first_answer[_avx2].json")
    args = parser.parse_args()
    import torch

    rows = []
    for i in range(args.repeats):
        row = one_repeat(args.isa, args.timeout)
        rows.append(row)
        print(f"repeat {i + 1}: page {row['page_s']} s, first answer {row['first_answer_s']} s "
              f"(the answering call {row['ask_s']} s, {row['attempts']} asks), dense index ready: "
              f"{row['dense_index_ready']}, load {row['load_1min_before']} -> {row['load_1min_after']}", flush=True)
    result = {
        "question": QUESTION, "isa": args.isa, "env": AVX2_ENV if args.isa == "avx2" else {},
        "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
        # the hardware's flags; under --isa avx2 the server's kernels are restricted all the same
        "cpu_has_native_bf16": bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()),
        "first_answer_s": summary([r["first_answer_s"] for r in rows]),
        "page_s": summary([r["page_s"] for r in rows]), "repeats": rows,
        "command": "bench/first_answer.py " + " ".join(sys.argv[1:])}
    out = args.out or REPO / "bench" / "results" / f"first_answer{'_avx2' if args.isa == 'avx2' else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    s = result["first_answer_s"]
    print("\n| kernels | page up (s) | first closed-book + grounded answer (s), mean [95% CI] | n |\n"
          f"|---|---|---|---|\n| {args.isa} | {result['page_s']['mean']} | {s['mean']} {s['ci95']} | {s['n']} |\n"
          f"wrote {out}")


if __name__ == "__main__":
    main()
