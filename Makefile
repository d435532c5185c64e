# Two commands on a fresh machine: `make run` (the main job) and `make test` (the test suite).
# Each creates .venv if missing, installs the pinned versions (constraints.txt) and fetches MNIST.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TASK ?= tasks/mnist_add.yaml
ARGS ?=

.PHONY: run test data lint

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

data: $(STAMP)
	$(BIN)/nesy-gedi fetch-data

run: data
	$(BIN)/nesy-gedi run $(TASK) $(ARGS)

test: data
	$(BIN)/ruff check nesy_gedi tests bench examples
	$(BIN)/python -m pytest -q tests

lint: $(STAMP)
	$(BIN)/ruff check nesy_gedi tests bench examples
	$(BIN)/ruff format --check nesy_gedi tests bench examples
