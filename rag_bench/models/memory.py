"""Will a model fit? Its fp32 size (from file headers, without loading) against the memory available now.

    from rag_bench.models.memory import check_fits, folder_parameters
    check_fits(path, needed_bytes=4 * folder_parameters(path))       # ModelLoadError naming path if not

Sizes come from the safetensors headers (or a GGUF file's tensor table), so a checkpoint whose header declares
more than the machine holds is refused before a byte of it is read.
"""

from __future__ import annotations

import json
import math
import os
import struct
from pathlib import Path

from rag_bench.lm import ModelLoadError

LOAD_OVERHEAD = 1.25  # the fp32 weights plus transformers' loading buffers and the forward's activations
GIB = 1 << 30


def available_bytes() -> int:
    """Memory this process can still take: MemAvailable, capped by a cgroup v2 limit when there is one."""
    available = math.inf
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
    except OSError:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        if limit != "max":
            available = min(available, int(limit) - used)
    except (OSError, ValueError):
        pass
    return int(available) if available != math.inf else 1 << 62


def safetensors_parameters(path: Path) -> int:
    """Elements declared in a safetensors file's header (8-byte length, then JSON)."""
    try:
        with open(path, "rb") as fh:
            (length,) = struct.unpack("<Q", fh.read(8))
            if length > 100_000_000:
                raise ValueError(f"header length {length} is not plausible")
            header = json.loads(fh.read(length))
        return sum(math.prod(t["shape"]) for key, t in header.items() if key != "__metadata__")
    except (OSError, ValueError, KeyError, TypeError, struct.error) as exc:
        raise ModelLoadError(f"{path}: not a readable safetensors file ({exc})") from None


def folder_parameters(folder: Path) -> int:
    """Parameters of a model folder's weights; for pickled .bin weights, their file size over 4 (fp32)."""
    files = sorted(folder.glob("*.safetensors"))
    if files:
        return sum(safetensors_parameters(p) for p in files)
    return sum(p.stat().st_size for p in folder.glob("*.bin")) // 4


def check_fits(path: Path, *, needed_bytes: int, what: str = "load", available: int | None = None) -> None:
    """ModelLoadError naming ``path`` when ``needed_bytes`` exceed the memory available (``available`` overrides)."""
    free = available_bytes() if available is None else available
    if needed_bytes > free:
        raise ModelLoadError(f"{path}: too large for memory; needs about {needed_bytes / GIB:.1f} GiB to {what}, "
                             f"{max(free, 0) / GIB:.1f} GiB available")


def check_folder_fits(folder: Path, *, available: int | None = None) -> int:
    """Refuse a model folder whose fp32 weights would not fit; returns its parameter count."""
    n = folder_parameters(folder)
    check_fits(folder, needed_bytes=int(4 * n * LOAD_OVERHEAD), available=available)
    return n
