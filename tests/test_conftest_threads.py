"""The suite's own guard (tests/conftest.py ``restore_torch_threads``): a test that changes torch's thread count
does not pass it on to the next test. The two tests run in file order."""

from __future__ import annotations

import torch

STARTED_AT: list[int] = []


def test_a_test_may_change_the_thread_count():
    STARTED_AT.append(torch.get_num_threads())
    torch.set_num_threads(STARTED_AT[0] + 1)  # as run_collapse(threads=...) or `rag-bench eval --threads` do
    assert torch.get_num_threads() == STARTED_AT[0] + 1


def test_the_next_test_starts_at_the_count_before_it():
    assert STARTED_AT, "runs after the test above (file order)"
    assert torch.get_num_threads() == STARTED_AT[0]
