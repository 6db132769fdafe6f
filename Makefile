# Every target creates .venv when it is missing and installs the pinned requirements.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: app test train evaluate finetune notebooks bench clean-venv

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	touch $(STAMP)

app: $(STAMP)  ## run the Streamlit app on http://localhost:8501
	$(VENV)/bin/streamlit run app.py

test: $(STAMP)  ## the whole test suite, browser tests included
	$(PY) -m pytest

train: $(STAMP)  ## retrain the model from scratch into model/ (about 15 minutes on 2 cores)
	$(PY) -m digit_classifier train

evaluate: $(STAMP)
	$(PY) -m digit_classifier evaluate --real

clean-venv:
	rm -rf $(VENV)
