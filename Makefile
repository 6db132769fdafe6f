# Every target creates .venv when it is missing and installs the pinned requirements.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: app test train evaluate finetune finetune-demo models rollback notebooks bench clean-venv

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	touch $(STAMP)

app: $(STAMP)  ## run the Streamlit app on http://localhost:8501
	$(VENV)/bin/streamlit run app.py

test: $(STAMP)  ## the whole test suite, browser tests included
	$(PY) -m pytest

train: $(STAMP)  ## retrain the model from scratch into model/ (about 12 minutes on 2 cores)
	$(PY) -m digit_classifier train

evaluate: $(STAMP)
	$(PY) -m digit_classifier evaluate --real

notebooks: $(STAMP)  ## re-execute notebooks/ in place, in full (02 retrains into a temporary folder: about 30 minutes in all)
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
	$(PY) benchmarks/bench_inference.py
	$(PY) benchmarks/bench_app.py
	$(PY) benchmarks/bench_finetune.py
	$(PY) benchmarks/bench_train.py

clean-venv:
	rm -rf $(VENV)
