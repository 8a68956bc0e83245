# Two commands on a fresh machine: `make reproduce` and `make test`. Both create .venv
# from the pins in pyproject.toml first (once), so nothing needs installing by hand.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
OUT    ?= results
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: venv reproduce test test-fast notebooks lab seeds bench bench-sweep zoo studies clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: qlab needs Python 3.11 (set PYTHON=/path/to/python3.11)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --no-compile -e ".[dev]"
	$(PY) -m compileall -q -j 0 $(VENV)/lib >/dev/null  # the bytecode pip would write, on every core
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (qlab)" >/dev/null
	touch $(STAMP)

reproduce: venv
	$(PY) -m qlab reproduce --out $(OUT)

# -n auto: one worker per core (pytest-xdist); --dist loadgroup keeps each file's tests, and the
# models they share, on one worker, and spreads the zoo matrix by model; the heaviest groups
# start first (tests/conftest.py).
test: venv
	$(PY) -m pytest tests notebooks --nbmake --nbmake-timeout=600 -n auto --dist loadgroup --no-loadscope-reorder

test-fast: venv
	$(PY) -m pytest tests -m "not slow"

notebooks: venv
	$(PY) -m pytest notebooks --nbmake --nbmake-timeout=600

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

lab: venv
	$(VENV)/bin/jupyter lab notebooks

clean:
	rm -rf data/cache $(OUT) .pytest_cache
