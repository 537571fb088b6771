"""A GGUF file (shipped in a pip package, or any you name) converted once into a safetensors model folder.

    rag-bench ask "What is the capital of Kenya?" --model smollm2-135m --mode closed   # converts on first use
    rag-bench ask "What is the capital of Kenya?" --model path/to/model.gguf           # any loadable architecture

    from rag_bench.models.convert import convert_gguf
    convert_gguf(lookup("smollm2-135m"), Path("data/models/pretrained/smollm2-135m"))
    convert_gguf_file(Path("my.gguf"), Path("data/models/converted/my-<sha>"), info={"name": "my"})

transformers dequantizes the GGUF to fp32 (``from_pretrained(folder, gguf_file=...)``) but will not save a
model it loaded so ("quantized with gguf"): the weights go into a plain model built from the same config without
``quantization_config``, which saves as safetensors and then loads in seconds. Everything is written into a
temporary sibling folder and renamed into place, so a failed or killed conversion leaves the data dir as it was.
"""

from __future__ import annotations

import datetime
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from rag_bench.lm import ModelLoadError, _quiet_transformers
from rag_bench.models.memory import check_fits
from rag_bench.models.registry import PretrainedSpec, gguf_path
from rag_bench.records import sha256_file, write_json

PRETRAINED_INFO_FILE = "rag_bench_pretrained.json"  # which registry entry and GGUF file a folder came from
CONVERT_OVERHEAD = 3.0  # peak memory of a conversion over the fp32 weights: dequantized copies plus the model
GGUF_MAGIC = b"GGUF"

Progress = Callable[[str], None]


def read_gguf(path: Path) -> tuple[int, str]:
    """(parameters in a GGUF file's tensor table, the ``general.architecture`` it declares or "") from one parse
    (parsing SmolLM2's metadata, its 49k-token vocabulary, takes seconds); a missing, foreign or truncated file is a
    ModelLoadError."""
    import gguf

    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise ModelLoadError(f"{path}: GGUF file unreadable ({exc.strerror})") from None
    if magic != GGUF_MAGIC:
        raise ModelLoadError(f"{path}: corrupt GGUF file (starts with {magic!r}, not {GGUF_MAGIC!r})")
    try:
        reader = gguf.GGUFReader(path)
        end = max(int(t.data_offset) + int(t.n_bytes) for t in reader.tensors)
        n = sum(int(t.n_elements) for t in reader.tensors)
    except (ValueError, KeyError, IndexError, OSError) as exc:
        raise ModelLoadError(f"{path}: corrupt GGUF file ({exc})") from None
    if end > path.stat().st_size:
        raise ModelLoadError(f"{path}: corrupt GGUF file (truncated: tensors end at byte {end:,}, "
                             f"the file has {path.stat().st_size:,})")
    try:
        field = reader.fields.get("general.architecture")
        arch = bytes(field.parts[field.data[0]]).decode("utf-8") if field is not None else ""
    except (ValueError, KeyError, IndexError, UnicodeDecodeError):
        arch = ""
    return n, arch


def gguf_parameters(path: Path) -> int:
    """Parameters in a GGUF file's tensor table; a missing, foreign or truncated file is a ModelLoadError."""
    return read_gguf(path)[0]


# GGUF names transformers reads under another name (its modeling_gguf_pytorch_utils renames them the same way)
_GGUF_ALIASES = {"qwen2moe": "qwen2_moe", "qwen3moe": "qwen3_moe", "gemma3n": "gemma3"}


def check_gguf_architecture(path: Path, arch: str) -> str:
    """``arch`` (what ``path`` declares) if this transformers can load it; else one ModelLoadError line naming it."""
    import transformers
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    loadable = sorted(set(GGUF_SUPPORTED_ARCHITECTURES) - {"general", "tokenizer"})
    if _GGUF_ALIASES.get(arch, arch) not in loadable:
        raise ModelLoadError(f"{path}: GGUF architecture {arch or 'unnamed'!r} cannot be loaded by transformers "
                             f"{transformers.__version__} (it loads {', '.join(loadable)})")
    return arch


def convert_gguf(spec: PretrainedSpec, dest: Path, *, progress: Progress = print, available: int | None = None) -> Path:
    """Write ``spec``'s model as a safetensors folder at ``dest`` (replacing nothing that exists: returns it)."""
    source = gguf_path(spec)
    info = {"name": spec.name, "package": f"{spec.package}=={spec.version}", "gguf_file": spec.filename,
            "licence": spec.licence, "chat": spec.chat, "description": spec.description}
    return convert_gguf_file(source, dest, info=info, progress=progress, available=available)


def convert_gguf_file(source: Path, dest: Path, *, info: dict, progress: Progress = print,
                      available: int | None = None) -> Path:
    """Write the GGUF model at ``source`` as a safetensors folder at ``dest``, with ``info`` in its info file.

    ``info["chat"]`` False drops the chat template; None keeps whatever template the file carries.
    """
    dest = Path(dest)
    n, arch = read_gguf(source)
    check_gguf_architecture(source, arch)
    check_fits(source, needed_bytes=int(4 * n * CONVERT_OVERHEAD), what="convert", available=available)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    started = time.perf_counter()
    name = info.get("name") or source.stem
    try:
        progress(f"converting {name}: dequantizing {source.name} ({n / 1e6:.1f}M parameters, once; "
                 "about 20-45 s on 2 cores for 135M)")
        folder, filename = str(source.parent), source.name
        try:
            tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=filename)
            with _quiet_transformers():
                loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=filename, dtype=torch.float32)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise ModelLoadError(f"{source}: corrupt GGUF file; transformers could not read it ({first})") from None
        config = loaded.config.to_dict()
        config.pop("quantization_config", None)
        config = AutoConfig.for_model(**{k: v for k, v in config.items() if k != "model_type"},
                                      model_type=config["model_type"])
        with torch.device("meta"):
            plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        plain.load_state_dict(loaded.state_dict(), strict=True, assign=True)
        plain.tie_weights()
        plain.generation_config = loaded.generation_config
        del loaded
        progress(f"converting {name}: saving safetensors")
        with _quiet_transformers():
            plain.save_pretrained(tmp)
        if info.get("chat") is False:
            tokenizer.chat_template = None
        tokenizer.save_pretrained(tmp)
        write_json(tmp / PRETRAINED_INFO_FILE, {
            **info, "name": name, "chat": bool(getattr(tokenizer, "chat_template", None)),
            "gguf_file": info.get("gguf_file") or str(source), "gguf_sha256": sha256_file(source), "parameters": n,
            "converted": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")})
        for item in [tmp, *tmp.iterdir()]:  # mkdtemp and safetensors create owner-only files
            item.chmod(0o755 if item.is_dir() else 0o644)
        try:
            tmp.rename(dest)
        except OSError:
            if not dest.is_dir():  # else another process finished first: keep its folder
                raise
        progress(f"converted {name} into {dest} in {time.perf_counter() - started:.0f} s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest
