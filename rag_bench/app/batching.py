"""Questions asked at once share a batch: a micro-batching queue in front of one model's batched generate.

    from rag_bench.app.batching import batched
    lm = batched(lm, lock)                                      # the same LM, one queue per model
    closed_book(lm, [question], decode=decode, streamer=streamer)   # as before; waits in the queue

The chat answers each question in its own Gradio worker thread, through the answer chain, whose generate
step asks the model for one prompt. ``BatchedLM.generate_detailed`` puts such a call in a queue; one worker
thread per model waits ``GATHER_S`` for company, then takes every queued call with the same decoding
settings (at most ``MAX_BATCH``) and answers them in one batched ``LM.generate_detailed`` under the model's
lock. While that batch runs, new questions queue up for the next one. A call that finds no company streams
token by token as before; in a shared batch its streamer gets the whole answer when the batch is done (the
decode loop streams one prompt). Greedy answers are those of one-by-one calls in fp32: each row of a batch decodes
as it would alone (tests/test_app_batching.py); under bf16 autocast one can change (docs/scale.md). Calls with
several prompts or a span constraint go straight to the model under its lock.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import weakref
from collections.abc import Sequence
from typing import Any

from rag_bench.config import DecodeConfig
from rag_bench.lm import LM
from rag_bench.models.decoding import Generation

MAX_BATCH = 8  # questions per shared batch at most
GATHER_S = 0.05  # how long the first question of a batch waits for others asked at the same moment
IDLE_S = 60.0  # a worker with nothing to do for this long ends; the next call starts another
# id(LM) -> its BatchedLM, while anyone holds that (a caller, or its worker until IDLE_S). Not a WeakKeyDictionary on
# the LM: its value holds the LM, so no model would ever be freed (the app drops models past AppConfig.max_models).
# The id cannot be reused while the entry lives, since the entry's BatchedLM holds the LM.
_BATCHED: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
_BATCHED_LOCK = threading.Lock()


@dataclasses.dataclass(eq=False)
class _Call:
    prompt: str
    decode: DecodeConfig
    streamer: Any
    done: threading.Event = dataclasses.field(default_factory=threading.Event)
    result: Generation | None = None
    error: BaseException | None = None


class BatchedLM:
    """An LM whose single-prompt ``generate_detailed`` calls are answered together; everything else is the LM's."""

    def __init__(self, lm: LM, lock: threading.Lock, *, max_batch: int = MAX_BATCH, gather_s: float = GATHER_S):
        self.lm, self.lock, self.max_batch, self.gather_s = lm, lock, max_batch, gather_s
        self._queue: list[_Call] = []
        self._cv = threading.Condition()
        self._worker: threading.Thread | None = None
        self.batch_sizes: list[int] = []  # what each batch held, for the load benchmark and tests

    def __getattr__(self, name: str) -> Any:  # tokenizer, max_positions, model, ...
        return getattr(self.lm, name)

    def generate(self, prompts: Sequence[str], decode: DecodeConfig | None = None, **kwargs: Any) -> list[str]:
        return [g.text for g in self.generate_detailed(prompts, decode, **kwargs)]

    def generate_detailed(self, prompts: Sequence[str], decode: DecodeConfig | None = None, *,
                          allowed_spans: Sequence[Sequence[str]] | None = None, streamer: Any = None,
                          reference: bool = False) -> list[Generation]:
        decode = decode or DecodeConfig()
        if isinstance(prompts, str) or len(prompts) != 1 or allowed_spans is not None or reference:
            with self.lock:
                return self.lm.generate_detailed(prompts, decode, allowed_spans=allowed_spans, streamer=streamer,
                                                 reference=reference)
        call = _Call(prompts[0], decode, streamer)
        with self._cv:
            self._queue.append(call)
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._serve, daemon=True, name="rag-bench-batcher")
                self._worker.start()
            self._cv.notify()
        call.done.wait()
        if call.error is not None:
            raise call.error
        return [call.result]  # type: ignore[list-item]

    def _serve(self) -> None:
        while True:
            with self._cv:
                if not self._queue and not self._cv.wait_for(lambda: self._queue, timeout=IDLE_S):
                    self._worker = None
                    return
            time.sleep(self.gather_s)  # questions asked at the same moment arrive a few milliseconds apart
            with self.lock:  # while another generation holds the model, more questions queue up
                with self._cv:
                    first = self._queue[0].decode
                    batch = [c for c in self._queue if c.decode == first][:self.max_batch]
                    self._queue = [c for c in self._queue if c not in batch]
                self._answer(batch)

    def _answer(self, batch: list[_Call]) -> None:
        self.batch_sizes.append(len(batch))
        try:
            if len(batch) == 1:
                gens = self.lm.generate_detailed([batch[0].prompt], batch[0].decode, streamer=batch[0].streamer)
            else:
                gens = self.lm.generate_detailed([c.prompt for c in batch],
                                                 batch[0].decode.replace(batch_size=len(batch)))
                for call, gen in zip(batch, gens, strict=True):
                    if call.streamer is not None:  # the whole answer at once, then the end of the stream
                        call.streamer.on_finalized_text(gen.text, stream_end=True)
            for call, gen in zip(batch, gens, strict=True):
                call.result = gen
        except Exception as exc:  # each caller re-raises it in its own thread (and ends its stream)
            for call in batch:
                call.error = exc
        finally:
            for call in batch:
                call.done.set()


def batched(lm: LM | BatchedLM, lock: threading.Lock) -> BatchedLM:
    """The one ``BatchedLM`` of ``lm`` (made on first use, with ``lock`` as the model's lock)."""
    if isinstance(lm, BatchedLM):
        return lm
    with _BATCHED_LOCK:
        shared = _BATCHED.get(id(lm))
        if shared is None:
            shared = _BATCHED[id(lm)] = BatchedLM(lm, lock)
        return shared
