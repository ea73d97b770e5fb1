# Allot — two commands on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PACKAGES := -e libs/contracts -e 'libs/runtime[embedded]' -e services/guardrails -e services/executor \
            -e services/pools -e services/rules -e services/pacing -e services/sandbox -e libs/fakes \
            -e services/connections -e services/ingest -e services/notify -e services/console
PYPROJECTS := $(wildcard libs/*/pyproject.toml services/*/pyproject.toml)
# htmx for the console, from the npm registry at set-up (served as a static file: no CDN at run time). Pinned by
# version and checked by SHA-256; without npm the console still works as plain server-rendered forms. The Dockerfile's
# HTMX_VERSION / HTMX_SHA256 build args repeat this pin for the console image: bump both (tests/deploy checks them).
HTMX_VERSION := 2.0.8
HTMX_SHA256 := 22283ef68cb7545914f0a88a1bdedc7256a703d1d580c1d255217d0a50d31313
HTMX := $(VENV)/share/allot-console/htmx.min.js

.PHONY: run test bench schemas lint typecheck venv clean lock help browser

help:
	@echo "make run     - start broker, Postgres, every service, the sandbox platform and the demo (Ctrl-C stops)"
	@echo "make test    - set up, lint (ruff), type-check (mypy) and run the whole test suite against a real broker and Postgres"
	@echo "make bench   - run the benchmarks, results in bench/results/"
	@echo "make schemas - write JSON Schemas to docs/schemas, AsyncAPI documents to docs/asyncapi, OpenAPI to docs/openapi"
	@echo "make lint    - ruff over libs, services and tests, then mypy as make typecheck"
	@echo "make typecheck - mypy over every library (strict) and service (pyproject.toml [tool.mypy])"

venv: $(STAMP)

$(STAMP): constraints.txt requirements-dev.txt $(PYPROJECTS)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade "pip>=24"
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt $(PACKAGES) -r requirements-dev.txt
	$(MAKE) --no-print-directory $(HTMX)
	touch $(STAMP)

$(HTMX):
	@mkdir -p $(dir $(HTMX)) && tmp=$$(mktemp -d) && \
	if command -v npm >/dev/null && (cd $$tmp && npm pack --silent htmx.org@$(HTMX_VERSION) >/dev/null && \
	    tar xzf htmx.org-$(HTMX_VERSION).tgz) && \
	    echo "$(HTMX_SHA256)  $$tmp/package/dist/htmx.min.js" | sha256sum -c --quiet -; then \
	  cp $$tmp/package/dist/htmx.min.js $(HTMX); \
	else echo "htmx $(HTMX_VERSION) not installed (npm unavailable or checksum mismatch): the console serves plain forms"; fi; \
	rm -rf $$tmp

# The console's browser tests drive Debian's chromium (never a downloaded browser): installed when missing.
browser:
	@test -x /usr/bin/chromium || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

run: $(STAMP) $(HTMX)
	$(VENV)/bin/allot-stack run

# Two pytest processes at once, each with its own broker and PostgreSQL: the suites that run services as
# processes (marker e2e: tests/e2e and tests/faults, mostly waiting on them) beside everything else. Both must
# pass; the e2e log is printed after the rest, whole when it failed (and kept in .allot/test-e2e.log). Ruff
# (pyproject.toml [tool.ruff]) and types (mypy as make typecheck) are checked first: a finding fails make test
# before any test runs.
test: $(STAMP) $(HTMX) browser
	$(VENV)/bin/ruff check libs services tests
	$(VENV)/bin/mypy
	@mkdir -p .allot; \
	$(PY) -m pytest -q -m e2e > .allot/test-e2e.log 2>&1 & e2e_pid=$$!; \
	$(PY) -m pytest -q -m "not e2e"; rest_rc=$$?; \
	wait $$e2e_pid; e2e_rc=$$?; \
	echo "---- tests marked e2e (ran alongside the others; .allot/test-e2e.log) ----"; \
	if [ $$e2e_rc -eq 0 ]; then tail -n 3 .allot/test-e2e.log; else cat .allot/test-e2e.log; fi; \
	echo "make test: others exit $$rest_rc, e2e exit $$e2e_rc"; \
	exit $$(( rest_rc || e2e_rc ))

bench: $(STAMP)
	mkdir -p bench/results
	$(PY) bench/run_all.py

schemas: $(STAMP)
	$(PY) -m allot.runtime.docs --out docs

lint: $(STAMP)
	$(VENV)/bin/ruff check libs services tests
	$(VENV)/bin/mypy

# One mypy run over every library and service (the packages and their src folders are listed in pyproject.toml's
# [tool.mypy]: the libraries strict, the services with the defaults; tests are not type-checked).
typecheck: $(STAMP)
	$(VENV)/bin/mypy

# Regenerate the pinned constraints from a fresh resolve (commit the result).
lock:
	rm -rf /tmp/allot-lock && $(PYTHON) -m venv /tmp/allot-lock
	/tmp/allot-lock/bin/pip install --quiet --upgrade "pip>=24"
	/tmp/allot-lock/bin/pip install --quiet $(PACKAGES) -r requirements-dev.txt
	/tmp/allot-lock/bin/pip freeze --exclude-editable | grep -v '^-e' > constraints.txt

clean:
	rm -rf $(VENV) .allot
