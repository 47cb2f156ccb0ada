# The two commands a newcomer needs: `make run` and `make test`.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: install browser run test lint protos bench-holds bench-bookings bench-webhooks clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

## Start PostgreSQL, Redis, NATS and the four services; Ctrl-C stops them all.
run: install
	$(BIN)/calendence-stack

## Debian's Chromium and its chromedriver, for the manage page's browser tests (apt; as
## root, or through sudo). Nothing downloads a browser of its own.
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends \
			chromium chromium-driver; \
	fi

## Lint, type-check and run every test against real servers the session starts.
test: install browser lint
	@$(BIN)/pytest $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests: failing on purpose" >&2; exit 1; fi; \
	exit $$status

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

## Regenerate lib/calendence/*/v1 from protos/ (checked in; tests/test_protos.py guards it).
protos: install
	$(BIN)/python protos/generate.py

bench-holds: install
	$(BIN)/python bench/holds.py

bench-bookings: install
	$(BIN)/python bench/bookings.py

bench-webhooks: install
	$(BIN)/python bench/webhooks.py

clean:
	rm -rf $(VENV) .calendence .pytest_cache .mypy_cache .ruff_cache
