# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
# Both build .venv from the pinned requirements (constraints.txt is the full lock).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv test lint demo run clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	touch $(STAMP)

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

test: lint
	$(PY) -m pytest

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache build

# The main job end to end on the embedded default: emulator + SQLite Airflow, two runs.
demo: venv
	PYTHONPATH=local:plugins $(PY) local/demo.py

# Airflow standalone + the emulator: the UI on http://localhost:8080, the DAG ready to trigger.
run: venv
	PYTHONPATH=local:plugins $(PY) local/standalone.py
