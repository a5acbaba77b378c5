# The two commands: `make run` serves the API (embedded Postgres + Redis by default), `make test` tests it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export LITELLM_LOCAL_MODEL_COST_MAP ?= True

.PHONY: install run test test-reliability fuzz-long lint fmt migrations-check typecheck worker beat bench stop clean

$(BIN)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	touch $@

# code_interpreter's sandbox: its own venv (numpy, pandas, matplotlib, ipykernel), read inside the sandbox by an
# unprivileged uid, so built from the system's interpreter under /usr when there is one; and bubblewrap (`bwrap`).
SANDBOX_VENV := .sandbox-venv
SANDBOX_PYTHON ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || echo $(PYTHON))

$(SANDBOX_VENV)/.installed: sandbox/requirements.txt
	@if ! command -v bwrap >/dev/null 2>&1 || ! $(SANDBOX_PYTHON) -c "import ensurepip" 2>/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			apt-get update -qq && apt-get install -y -qq bubblewrap python3-venv; \
		else echo "code_interpreter needs the OS packages bubblewrap and python3-venv: install them (sudo apt-get install bubblewrap python3-venv) and run make install again."; fi; fi
	$(SANDBOX_PYTHON) -m venv $(SANDBOX_VENV)
	$(SANDBOX_VENV)/bin/pip install -q --upgrade pip
	$(SANDBOX_VENV)/bin/pip install -q -r sandbox/requirements.txt
	touch $@

install: $(BIN)/.installed $(SANDBOX_VENV)/.installed
	@# Debian's chromium + chromedriver for the admin's browser test (tests/test_browser_admin.py), where root and apt-get exist
	@if ! command -v chromedriver >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -q && apt-get install -y -q chromium chromium-driver; fi

node_modules/.installed: package.json
	@if command -v npm >/dev/null 2>&1; then npm install --no-audit --no-fund --silent && touch $@; \
	else echo "npm not found: the Node SDK test will be skipped"; fi

# Reads .env when there is one; a variable already set in the environment wins over the file.
run: install
	@if [ -f .env ]; then echo "Reading .env (variables set in the environment take precedence)"; \
	  exec $(BIN)/dotenv -f .env run --no-override $(BIN)/python manage.py serve; \
	else exec $(BIN)/python manage.py serve; fi

# In order, each failing the target: lint, types (mypy + django-stubs, config in pyproject.toml, cache in
# .mypy_cache), then the suite (the migrations check is one of its tests: tests/test_migrations.py).
test: install
	@if command -v npm >/dev/null 2>&1; then $(MAKE) --no-print-directory node_modules/.installed; fi
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

fuzz-long: install
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-200} $(BIN)/python -m pytest -q tests/fuzz
# The reliability suite's long profile (issue 12's figures: each scenario prints its counts, -s shows them, and the
# durations say how long each took); `make test` runs its fast profile.
test-reliability: install
	RELIABILITY_PROFILE=long $(BIN)/python -m pytest -q -s --durations=0 tests/reliability

lint: install
	$(BIN)/ruff check .

fmt: install
	$(BIN)/ruff format .

migrations-check: install
	$(BIN)/python -m pytest -q tests/test_migrations.py

typecheck: install
	$(BIN)/mypy

worker: install
	$(BIN)/python -m celery -A assistants_project worker --loglevel INFO

beat: install
	$(BIN)/python -m celery -A assistants_project beat --loglevel INFO

stop: install
	$(BIN)/python -c "from assistants_project import embedded as e; from pathlib import Path; import os; \
	d = Path(os.environ.get('ASSISTANTS_DATA_DIR', 'var')).resolve(); e.stop_redis(d); e.stop_postgres(d)"

clean:
	rm -rf $(VENV) $(SANDBOX_VENV) node_modules
