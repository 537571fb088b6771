"""The public API: every exported name resolves to a real object, whatever was imported before it."""

import subprocess
import sys
from pathlib import Path

import rag_bench

REPO = Path(__file__).resolve().parents[1]
# In a fresh interpreter: each public name against its module's object, after the names were read first and after
# their modules were imported first (an import of a submodule binds its name on the package, over an export).
CHECK = """
import importlib, sys
import rag_bench
modules = {{n: "rag_bench." + rag_bench._EXPORTS[n] for n in rag_bench.__all__}}
{first}
wrong = [n for n in rag_bench.__all__ if getattr(rag_bench, n) is not getattr(importlib.import_module(modules[n]), n)]
from rag_bench import train
print(wrong, callable(train) and train.__name__ == "train" and not isinstance(train, type(sys)))
"""
ORDERS = {"names first": "[getattr(rag_bench, n) for n in rag_bench.__all__]\n"
                         "[importlib.import_module(m) for m in modules.values()]",
          "modules first": "[importlib.import_module(m) for m in modules.values()]"}


def test_every_public_name_resolves():
    missing = []
    for name in rag_bench.__all__:
        try:
            getattr(rag_bench, name)
        except (AttributeError, ImportError) as exc:
            missing.append(f"{name}: {exc}")
    assert not missing, missing


def test_no_public_name_is_also_a_submodule():
    import pkgutil

    # `import rag_bench.<name>.x` would rebind rag_bench.<name> to the module, hiding the public object
    clash = set(rag_bench.__all__) & {m.name for m in pkgutil.iter_modules(rag_bench.__path__)}
    assert not clash, f"public names that are also submodules of rag_bench: {sorted(clash)}"


def test_public_names_are_their_objects_in_either_import_order():
    for order, first in ORDERS.items():
        out = subprocess.run([sys.executable, "-c", CHECK.format(first=first)], cwd=REPO, capture_output=True,
                             text=True, timeout=300)
        assert out.returncode == 0, f"{order}: {out.stderr[-2000:]}"
        assert out.stdout.split() == ["[]", "True"], f"{order}: {out.stdout}"
