# The two commands: `make run` serves the API (embedded Postgres + Redis by default), `make test` tests it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export LITELLM_LOCAL_MODEL_COST_MAP ?= True

.PHONY: install run test test-reliability lint fmt migrations-check worker beat bench stop clean

$(BIN)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	touch $@

install: $(BIN)/.installed

node_modules/.installed: package.json
	@if command -v npm >/dev/null 2>&1; then npm install --no-audit --no-fund --silent && touch $@; \
	else echo "npm not found: the Node SDK test will be skipped"; fi

run: install
	$(BIN)/python manage.py serve

test: install
	@if command -v npm >/dev/null 2>&1; then $(MAKE) --no-print-directory node_modules/.installed; fi
	$(BIN)/python -m pytest -q

# The reliability suite's long profile (issue 12's figures); `make test` runs its fast profile.
test-reliability: install
	RELIABILITY_PROFILE=long $(BIN)/python -m pytest -q tests/reliability

lint: install
	$(BIN)/ruff check .

fmt: install
	$(BIN)/ruff format .

migrations-check: install
	$(BIN)/python manage.py makemigrations --check --dry-run

worker: install
	$(BIN)/python -m celery -A assistants_project worker --loglevel INFO

beat: install
	$(BIN)/python -m celery -A assistants_project beat --loglevel INFO

stop: install
	$(BIN)/python -c "from assistants_project import embedded as e; from pathlib import Path; import os; \
	d = Path(os.environ.get('ASSISTANTS_DATA_DIR', 'var')).resolve(); e.stop_redis(d); e.stop_postgres(d)"

clean:
	rm -rf $(VENV) node_modules
