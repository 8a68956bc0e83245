# Two commands on a fresh machine: `make reproduce` and `make test`. Both create .venv
# from the pins in pyproject.toml first (once), so nothing needs installing by hand.

# Python 3.11, 3.12 or 3.13: every pinned wheel exists for these three (TensorFlow 2.21 has none for
# 3.14; NumPy 2.4, pandas 3.1, scikit-learn 1.9 and matplotlib 3.11 none for 3.10). Unless PYTHON is
# given, .venv is built with the first of them that runs, in this order, found as pythonX.Y on the
# PATH or under pyenv's versions folder (a pyenv shim of a version not selected fails, so each
# candidate is run, not just looked up).
PYTHON_VERSIONS := 3.11 3.12 3.13
PYENV_VERSIONS  := $(or $(PYENV_ROOT),$(HOME)/.pyenv)/versions
PYTHON ?=
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
OUT    ?= results
# `make venv WHEELHOUSE=dir`: install from a folder `make wheelhouse` filled, with no network
WHEELHOUSE ?=
PIP_FROM := $(if $(WHEELHOUSE),--no-index --find-links $(abspath $(WHEELHOUSE)))
# The bytecode of what runs, compiled on every core (this environment may set PYTHONDONTWRITEBYTECODE,
# so nothing else writes it): the packages' own test suites, pip, debugpy's vendored debugger and
# playwright's async API (the tests drive the sync one) never run here, so they are skipped.
NO_COMPILE := /(tests?|pip|debugpy/_vendored|playwright/async_api)/

# The site: make test executes copies of the notebooks in build/book/notebooks (in place, so each
# runs once), then Sphinx renders them with their outputs and the docs' pages into build/site.
BOOK      := build/book
EXECUTED  := $(BOOK)/notebooks
SITE      := build/site
SITE_DOCS := $(filter-out docs/design-notes.md,$(wildcard docs/*.md))
# tests that read what the notebook run wrote and the site built: run after them, with --built
AFTER     := tests/test_notebook_outputs.py tests/test_site.py
NBMAKE    := --nbmake --overwrite --nbmake-timeout=600
# the pages laid out in build/book beside the executed notebooks (solutions too: teaching notes may
# link one), then Sphinx (site/conf.py; warnings are errors, a fresh build each time so none is missed)
SITE_BUILD = rm -rf $(SITE) build/doctrees $(BOOK)/docs $(BOOK)/solutions && mkdir -p $(BOOK)/docs && \
	cp site/index.md $(BOOK)/ && cp $(SITE_DOCS) $(BOOK)/docs/ && { test ! -d solutions || cp -r solutions $(BOOK)/; } && \
	$(PY) -m sphinx -q -W --keep-going -n -b html -c site -d build/doctrees $(BOOK) $(SITE) && \
	echo "site: $(SITE)/index.html"

# `make smoke`: the core package (no extras) in its own venv on a second Python version: the first
# of PYTHON_VERSIONS found that is not .venv's, or SMOKE_PYTHON=/path/to/python3.X
SMOKE_PYTHON ?=
SMOKE_VENV  := .venv-smoke
SMOKE_PY    := $(SMOKE_VENV)/bin/python
SMOKE_STAMP := $(SMOKE_VENV)/.installed

# $(call find_python,VERSIONS): prints the first interpreter of VERSIONS that runs; fails if none
find_python = for v in $(1); do for p in python$$v $(PYENV_VERSIONS)/$$v.*/bin/python$$v; do \
	"$$p" -c 'import sys; print(sys.executable)' 2>/dev/null && exit 0; done; done; exit 1
# $(call python_for,VENV_DIR,VERSIONS,VARIABLE): sets $$python to the interpreter to build VENV_DIR with:
# the one VARIABLE names if set (checked against VERSIONS), else the first of VERSIONS found; says what to
# install if none
python_for = python="$($(3))"; \
	if [ -z "$$python" ]; then python=$$($(call find_python,$(2))) || { \
	  echo "No Python $(2) found to build $(1): looked for" $$(for v in $(2); do printf 'python%s ' $$v; done) \
	    "on the PATH and under $(PYENV_VERSIONS)." >&2; \
	  echo "Install one with its venv module (Debian 12, Ubuntu 24.04: apt-get install python3-venv; macOS:" \
	    "brew install python@3.12; any system: pyenv install 3.12), or name it: make ... $(3)=/path/to/python3.X" >&2; \
	  exit 1; }; fi; \
	"$$python" -c 'import sys; v = "%d.%d" % sys.version_info[:2]; sys.exit(0 if v in sys.argv[2:] else \
	  "%s is Python %s; %s needs one of %s" % (sys.executable, v, sys.argv[1], " ".join(sys.argv[2:])))' $(1) $(2) || exit 1

.PHONY: venv lint reproduce test test-fast test-numeric test-cpu notebooks site site-html smoke wheelhouse lab seeds bench bench-sweep zoo \
        studies clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || { $(call python_for,$(VENV),$(PYTHON_VERSIONS),PYTHON); \
	  echo "$$python -m venv $(VENV)  ($$("$$python" -V))"; "$$python" -m venv $(VENV); }
	$(PY) -m pip install --quiet $(PIP_FROM) --upgrade pip
	$(PY) -m pip install --quiet $(PIP_FROM) --no-compile -e ".[dev]"
	$(PY) -m compileall -q -j 0 -x '$(NO_COMPILE)' $(VENV)/lib >/dev/null
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (qlab)" >/dev/null
	touch $(STAMP)

reproduce: venv
	$(PY) -m qlab reproduce --out $(OUT)

# Step 1 runs the tests and executes every notebook once, each a fresh copy in build/book/notebooks
# that keeps its outputs (--overwrite), its kernel started with TensorFlow's C++ log fully on
# (tests/conftest.py). -n auto: one worker per core (pytest-xdist); --dist loadgroup keeps each
# file's tests, and the models they share, on one worker, and spreads the zoo matrix by model; the
# heaviest groups start first (tests/conftest.py). Step 2 builds the site from those copies (no
# notebook runs twice); step 3 reads the executed outputs (no stderr, no TensorFlow log line) and
# checks every link of the site. A failure in one step does not hide the others': all three run.
# `make lint`: ruff's formatter and linter at 100 columns (settings in pyproject.toml); first in
# `make test`, so a slip fails in seconds
lint: venv
	$(VENV)/bin/ruff format --check --quiet . || { echo "run: $(VENV)/bin/ruff format ." >&2; exit 1; }
	$(VENV)/bin/ruff check --quiet .

test: venv lint
	rm -rf $(EXECUTED) && mkdir -p $(EXECUTED) && cp notebooks/*.ipynb $(EXECUTED)/
	@status=0; \
	$(PY) -m pytest tests $(EXECUTED)/*.ipynb $(NBMAKE) -n auto --dist loadgroup --no-loadscope-reorder \
	    $(addprefix --ignore=,$(AFTER)) || status=$$?; \
	{ $(SITE_BUILD); } || status=1; \
	$(PY) -m pytest $(AFTER) --built || status=1; \
	exit $$status

test-fast: venv
	$(PY) -m pytest tests -m "not slow" $(addprefix --ignore=,$(AFTER))

# The tests whose tolerances are derived from float32 rounding (tests/tolerance.py): they compare
# two computations (the converter's calibration and LiteRT, TensorFlow's debugger and qlab, qlab's
# float ops and LiteRT's kernels, the integer engine and LiteRT), so another numeric path must not
# break them.
NUMERIC       := tests/test_grid.py tests/test_per_layer.py tests/test_zoo.py tests/test_any_model.py \
                 tests/test_intmath.py tests/test_runtime.py tests/test_calibration.py tests/test_buckets.py \
                 tests/test_recurrent.py tests/test_explorer.py tests/test_aeq.py
NUMERIC_PATHS := QLAB_TEST_KERNELS=builtin QLAB_TEST_KERNELS=reference QLAB_TEST_THREADS=2 \
                 TF_ENABLE_ONEDNN_OPTS=0 ONEDNN_MAX_CPU_ISA=AVX2
# `make test-numeric`: NUMERIC under each of NUMERIC_PATHS in turn: LiteRT's builtin and reference
# kernels instead of XNNPACK, two threads, TensorFlow without oneDNN and with oneDNN held to AVX2
test-numeric: venv
	@status=0; for path in $(NUMERIC_PATHS); do echo "== $$path"; \
	  env $$path $(PY) -m pytest $(NUMERIC) -q -p no:cacheprovider -n auto --dist loadgroup || status=1; done; \
	exit $$status

# `make test-cpu`: EMULATED on an emulated CPU without AVX-512 (Debian's qemu-user: apt-get install
# qemu-user), CPU=Haswell-v4 by default (AVX2 and FMA); any model `qemu-x86_64 -cpu help` lists.
# x86-64 hosts only; qemu first warns of CPU features its emulator lacks (harmless). The models come from the cache (run make test first, or they train emulated).
# Emulation is slow (about 30 s to import TensorFlow), so EMULATED is the set that failed on an
# AVX2-only CPU, the grids of every mode, and the integer engine held bit for bit to LiteRT's kernels
# (whose vector loops depend on the SIMD width).
CPU      ?= Haswell-v4
EMULATED ?= tests/test_grid.py tests/test_per_layer.py::test_local_view_agrees_with_the_quantization_debugger \
            "tests/test_zoo.py::test_every_predicted_grid_equals_the_file[lstm_rows-full_integer]" \
            "tests/test_zoo.py::test_every_predicted_grid_equals_the_file[lstm_rows-integer_only]" \
            tests/test_intmath.py tests/test_intmath_zoo.py
test-cpu: venv
	@command -v qemu-x86_64 >/dev/null || { echo "make test-cpu needs qemu-x86_64: apt-get install qemu-user" >&2; exit 1; }
	QEMU_CPU=$(CPU) qemu-x86_64 $(PY) -c 'import numpy as n; from numpy._core._multiarray_umath import __cpu_features__ as f; \
	  print("emulated CPU $(CPU):", ", ".join(k for k in ("AVX2", "FMA3", "AVX512F", "AVX512VNNI") if f.get(k)))' 2>/dev/null
	QEMU_CPU=$(CPU) qemu-x86_64 $(PY) -m pytest $(EMULATED) -q -p no:cacheprovider

# every notebook in place (outputs are not kept); `make site` keeps them
notebooks: venv
	$(PY) -m pytest notebooks --nbmake --nbmake-timeout=600

# The site in build/site (open build/site/index.html): executes the notebooks whose copy in
# build/book/notebooks is missing, older than the notebook or not run through (site/stale.py; make
# test leaves fresh ones, so then nothing runs), renders them and docs' pages, and checks every
# internal link. No network.
site: venv
	@mkdir -p $(EXECUTED); stale=$$($(PY) site/stale.py $(EXECUTED)); \
	if [ -n "$$stale" ]; then echo "executing:" $$stale; for copy in $$stale; do cp notebooks/$${copy##*/} $$copy; done; \
	  TF_CPP_MIN_LOG_LEVEL=0 $(PY) -m pytest -p no:cacheprovider -q $$stale $(NBMAKE) -n auto || { \
	    touch -d 1970-01-01 $$stale; exit 1; }; fi  # a failed run leaves its copies stale
	$(SITE_BUILD)
	$(PY) -m pytest -q tests/test_site.py --built

# build/site from the executed copies as they are (Sphinx, site/conf.py; warnings are errors)
site-html: venv
	$(SITE_BUILD)

# The core package alone (no jupyter, no test tools) on another supported Python than .venv's, in
# .venv-smoke: import qlab, train a one-epoch model, convert it, measure it on LiteRT (tests/smoke.py)
smoke: $(SMOKE_STAMP)
	$(SMOKE_PY) tests/smoke.py

$(SMOKE_STAMP): pyproject.toml
	@test -x $(SMOKE_PY) || { \
	  version='import sys; print("%d.%d" % sys.version_info[:2])'; \
	  main=$$( { test -x $(PY) && $(PY) -c "$$version"; } || \
	           { p=$$($(call find_python,$(PYTHON_VERSIONS))) && "$$p" -c "$$version"; } ); \
	  others=$$(for v in $(PYTHON_VERSIONS); do [ "$$v" = "$$main" ] || echo $$v; done); \
	  $(call python_for,$(SMOKE_VENV),$$others,SMOKE_PYTHON); \
	  echo "$$python -m venv $(SMOKE_VENV)  ($$("$$python" -V); .venv has $$main)"; "$$python" -m venv $(SMOKE_VENV); }
	$(SMOKE_PY) -m pip install --quiet $(PIP_FROM) --upgrade pip
	$(SMOKE_PY) -m pip install --quiet $(PIP_FROM) --no-compile -e .
	touch $(SMOKE_STAMP)

# Every pinned wheel, with pip and the build requirements of the editable install, into
# $(WHEELHOUSE) (default wheelhouse/): `make venv WHEELHOUSE=wheelhouse` then installs with no network.
# For this machine's platform and the Python versions in WHEELHOUSE_PYTHONS (default: .venv's, or the
# one make venv would pick), e.g. WHEELHOUSE_PYTHONS="3.11 3.12 3.13" for laptops with different
# Pythons. Needs no .venv (any supported Python's pip downloads).
WHEELHOUSE_PYTHONS ?=
WH = $(or $(WHEELHOUSE),wheelhouse)
wheelhouse:
	@python=$(PY); test -x $$python || { $(call python_for,$(WH),$(PYTHON_VERSIONS),PYTHON); }; \
	versions="$(WHEELHOUSE_PYTHONS)"; \
	[ -n "$$versions" ] || versions=$$("$$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \
	mkdir -p $(WH) && "$$python" -c 'import tomllib; t = tomllib.load(open("pyproject.toml", "rb")); \
	  p = t["project"]; print("\n".join(["pip"] + t["build-system"]["requires"] + p["dependencies"] + \
	  [s for extra in p["optional-dependencies"].values() for s in extra if not s.startswith("qlab[")]))' \
	  > $(WH)/requirements.txt || exit 1; \
	for v in $$versions; do echo "$(WH): the wheels for Python $$v"; \
	  "$$python" -m pip download --quiet --only-binary=:all: --python-version $$v --dest $(WH) \
	    -r $(WH)/requirements.txt || exit 1; done; \
	echo "$(WH): $$(ls $(WH)/*.whl | wc -l) wheels, $$(du -sh $(WH) | cut -f1)"

seeds: venv
	$(PY) -m qlab seeds --out $(OUT)

bench: venv
	$(PY) -m qlab bench --out $(OUT)

zoo: venv
	$(PY) -m qlab zoo --out $(OUT)

# every study (training-time and post-training), five seeds each (resumable: finished cells come from the cache)
studies: venv
	for name in bits delay pruning clustering recurrent calibration-size calibration-method aeq sensitivity \
	            mixed-precision; do $(PY) -m qlab study $$name --out $(OUT) || exit 1; done

# the sweep engine's speed-up on 1 and 2 worker processes, over the calibration-size study's grid
# (its models trained once, in a warm cache; its five seeds; two interleaved rounds)
bench-sweep: venv
	$(PY) -m qlab sweep-bench calibration-size --out $(OUT) --seeds 0 1 2 3 4 --rounds 2

# as root (containers, many workshop VMs) JupyterLab refuses to start without --allow-root
lab: venv
	$(VENV)/bin/jupyter lab notebooks $(if $(filter 0,$(shell id -u)),--allow-root)

clean:
	rm -rf data/cache $(OUT) .pytest_cache build test-artifacts
