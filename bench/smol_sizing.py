"""Estimated run time of the presets on a pretrained base, from measured rates (bench/smol_rates.py).

    .venv/bin/python bench/smol_sizing.py                           # reads bench/results/smol_rates.json
    .venv/bin/python bench/smol_sizing.py --rates /tmp/rates.json --preset smol --preset paper

For each preset it adds up what the run does, step by step as ``rag_bench.collapse.steps`` plans it: generation 0's
fine-tuning, every later generation's fine-tuning (``next_train.max_steps``, or ``next_epochs`` passes over the pool
budget ``pool_tokens``, else the human text), every write (the pool budget in continuation tokens, plus the prompts'
prefill; the ``fresh`` control writes nothing), and every evaluation (closed-book
and grounded prompts of the probe sample, held-out perplexity, diversity continuations), plus loading and saving
the model per trained generation. It does so for two machines: this one, at the rates measured, and the pilot's
2-core AVX2 machine without native bf16 (issue 12: fine-tuning 80-95 tokens/s in fp32, generation 79 new tokens/s
at batch 32, prefill 288 tokens/s), so that a preset can be sized for the slower kind of machine. Prints a table and
writes bench/results/smol_sizing.json.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rag_bench.collapse.strategies import Strategy  # noqa: E402
from rag_bench.config import CollapseConfig, collapse_preset  # noqa: E402
from rag_bench.config.presets_pretrained import PROSE_TOKENS  # noqa: E402
from rag_bench.records import read_json, write_json  # noqa: E402

PROSE_DOCUMENTS = 2560  # training-split prose documents of the Factbook (PROSE_TOKENS over them: 176 tokens each)
CHAT_PROMPT_TOKENS = 35  # a closed-book question through SmolLM2's chat template (its default system turn included)
PASSAGE_TOKENS = 135  # one 500-character Factbook chunk
ANSWER_TOKENS = 12  # new tokens of an answer before the end-of-turn token, on average (at most max_new_tokens)
PILOT = {"machine": "pilot: 2-core AVX2, no native bf16 (issue 12)", "train_tokens_per_s": 85.0,
         "write_tokens_per_s": 79.0, "forward_tokens_per_s": 288.0, "model_overhead_s": 30.0}


def measured(rates: dict) -> dict:
    """This machine's rates: the fastest full fine-tuning setting the code would pick, sampling, prefill."""
    native = rates["machine"]["bf16_native"]
    full = [t for t in rates["training"] if t["lora_rank"] == 0 and t["bf16"] == native]
    train = full[0]
    grounded = rates["answering"]["grounded"]
    return {"machine": f"this machine ({rates['machine']['cpu_capability']}, bf16 native: {native}, load "
                       f"{train['load']})",
            "train_tokens_per_s": train["tokens_per_s"],
            "write_tokens_per_s": rates["writing"]["sample_batch32"]["new_tokens_per_s"],
            "beam_over_sample": rates["writing"]["beam5_batch8"]["new_tokens_per_s"]
            / rates["writing"]["sample_batch32"]["new_tokens_per_s"],
            "forward_tokens_per_s": grounded["prompt_tokens_mean"] * grounded["prompts_per_s"],
            "model_overhead_s": train["wall_s_with_load_and_save"] - (train["steps_timed"] + 1) * train["step_s"]}


def human_tokens(cfg: CollapseConfig) -> float:
    docs = cfg.human_documents or PROSE_DOCUMENTS
    return docs * PROSE_TOKENS / PROSE_DOCUMENTS


def estimate(cfg: CollapseConfig, rate: dict, *, beam_over_sample: float, probes: int) -> dict:
    """Seconds per part of a whole run of ``cfg`` at ``rate``."""
    human = human_tokens(cfg)
    pool = cfg.pool_tokens or human
    block = cfg.train.batch_size * cfg.train.model.n_positions
    strategies, later = len(cfg.strategies), cfg.generations - 1
    writing = sum(Strategy.parse(s).writes for s in cfg.strategies)  # the fresh control writes nothing
    gen0_tokens = cfg.train.max_steps * block
    next_block = cfg.next_train.batch_size * cfg.next_train.model.n_positions
    next_steps = math.ceil(cfg.next_epochs * pool / next_block) if cfg.next_epochs > 0 else cfg.next_train.max_steps
    next_tokens = next_steps * next_block
    writes = ((1 if writing else 0) + writing * (later - 1)) if later else 0
    write_rate = rate["write_tokens_per_s"] * (1.0 if cfg.decode.do_sample else beam_over_sample)
    prompts_per_write = pool / cfg.decode.max_new_tokens
    evals = 1 + strategies * later
    n = min(cfg.eval.limit or probes, probes)
    answer_s = n * ((2 * CHAT_PROMPT_TOKENS + PASSAGE_TOKENS) / rate["forward_tokens_per_s"]
                    + 2 * min(ANSWER_TOKENS, cfg.eval.decode.max_new_tokens) / rate["write_tokens_per_s"])
    heldout = (cfg.eval.heldout_max_texts or 131) * PROSE_TOKENS / PROSE_DOCUMENTS / rate["forward_tokens_per_s"]
    diversity = cfg.eval.diversity_prompts * len(cfg.eval.modes) * cfg.eval.continuation_decode.max_new_tokens / \
        rate["write_tokens_per_s"]
    parts = {"train_gen0_s": gen0_tokens / rate["train_tokens_per_s"],
             "train_later_s": strategies * later * next_tokens / rate["train_tokens_per_s"],
             "write_s": writes * (pool / write_rate + prompts_per_write * cfg.prompt_tokens
                                  / rate["forward_tokens_per_s"]),
             "eval_s": evals * (answer_s + heldout + diversity),
             "buckets_s": n * CHAT_PROMPT_TOKENS / rate["forward_tokens_per_s"],
             "load_save_s": (1 + strategies * later) * rate["model_overhead_s"]}
    return {"human_tokens": round(human), "pool_tokens": round(pool), "strategies": list(cfg.strategies),
            "gen0_train_tokens": gen0_tokens, "later_train_tokens": next_tokens,
            "writes": writes, "evaluations": evals, "probes": n,
            **{k: round(v) for k, v in parts.items()}, "total_min": round(sum(parts.values()) / 60, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=Path, default=REPO / "bench" / "results" / "smol_rates.json")
    parser.add_argument("--preset", action="append", default=None, help="smol | paper | paper-1epoch (repeatable)")
    parser.add_argument("--probes", type=int, default=1500, help="probes in the natural probe file")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "smol_sizing.json")
    args = parser.parse_args()
    rates = read_json(args.rates)
    here = measured(rates)
    out = {"rates_file": str(args.rates), "machines": {"here": here, "pilot": PILOT}, "presets": {}}
    print(f"{'preset':<14}{'machine':<8}{'gen0':>7}{'later':>7}{'write':>7}{'eval':>7}{'other':>7}{'total min':>11}")
    for name in args.preset or ["smol", "paper", "paper-1epoch"]:
        cfg = collapse_preset(name)
        out["presets"][name] = {}
        for key, rate in (("here", here), ("pilot", PILOT)):
            row = estimate(cfg, rate, beam_over_sample=here["beam_over_sample"], probes=args.probes)
            out["presets"][name][key] = row
            other = row["buckets_s"] + row["load_save_s"]
            print(f"{name:<14}{key:<8}{row['train_gen0_s']:>7}{row['train_later_s']:>7}{row['write_s']:>7}"
                  f"{row['eval_s']:>7}{other:>7}{row['total_min']:>11}")
    write_json(args.out, out)
    print(f"(seconds per part; {here['machine']}; pilot rates from issue 12)\nwrote {args.out}")


if __name__ == "__main__":
    main()
