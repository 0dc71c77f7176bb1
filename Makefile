# The two commands a newcomer needs: `make run` and `make test`. Both create .venv if missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The dashboard's browser test drives Debian's Chromium (Playwright never downloads one).
CHROMIUM := /usr/bin/chromium

.PHONY: run test lint bench clean chromium

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/julia-chips run

lint: $(STAMP)
	$(BIN)/ruff check src tests bench deploy/vps
	$(BIN)/mypy --strict deploy/vps/julia_gateway.py
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint chromium
	$(BIN)/pytest

chromium:
	@test -x $(CHROMIUM) || ! command -v apt-get >/dev/null || \
		apt-get install -y -q chromium || { apt-get update -q && apt-get install -y -q chromium; }
	@test -x $(CHROMIUM) || { echo "make test needs Debian's chromium at $(CHROMIUM) for the" \
		"dashboard's browser test: install the chromium package" >&2; exit 1; }

bench: $(STAMP)
	$(BIN)/python bench/commands.py

clean:
	rm -rf $(VENV) .julia .pytest_cache .mypy_cache .ruff_cache
