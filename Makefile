# The README's two commands: `make demo` and `make test` (plus `make bench`).
# Both start from nothing: the virtual environment, PostGIS (apt, as root, when missing), a private
# cluster under .onemap/, the data. DATABASE_URL points everything at an existing PostGIS instead.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
ONEMAP := $(VENV)/bin/onemap
SCALE  ?= lishui
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: demo test bench lint system venv db clean

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $@

venv: $(VENV)/.installed

# System packages: PostGIS is installed by `onemap db up` itself; GDAL's command-line tools are
# needed by the tests that read our service with GDAL's own OGC API client, and Debian's Chromium
# with its driver by the browser tests (never a downloaded browser).
# and a CJK font, so that the browser tests' screenshots show Chinese (as a user's machine does).
# Debian's QGIS and PyQGIS for tests/test_qgis.py (QGIS reads the layers and opens each map's
# project, headless; about 2 minutes to install, about 1 minute to run).
SYSTEM_TOOLS := ogrinfo:gdal-bin chromium:chromium chromedriver:chromium-driver \
	/usr/share/fonts/truetype/wqy/wqy-microhei.ttc:fonts-wqy-microhei \
	/usr/bin/qgis:qgis /usr/lib/python3/dist-packages/qgis/core/__init__.py:python3-qgis \
	/usr/sbin/haproxy:haproxy /usr/sbin/pgbouncer:pgbouncer
system:
	@missing=""; for pair in $(SYSTEM_TOOLS); do \
	  tool=$${pair%%:*}; { command -v $$tool || test -e $$tool; } >/dev/null 2>&1 || \
	    missing="$$missing $${pair##*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing$$missing"; DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	  else echo "missing:$$missing: sudo apt-get install$$missing (their tests will be skipped)"; fi; \
	fi

db: venv
	$(ONEMAP) db up
	$(ONEMAP) db migrate

demo: venv db
	$(ONEMAP) demo load --scale $(SCALE)
	$(ONEMAP) users demo
	@echo
	@echo "  一张图 onemap is serving on http://$(HOST):$(PORT)/"
	@echo "    landing page   http://$(HOST):$(PORT)/?f=html"
	@echo "    layers         http://$(HOST):$(PORT)/collections?f=html"
	@echo "    catalogue      http://$(HOST):$(PORT)/catalog?f=html"
	@echo "    health         http://$(HOST):$(PORT)/health"
	@echo "    API docs       http://$(HOST):$(PORT)/docs"
	@echo
	$(ONEMAP) serve --demo --host $(HOST) --port $(PORT)

test: venv system
	$(ONEMAP) db up
	$(PY) -m pytest -q --durations=25

lint: venv
	$(VENV)/bin/ruff check geo layers tiles api fixtures tests benchmarks

# tipg pins its own FastAPI/Starlette: features.py keeps it in .venv-tipg (made on first use), never
# in $(VENV). Pass options with e.g. `make bench BENCH_ARGS="--seconds 20 --workers 2"`.
bench: venv db
	$(PY) benchmarks/features.py $(BENCH_ARGS)

clean:
	-$(ONEMAP) db down
	rm -rf .onemap $(VENV)
