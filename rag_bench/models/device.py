"""Where a model runs and at what precision: the device, bf16 autocast where the hardware runs it natively, and the
record of both that every collapse step writes into its manifest.

    from rag_bench.models.device import autocast, compute_record, pick_device
    device = pick_device()                      # cuda where there is one, else cpu
    with autocast(device):                      # bf16 on CUDA with bf16 and on CPUs with AVX512-BF16/AMX, else fp32
        ...
    compute_record()   # {"device": "cpu", "precision": "fp32", "cpu_isa": ["avx2"], "torch": ..., "threads": 1}
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

_FP32_NOTED: list[bool] = []  # the fp32 fallback is logged once per process


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast where the hardware runs it fast (CUDA with bf16, CPUs with AVX512-BF16/AMX), else a no-op."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return torch.autocast("cpu", dtype=torch.bfloat16)
    if device.type == "cpu" and not _FP32_NOTED:  # emulated bf16 would be many times slower: say so once
        _FP32_NOTED.append(True)
        log.warning("this CPU has no native bf16 (AVX512-BF16 or AMX): the model runs in fp32")
    return contextlib.nullcontext()


def compute_record(device: torch.device | None = None) -> dict[str, Any]:
    """Where a step ran and at what precision, for its manifest: seeds run on different machines (AVX2 in fp32,
    AVX512-BF16 under bf16 autocast) must say so, or a seed-to-seed difference cannot be attributed."""
    device = device or pick_device()
    precision = "bf16 autocast" if isinstance(autocast(device), torch.autocast) else "fp32"  # built, not entered
    record: dict[str, Any] = {"device": device.type, "precision": precision, "torch": torch.__version__,
                              "threads": torch.get_num_threads()}
    if device.type == "cuda":
        record["gpu"] = torch.cuda.get_device_name(device)
    else:
        flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
        record["cpu_isa"] = sorted({f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f" {f}" in flags})
    return record
