"""rag_bench.models.device: the precision a model runs at, and the record of it a collapse step writes."""

from __future__ import annotations

import contextlib

import torch

from rag_bench.models import device as device_module


def test_without_native_bf16_the_model_runs_in_fp32_and_says_so_once(monkeypatch, caplog):
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    monkeypatch.setattr(device_module, "_FP32_NOTED", [])
    with caplog.at_level("WARNING", logger="rag_bench.models.device"):
        contexts = [device_module.autocast(torch.device("cpu")) for _ in range(3)]
    assert all(isinstance(c, contextlib.nullcontext) for c in contexts)
    assert [r.getMessage() for r in caplog.records].count(
        "this CPU has no native bf16 (AVX512-BF16 or AMX): the model runs in fp32") == 1


def test_the_compute_record_names_the_precision_the_model_would_run_at(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    fp32 = device_module.compute_record(cpu)
    assert fp32["precision"] == "fp32" and fp32["device"] == "cpu" and fp32["threads"] == torch.get_num_threads()
    assert fp32["torch"] == torch.__version__ and isinstance(fp32["cpu_isa"], list)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    assert device_module.compute_record(cpu)["precision"] == "bf16 autocast"


def test_rag_bench_lm_still_exports_the_device_helpers():
    from rag_bench import lm

    assert lm.autocast is device_module.autocast and lm.pick_device is device_module.pick_device
