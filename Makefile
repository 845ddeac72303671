# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
# Both build .venv from the pinned requirements (constraints.txt is the full lock).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv test test-unit test-e2e test-e2e-ledger test-e2e-night test-distributed lint system-tools demo run mwaa clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	touch $(STAMP)

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

# Debian tools some tests use, as command:package (the command probed, the package installed):
# headless Chromium (the trigger-form test), docker-compose (validates docker-compose.yaml), and
# Redis and PostgreSQL (the distributed suite starts them as ordinary processes in a temp folder;
# PostgreSQL's binaries are off PATH, so its wrapper pg_ctlcluster is probed). Installed when
# missing and apt can run; else those tests skip.
SYSTEM_TOOLS := chromium:chromium docker-compose:docker-compose redis-server:redis-server \
	pg_ctlcluster:postgresql
system-tools:
	@missing=""; for pair in $(SYSTEM_TOOLS); do command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
			&& (apt-get update -qq && apt-get install -y -qq $$missing) >/dev/null 2>&1; \
		then echo "installed:$$missing"; else echo "not installed:$$missing (their tests will be skipped)"; fi; \
	fi

# `make test`: about 15 minutes on 2 cores from a fresh clone (venvs included). Lint first, then the
# suite as six pytest processes (make -j). Most of their wall time is Airflow runs waiting on batches
# and poll intervals, not CPU, so the three suites that run Airflow start together with the unit tests,
# and the matrix follows the unit tests:
#   test-e2e-ledger   tests/e2e/test_run_ledger*.py: Clear, mark failed, lost answers (airflow standalone)
#   test-e2e-night    tests/e2e/test_deadline.py, test_host_retries.py: the night's deadline, re-sends
#   test-e2e          the other end-to-end and browser tests (an airflow standalone of their own)
#   test-distributed  CeleryExecutor + PostgreSQL + Redis, two workers
#   test-unit         everything else in the main venv (Airflow 3.3.2, Python 3.11): with the three
#                     above, the whole suite runs once
#   test-matrix       the version-sensitive tests on each MWAA Airflow (below), after test-unit; their
#                     runs wait on dag.test() and emulated batches more than they compute
# Each pytest prints its 15 slowest tests (pyproject addopts); --output-sync keeps each one's output whole.
E2E_LEDGER := $(wildcard tests/e2e/test_run_ledger*.py)
E2E_NIGHT := tests/e2e/test_deadline.py tests/e2e/test_host_retries.py
test: lint lint-deploy system-tools
	$(MAKE) -j6 --output-sync=target AFTER_UNIT=test-unit test-e2e-ledger test-e2e-night test-e2e \
		test-distributed test-unit test-matrix

test-unit: venv
	$(PY) -m pytest -p no:cacheprovider -m "not e2e and not distributed"

test-e2e-ledger: venv
	$(PY) -m pytest -p no:cacheprovider -m e2e $(E2E_LEDGER)

test-e2e-night: venv
	$(PY) -m pytest -p no:cacheprovider -m e2e $(E2E_NIGHT)

test-e2e: venv
	$(PY) -m pytest -p no:cacheprovider -m e2e tests/e2e $(addprefix --ignore=,$(E2E_LEDGER) $(E2E_NIGHT))

# CeleryExecutor + PostgreSQL + Redis, two workers, 200 instances, faults (README "Running at scale").
test-distributed: venv
	$(PY) -m pytest -p no:cacheprovider -m distributed tests/distributed

clean:
	rm -rf $(VENV) .venv-airflow-* .pytest_cache .ruff_cache .mypy_cache build

# The main job end to end on the embedded default: emulator + SQLite Airflow, two runs.
demo: venv
	PYTHONPATH=local:plugins $(PY) local/demo.py

# Airflow standalone + the emulator: the UI on http://localhost:8080, the DAG ready to trigger.
run: venv
	PYTHONPATH=local:plugins $(PY) local/standalone.py

# Figures, not tests (about 20 minutes, not part of `make test`): AWS calls and verdict per check, calls
# per night, worker-slot time through a real scheduler run, parse time, the send path; ours beside the
# Amazon provider's, on the executing emulator. Tables printed and written to build/bench/bench.{md,json}.
.PHONY: bench
bench: venv
	$(PY) benchmarks/run_all.py

# The tables of the last `make bench` run (build/bench/bench.md) pasted into docs/benchmarks.md.
.PHONY: docs
docs: venv
	$(PY) docs/paste_bench.py

# The MWAA upload set in build/mwaa/: dags/, plugins.zip (zipped from inside plugins/), requirements.txt, startup.sh.
mwaa: venv
	$(PY) mwaa/bundle.py build/mwaa

# ---- Amazon MWAA: the stack's linters, one-command deployment, and the version matrix ----
.PHONY: lint-deploy mwaa-policy mwaa-deploy test-matrix test-oldest

# cfn-lint on the CloudFormation template; parliament, the scope and coverage checks on both roles'
# policies. The execution role's, in the template and in mwaa/execution-role-policy.json, must be the
# one `make mwaa-policy` generates from dags/cots_jobs.yaml (every job's tags, ids and topic).
lint-deploy: venv
	$(VENV)/bin/cfn-lint deploy/cots-ssm-batch.yaml
	$(PY) deploy/policy.py --check --lint

mwaa-policy: venv
	$(PY) deploy/policy.py --write

# Build the upload set, upload it, point the environment at the new object versions, wait, upload dags/:
#   make mwaa-deploy ENV=<environment> BUCKET=<its source bucket> [REGION=<region>] [DRY_RUN=1]
mwaa-deploy: venv
	@test -n "$(ENV)" -a -n "$(BUCKET)" || { \
		echo "usage: make mwaa-deploy ENV=<environment> BUCKET=<its source bucket> [REGION=<region>] [DRY_RUN=1]" >&2; exit 2; }
	$(PY) deploy/mwaa_deploy.py --env "$(ENV)" --bucket "$(BUCKET)" $(if $(REGION),--region "$(REGION)") \
		$(if $(filter-out 0,$(DRY_RUN)),--dry-run)

# The version-sensitive tests (marker `matrix`: imports, DagBag of the jobs file and its schedules, one
# DAG run through dag.test() on the emulator, hook, operators, sensor, trigger round trip, notifier,
# links and the UI plugin's app, the MWAA bundle) on every Airflow 3 version of MWAA with its amazon
# provider (requirements/airflow-<version>-lock.txt), on Python 3.12 like MWAA. The pure model and the
# emulator's own tests import neither Airflow nor the provider: they run once, in test-unit. The newest
# release we develop on (3.3.2, requirements.txt) is not a matrix entry: test-unit already runs the whole
# suite on it; the only difference would be Python 3.12, which the MWAA versions cover. Each venv is
# built once (its stamp follows its lock). `make test-airflow-3.2.1` runs one version.
MWAA_AIRFLOW := 3.0.6 3.2.1 3.3.1
ifndef MATRIX_PYTHON  # python3.12 on PATH (a pyenv shim only if it runs), else pyenv's 3.12.x
MATRIX_PYTHON := $(shell for py in python3.12 $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3); do \
	$$py -c 'import sys; assert sys.version_info[:2] == (3, 12); print(sys.executable)' 2>/dev/null && break; done)
endif
ifeq ($(MATRIX_PYTHON),)
MATRIX_PYTHON := $(PYTHON)
MATRIX_WARNING := echo "WARNING: no Python 3.12 (MWAA's) found, neither python3.12 nor pyenv's 3.12.x:" \
	"the matrix runs on $$($(PYTHON) --version). Install 3.12 or set MATRIX_PYTHON=/path/to/python3.12." >&2
endif
MATRIX_PY_VERSION := $(shell $(MATRIX_PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
matrix_venv = .venv-airflow-$(1)-py$(MATRIX_PY_VERSION)
.PRECIOUS: .venv-airflow-%-py$(MATRIX_PY_VERSION)/.installed

.venv-airflow-%-py$(MATRIX_PY_VERSION)/.installed: requirements/airflow-%-lock.txt
	$(MATRIX_PYTHON) -m venv $(@D)
	$(@D)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -r $<
	touch $@

test-airflow-%: $(call matrix_venv,%)/.installed | $(AFTER_UNIT)
	@$(MATRIX_WARNING)
	@echo "== Airflow $* on Python $(MATRIX_PY_VERSION) ($(call matrix_venv,$*)): the tests marked matrix"
	$(call matrix_venv,$*)/bin/python -m pytest -q -p no:cacheprovider -m matrix --ignore=tests/e2e --ignore=tests/distributed

# Under `make test` (-j6) a version starts once test-unit has ended: its venv is built before, in the one
# job slot the five other suites leave free, so the venvs are built one after the other meanwhile.
test-matrix: $(foreach version,$(MWAA_AIRFLOW),test-airflow-$(version))

test-oldest: test-airflow-$(firstword $(MWAA_AIRFLOW))
