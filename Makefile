# Every target creates .venv when it is missing, installs the pinned requirements and the package itself
# (editable: Jupyter, pytest and the benchmarks import this checkout's digit_classifier without path settings).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help app test test-fast lint lab train evaluate finetune finetune-demo models rollback notebooks bench submission clean-venv

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

help:  ## list the targets (this text)
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

app: $(STAMP)  ## run the Streamlit app on http://localhost:8501
	$(VENV)/bin/streamlit run app.py

test: $(STAMP)  ## the whole test suite, browser tests and notebooks included
	$(PY) -m pytest

test-fast: $(STAMP)  ## the tests without the browser and notebook layers, for a quick edit loop
	$(PY) -m pytest -m "not browser and not notebooks"

lint: $(STAMP)  ## ruff check . (configuration in pyproject.toml)
	$(VENV)/bin/ruff check .

# Jupyter refuses to start as root unless told (containers and CI often run as root); for anyone else the flag is not passed.
lab: $(STAMP)  ## open Jupyter Lab on notebooks/
	$(VENV)/bin/jupyter lab notebooks/ $(if $(filter 0,$(shell id -u)),--allow-root)

train: $(STAMP)  ## retrain the model from scratch into model/ (38 minutes on 2 idle AMD EPYC cores: README, "Training time")
	$(PY) -m digit_classifier train

evaluate: $(STAMP)  ## accuracy of the current model on MNIST test and on the realistic sets
	$(PY) -m digit_classifier evaluate --real

notebooks: $(STAMP)  ## re-execute notebooks/ in place, in full (02 retrains into a temporary folder: it prints how long each took)
	$(PY) notebooks/run_notebooks.py

finetune: $(STAMP)  ## fine-tune on wrong_predictions/, promote only if MNIST holds and the hold-out does not drop (ARGS="--dry-run")
	$(PY) -m digit_classifier finetune $(ARGS)

finetune-demo: $(STAMP)  ## the whole loop on optdigits in temporary folders; model/ and wrong_predictions/ stay untouched
	$(PY) -m digit_classifier finetune-demo $(ARGS)

models: $(STAMP)  ## list the model versions, * marks the current one
	$(PY) -m digit_classifier models

rollback: $(STAMP)  ## make the version the current model replaced current again (ARGS="--to VERSION")
	$(PY) -m digit_classifier rollback $(ARGS)

bench: $(STAMP)  ## every benchmark (about 20 minutes, 12 of them training); JSON in benchmarks/out/, figures in docs/BENCHMARKS.md
	$(PY) -m benchmarks.bench_inference
	$(PY) -m benchmarks.bench_app
	$(PY) -m benchmarks.bench_finetune
	$(PY) -m benchmarks.bench_train

submission: $(STAMP)  ## build dist/digit-classifier-<version>.zip: tracked files, the current model, the corrections
	$(PY) -m tools.make_submission

clean-venv:  ## remove .venv (the next target recreates it)
	rm -rf $(VENV)
