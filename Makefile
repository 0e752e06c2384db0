# Two commands on a fresh machine: `make run` and `make test` (see README.md).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
RASA := $(VENV)/bin/rasa
INSTALLED := $(VENV)/.installed
MODEL_STAMP := models/.trained
# The custom NLU component and the text code it calls shape the model too.
TRAINING_DATA := $(shell find nlu stories components -type f -name '*.*' 2>/dev/null) domain.yml \
	config.yml $(wildcard bot/vietnamese/*.py bot/vietnamese/*.yml)

# A government system sends nothing to third parties: Rasa's telemetry is off for every target.
export RASA_TELEMETRY_ENABLED := false
export SQLALCHEMY_SILENCE_UBER_WARNING := 1
export TF_CPP_MIN_LOG_LEVEL := 2
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: run test shell train bench lint format lock venv migrate seed pytest rasa-test clean

venv: $(INSTALLED)

# Reinstall only when the requirements or the lock changed.
$(INSTALLED): requirements.txt constraints.txt
	@test -x $(PY) || { echo "Creating $(VENV) with Python 3.10"; "$$(scripts/find-python310)" -m venv $(VENV); }
	$(PY) -m pip install --quiet --upgrade pip wheel "setuptools<70"
	$(PY) -m pip install --progress-bar on -r requirements.txt -c constraints.txt
	$(PY) -m pip check
	@touch $@

train: $(MODEL_STAMP)

# Retrain only when the training data, domain or pipeline changed.
$(MODEL_STAMP): $(INSTALLED) $(TRAINING_DATA)
	$(RASA) train --data nlu stories --out models --fixed-model-name assistant
	@touch $@

migrate: $(INSTALLED)
	$(PY) -m bot migrate

seed: migrate
	$(PY) -m bot seed --citizens 1000 --if-empty

run: seed $(MODEL_STAMP)
	$(PY) scripts/serve.py

shell: seed $(MODEL_STAMP)
	@$(PY) scripts/shell.py

pytest: $(INSTALLED)
	$(PY) -m pytest

# Tests of the trained model itself (entity values of /model/parse), then Rasa's own checks.
rasa-test: $(MODEL_STAMP)
	$(PY) -m pytest -m model tests/model
	$(PY) scripts/validate_data.py
	$(RASA) test core --stories tests/ --model models --fail-on-prediction-errors --out var/rasa-test-results

test: pytest rasa-test

bench: $(INSTALLED)
	$(PY) bench/run.py

lint: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(INSTALLED)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Re-resolve the direct requirements and write the full lock into constraints.txt.
lock:
	rm -rf var/lock-venv && "$$(scripts/find-python310)" -m venv var/lock-venv
	var/lock-venv/bin/pip install --quiet --upgrade pip wheel "setuptools<70"
	var/lock-venv/bin/pip install --quiet -r requirements.txt -c <(grep -v '==' constraints.txt)
	{ sed -n '1,/^APScheduler</p' constraints.txt; var/lock-venv/bin/pip freeze | grep -vE '^(pip|setuptools|wheel)=='; } > constraints.new
	mv constraints.new constraints.txt && rm -rf var/lock-venv

clean:
	rm -rf models var/rasa-test-results .pytest_cache .ruff_cache .mypy_cache
