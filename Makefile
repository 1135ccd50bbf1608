# `make run` starts the portal with embedded defaults; `make lint` checks the code; `make test` runs the test suite.
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin
PORTAL_PORT ?= 8000
EMULATOR_PORT ?= 5055
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/portal
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
# The IAM policy evaluator the guardrail tests use (tests/support/policy_eval.py), pinned by its
# package-lock.json; installed again only when the lock file changes.
IAM_SIMULATE := tests/support/iam_simulate

# Without real AWS configuration, `make run` talks to the local emulator (tests never reach AWS:
# they use moto in process).
ifeq ($(strip $(AWS_ACCESS_KEY_ID)$(AWS_PROFILE)$(AWS_ENDPOINT_URL)),)
run demo: export AWS_ENDPOINT_URL := http://127.0.0.1:$(EMULATOR_PORT)
run demo: export AWS_ACCESS_KEY_ID := emulator
run demo: export AWS_SECRET_ACCESS_KEY := emulator
run demo: export AWS_DEFAULT_REGION := us-east-1
# The emulator starts empty: give it an organization before setting it up.
run demo: export AWS_SETUP_ARGS := --create-organization
# The emulator has no creation quotas; the demo need not wait for AWS's.
run demo: export PORTAL_AWS_CREATE_ACCOUNT_RATE := 5
run demo: export PORTAL_AWS_CREATE_ACCOUNT_BURST := 10
# The usage meter reads every minute, so that the demo's spend limits act while you watch.
run demo: export PORTAL_METER_INTERVAL_MINUTES := 1
# The demo (people with a published password, a story that rewrites account records) exists
# only on the emulator: seed_demo and demo_aws refuse anything else.
DEMO := yes
endif
# With real AWS configuration, `make run` starts the portal alone: no emulator, no demo.
PROCESSES := $(if $(DEMO),,web worker beat)
export PORTAL_PORT EMULATOR_PORT

.PHONY: help install test-tools run demo lint test bench lock clean

help:
	@echo "make run    start the portal at http://127.0.0.1:$(PORTAL_PORT) with a demo course"
	@echo "make lint   check the code: ruff's rules and format, mypy's types (pyproject.toml)"
	@echo "make test   run the test suite against PostgreSQL and Redis"
	@echo "make demo   reset the demo (while make run is running) and print its logins"
	@echo "make bench  refresh docs/BENCHMARKS.md (PostgreSQL)"
	@echo "make lock   re-pin requirements/*.txt from pyproject.toml"

$(BIN)/activate:
	"$$(scripts/find-python)" -m venv $(VENV)

# Development installs everything: the runtime, the emulator, the test tools.
$(VENV)/.installed: $(BIN)/activate requirements/base.txt requirements/dev.txt
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements/dev.txt
	touch $@

install: $(VENV)/.installed

$(IAM_SIMULATE)/node_modules/.installed: $(IAM_SIMULATE)/package-lock.json
	npm ci --prefix $(IAM_SIMULATE) --no-audit --no-fund --loglevel=error
	touch $@

test-tools: $(IAM_SIMULATE)/node_modules/.installed

run: install
	mkdir -p var/broker var/broker-control
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py lti_keys_ensure
	$(if $(DEMO),$(BIN)/python manage.py seed_demo)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/honcho start -f Procfile $(PROCESSES)

demo: install
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py seed_demo --reset
	$(BIN)/python manage.py demo_aws

# The rules, the format and the types, as configured in pyproject.toml. `ruff format` and
# `ruff check --fix` change the code to match; nothing here does.
lint: install
	status=0; \
	$(BIN)/ruff check . || status=1; \
	$(BIN)/ruff format --check . || status=1; \
	$(BIN)/mypy || status=1; \
	exit $$status

test: install test-tools
	scripts/ensure-services
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install
	scripts/ensure-services
	for script in bench/[a-z]*.py; do \
	  [ "$$script" = bench/common.py ] || \
	  DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(BIN)/python $$script || exit 1; \
	done

# Two locks from pyproject.toml, each with every file's hash: requirements/base.txt, the runtime
# (its dependencies, all that production installs), and requirements/dev.txt, the runtime at the
# very same versions plus the dev and test extras.
COMPILE := --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links
lock:
	rm -rf .lock-venv
	"$$(scripts/find-python)" -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet pip-tools==7.7.0
	CUSTOM_COMPILE_COMMAND="make lock" .lock-venv/bin/pip-compile $(COMPILE) \
	  --output-file requirements/base.txt pyproject.toml
	CUSTOM_COMPILE_COMMAND="make lock" .lock-venv/bin/pip-compile $(COMPILE) \
	  --extra dev --extra test --constraint requirements/base.txt \
	  --output-file requirements/dev.txt pyproject.toml
	rm -rf .lock-venv build *.egg-info

clean:
	rm -rf $(VENV) var $(IAM_SIMULATE)/node_modules
