# fulcrum — see README.md. Every target works from a fresh clone.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test bench lint clean man deb soak compiled uncompiled

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/fulcrum demo

test: $(STAMP)
	$(BIN)/pytest -q

# SOAK_MINUTES (default 10) or SOAK_SECONDS: mixed traffic with faults; not part of `make test`
soak: $(STAMP)
	$(BIN)/python tests/soak/soak.py

bench: $(STAMP)
	$(BIN)/python bench/run.py
	$(BIN)/python bench/kernel.py

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

# fulcrum(1) from the CLI itself (a test fails when it is out of date)
man: $(STAMP)
	$(BIN)/python -m fulcrum.cli.manpage > packaging/man/fulcrum.1

# dist/fulcrum_VERSION_ARCH.deb: a venv in /opt/fulcrum, the unit, the OCF agent, docs, a
# default /etc/fulcrum/fulcrum.toml (packaging/deb/build.sh; needs dpkg-deb, no root)
deb:
	packaging/deb/build.sh

# Optional (issue 10): the HTTP hot path compiled with mypyc, extension modules beside the
# sources in src/ (Python imports them before the .py). The pure Python stays the tested
# fallback: `make uncompiled` removes the build. Needs a C compiler and Python's headers.
# README.md, "Performance", has the figures.
# balance/ is compiled whole: the schedulers subclass balance/base.py's Scheduler, and a
# compiled class can only be subclassed by classes compiled with it.
MYPYC_MODULES := $(addprefix fulcrum/proxy/http/,core/connection.py core/server.py exchange.py \
	headers.py framing.py service.py settings.py record.py routing.py server.py upstream.py) \
	fulcrum/proxy/tcp.py fulcrum/observe.py \
	$(patsubst src/%,%,$(filter-out %/__init__.py,$(wildcard src/fulcrum/balance/*.py)))

# from scratch each time: a module left unchanged keeps its old file time, and the check of
# fulcrum/__init__.py would take it for stale
compiled: $(STAMP) uncompiled
	cd src && ../$(BIN)/mypyc $(MYPYC_MODULES)

uncompiled:
	rm -rf src/build src/*__mypyc*.so $(patsubst %.py,src/%.*.so,$(MYPYC_MODULES))

clean: uncompiled
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
