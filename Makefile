# Everything a fresh machine with Python 3.11+ needs is installed by these targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: test test-fast demo lint bench scale-demo event-demo clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed: make PYTHON=python3.11 ...")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

## test: build the environment, lint, and run the whole suite (real S3 servers, real Airflow, real aws CLI)
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

## test-fast: lint, and the tests that start no server, no Airflow and no subprocess (a few seconds)
test-fast: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -m "not slow" -q

## demo: start an embedded S3 server, run the example DAG through `airflow dags test`, show the result
demo: $(STAMP)
	$(BIN)/python scripts/demo.py

## lint: ruff
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## bench: W1 one endpoint (vs aws s3 sync, s5cmd, rclone), W2 two endpoints (vs rclone), W3 100,000-object no-op;
##        rclone with --transfers 16 --checkers 16; wall seconds, CPU ms/object, targets met / not met;
##        writes bench/RESULTS.md. On a quiet machine. A quick check of the scripts: make bench BENCH_ARGS=--quick
##        (writes bench/results/RESULTS-quick.md)
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[test,bench]"
	$(BIN)/python bench/all.py $(BENCH_ARGS)

## scale-demo: the sharded DAG on a real multi-process Airflow (api-server, scheduler with the LocalExecutor,
##             dag-processor) over 20,000 objects on a local rclone serve s3, timed against the same sync
##             unsharded; both replicas are checked against the source. Options: make scale-demo SCALE_ARGS="--objects 5000 --shards 2"
scale-demo: $(STAMP)
	$(BIN)/python bench/scale.py $(SCALE_ARGS)

## event-demo: event-driven replication on a real multi-process Airflow (api-server, scheduler, dag-processor,
##             triggerer) over moto's S3 and SQS: objects written at a steady rate reach the replica without anyone
##             triggering a run; replica lag p50/p99/max, DAG runs, S3 requests per changed object.
##             Options: make event-demo EVENT_ARGS="--objects 300 --rate 5"
event-demo: $(STAMP)
	$(BIN)/python bench/events.py $(EVENT_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
