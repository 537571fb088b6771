"""Models: those that come from elsewhere (the offline registry, GGUF conversion, the loader every command uses),
those built here from scratch, and LoRA fine-tuning.

    from rag_bench.models import load_model, resolve_model, REGISTRY
    lm = load_model("smollm2-135m", data_dir="data")     # or any model folder

See registry.py (names), convert.py (GGUF to safetensors, once), resolve.py (name or folder to LM), memory.py,
scratch.py (the tokenizer and model of generation 0 from scratch), decoding.py (what LM.generate uses besides the
model) and lora.py (adapters through PEFT). The collapse presets on a pretrained base are configs:
rag_bench.config.presets_pretrained.

The names below load on first use: importing this package must not pull in torch and transformers
(`rag-bench --help` stays fast).
"""

from __future__ import annotations

from rag_bench._lazy import lazy_exports

_EXPORTS = {
    "DEFAULT_PRETRAINED": "registry", "REGISTRY": "registry", "PretrainedSpec": "registry", "lookup": "registry",
    "is_converted": "resolve", "load_model": "resolve", "pretrained_dir": "resolve", "pretrained_info": "resolve",
    "resolve_model": "resolve",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
