"""Every answering mode of one model in one pass: ``evaluate``'s default ``answer_with``.

    from rag_bench.eval.one_pass import one_pass_answerer
    evaluate(lm, probes, retriever=retriever, cfg=cfg, out_dir=out, answer_with=one_pass_answerer(lm))

The probes go in chunks (a few batches each, so the progress bar moves); each chunk's prompts of every free mode
(closed, grounded, oracle, ...) are decoded by one ``rag_bench.answer.answer_modes`` call, so
``LM.generate_detailed`` sorts them all by length: short closed-book prompts fill batches together, long grounded
ones together, and no mode ends in a half-empty batch. ``evaluate`` gives the oracle modes their probes and gold
passages (``oracle=``), so a generation is answered in every mode in one pass. The answers are those of
answering mode by mode in fp32 (not always under bf16 autocast: docs/scale.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from tqdm.auto import tqdm

from rag_bench.answer import ORACLE_MODES, Answer, answer_modes, resolve_template
from rag_bench.config import EvalConfig
from rag_bench.lm import LM
from rag_bench.records import Probe

# Batches per mode per chunk of probes: here, in eval.run.answer_probes (one mode) and in the Ray answerer's shards.
ANSWER_CHUNK_BATCHES = 4


def answer_all_modes(lm: LM, probes: Sequence[Probe], cfg: EvalConfig, retriever: Any = None, *,
                     oracle: tuple[Sequence[Probe], Any] | None = None,
                     progress: bool = True) -> dict[str, list[Answer]]:
    """``{mode: answers}`` for every mode of ``cfg.modes``, in the order of ``probes``; the oracle modes only with
    ``oracle``, the probes that have a gold chunk (a subsequence of ``probes``) and a retriever serving it
    (``rag_bench.eval.inputs.oracle_inputs``), in their order. Without it the oracle modes are left out."""
    decode = cfg.decode.replace(batch_size=cfg.batch_size)
    step = cfg.batch_size * ANSWER_CHUNK_BATCHES
    modes = [m for m in cfg.modes if m not in ORACLE_MODES or oracle is not None]
    oracle_ids = {p.id for p in oracle[0]} if oracle is not None else set()
    template = resolve_template(cfg.template, lm.tokenizer)
    answers: dict[str, list[Answer]] = {mode: [] for mode in modes}
    with tqdm(total=len(probes), desc=f"answering ({', '.join(modes)})", unit="probe",
              disable=not progress or not modes) as bar:
        for start in range(0, len(probes), step) if modes else ():
            chunk = probes[start:start + step]
            questions = [p.prompt for p in chunk]
            with_gold = [p.prompt for p in chunk if p.id in oracle_ids]
            per_mode = {m: (with_gold, oracle[1]) for m in modes if m in ORACLE_MODES} if oracle is not None else None
            for mode, got in answer_modes(lm, questions, modes, retriever=retriever, k=cfg.k, decode=decode,
                                          template=template, per_mode=per_mode).items():
                answers[mode] += got
            bar.update(len(questions))
    return answers


def one_pass_answerer(lm: LM, *, progress: bool = True) -> Callable[[list[Probe], EvalConfig, Any],
                                                                      dict[str, list[Answer]]]:
    """``answer_with`` for ``evaluate``: every mode in one pass over the loaded ``lm``."""
    def answer_with(probes: list[Probe], cfg: EvalConfig, retriever: Any) -> dict[str, list[Answer]]:
        return answer_all_modes(lm, probes, cfg, retriever, progress=progress)

    return answer_with
