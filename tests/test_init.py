"""The public API: every exported name resolves to a real object."""

import rag_bench


def test_every_public_name_resolves():
    missing = []
    for name in rag_bench.__all__:
        try:
            getattr(rag_bench, name)
        except (AttributeError, ImportError) as exc:
            missing.append(f"{name}: {exc}")
    assert not missing, missing
