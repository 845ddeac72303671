# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
# Both build .venv from the pinned requirements (constraints.txt is the full lock).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv test test-oldest lint system-tools demo run mwaa clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	touch $(STAMP)

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

# Debian tools some tests use: headless Chromium (the trigger-form test) and docker-compose
# (validates docker-compose.yaml). Installed when missing and apt can run; else those tests skip.
SYSTEM_TOOLS := chromium docker-compose
system-tools:
	@missing=""; for tool in $(SYSTEM_TOOLS); do command -v $$tool >/dev/null 2>&1 || missing="$$missing $$tool"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
			&& (apt-get update -qq && apt-get install -y -qq $$missing) >/dev/null 2>&1; \
		then echo "installed:$$missing"; else echo "not installed:$$missing (their tests will be skipped)"; fi; \
	fi

test: lint system-tools
	$(PY) -m pytest
	$(MAKE) test-oldest

# The package on MWAA's oldest Airflow 3 (3.0.6 + amazon provider 9.12.0): unit, emulator-backed,
# DAG-integrity and MWAA-bundle tests (the end-to-end harness targets the current Airflow only).
OLD_VENV := .venv-airflow-3.0.6
$(OLD_VENV)/.installed: requirements/airflow-3.0.6-lock.txt
	$(PYTHON) -m venv $(OLD_VENV)
	$(OLD_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -r requirements/airflow-3.0.6-lock.txt
	touch $@

test-oldest: $(OLD_VENV)/.installed
	$(OLD_VENV)/bin/python -m pytest -q -p no:cacheprovider tests/plugins tests/dags tests/deploy/test_mwaa.py

clean:
	rm -rf $(VENV) $(OLD_VENV) .pytest_cache .ruff_cache .mypy_cache build

# The main job end to end on the embedded default: emulator + SQLite Airflow, two runs.
demo: venv
	PYTHONPATH=local:plugins $(PY) local/demo.py

# Airflow standalone + the emulator: the UI on http://localhost:8080, the DAG ready to trigger.
run: venv
	PYTHONPATH=local:plugins $(PY) local/standalone.py

# The MWAA upload set in build/mwaa/: dags/, plugins.zip (zipped from inside plugins/), requirements.txt, startup.sh.
mwaa: venv
	$(PY) mwaa/bundle.py build/mwaa
