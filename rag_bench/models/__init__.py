"""Models that come from elsewhere: the offline registry, GGUF conversion, and the loader every command uses.

    from rag_bench.models import load_model, resolve_model, REGISTRY
    lm = load_model("smollm2-135m", data_dir="data")     # or any model folder

See registry.py (names), convert.py (GGUF to safetensors, once), resolve.py (name or folder to LM), memory.py.
"""

from rag_bench.models.registry import DEFAULT_PRETRAINED, REGISTRY, PretrainedSpec, lookup
from rag_bench.models.resolve import is_converted, load_model, pretrained_dir, pretrained_info, resolve_model

__all__ = ["DEFAULT_PRETRAINED", "REGISTRY", "PretrainedSpec", "is_converted", "load_model", "lookup",
           "pretrained_dir", "pretrained_info", "resolve_model"]
