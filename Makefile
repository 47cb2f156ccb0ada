# The two commands a newcomer needs: `make run` and `make test`.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: install browser run test test-unit lint protos bench wrk valgrind bench-holds bench-bookings bench-webhooks bench-grpc-hop bench-email bench-aof-rewrite bench-request-cost bench-instructions clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

## Start PostgreSQL, Redis, NATS and the four services; Ctrl-C stops them all.
## REPLICAS=2: two processes of each service; CLUSTER=1: a NATS cluster and a Redis
## Cluster instead of one server each.
REPLICAS ?= 1
CLUSTER ?=
run: install
	$(BIN)/calendence-stack --replicas $(REPLICAS) $(if $(filter 1 true yes,$(CLUSTER)),--cluster)

## Debian's Chromium and its chromedriver, for the manage page's browser tests (apt; as
## root, or through sudo). Nothing downloads a browser of its own.
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends \
			chromium chromium-driver; \
	fi

# pytest with the given arguments; collecting no tests (exit 5) fails too, so a typo in a
# path or marker never passes as green.
define run_pytest
	@$(BIN)/pytest $(1); status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests: failing on purpose" >&2; exit 1; fi; \
	exit $$status
endef

## Lint, type-check and run every test (unit and live-stack) against real servers the
## session starts; the 25 slowest setups, calls and teardowns are listed at the end.
## The suite runs in two lanes side by side, each a pytest session with its own stack and
## temp folder: the fuzzing, the clustered-store failure tests and the benches' own tests
## (mostly schemathesis's CPU, waits for failovers, and throw-away stacks under load)
## beside all the rest, so that neither lane takes much longer than the other. With
## PYTEST_ARGS, one session.
SECOND_LANE := tests/test_fuzz.py tests/cluster tests/scale_out tests/test_bench.py
test: install browser lint wrk valgrind
ifeq ($(strip $(PYTEST_ARGS)),)
	@lanes=$$(mktemp -d); \
	$(BIN)/pytest --durations=10 --basetemp=$$lanes/second $(SECOND_LANE) >$$lanes/second.log 2>&1 & second=$$!; \
	$(BIN)/pytest --durations=25 --basetemp=$$lanes/first $(addprefix --ignore=,$(SECOND_LANE)); first=$$?; \
	wait $$second; second=$$?; \
	echo "======== second lane: $(SECOND_LANE)"; cat $$lanes/second.log; \
	echo "======== lanes: first exited $$first, second exited $$second"; \
	for status in $$first $$second; do \
		if [ $$status -eq 5 ]; then echo "pytest collected no tests: failing on purpose" >&2; exit 1; fi; \
	done; \
	[ $$first -eq 0 ] && [ $$second -eq 0 ]
else
	$(call run_pytest,--durations=25 $(PYTEST_ARGS))
endif

## Only the pure-module tests in tests/unit: no servers, a few seconds.
test-unit: install
	$(call run_pytest,tests/unit $(PYTEST_ARGS))

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

## Regenerate lib/calendence/*/v1 from protos/ (checked in; tests/test_protos.py guards it).
protos: install
	$(BIN)/python protos/generate.py

## Every hot path against its naive floor, on a throw-away stack set up as `make run`'s:
## throughput, open-loop latency, CPU per request per process (bench/run.py --help).
BENCH_ARGS ?=
bench: install wrk
	$(BIN)/python bench/run.py $(BENCH_ARGS)

bench-holds:
	$(MAKE) bench BENCH_ARGS="--paths holds $(BENCH_ARGS)"

bench-bookings:
	$(MAKE) bench BENCH_ARGS="--paths book $(BENCH_ARGS)"

bench-webhooks:
	$(MAKE) bench BENCH_ARGS="--paths events $(BENCH_ARGS)"

## What one gRPC hop costs each side: unary calls against a stream, alone and batched.
bench-grpc-hop: install
	$(BIN)/python bench/grpc_hop.py

## What one request costs each process: /healthz, an authenticated lookup, a hold.
bench-request-cost: install wrk
	$(BIN)/python bench/request_cost.py

## Instructions per request of the gateway and hold-service, counted under callgrind: a
## figure that does not swing with the machine's load, for changes the timed runs cannot show.
bench-instructions: install wrk valgrind
	$(BIN)/python bench/instructions.py

## What one client email costs notify-service: composed and flattened, in one process.
bench-email: install
	$(BIN)/python bench/client_email.py

## Redis's CPU per hold placed, its append-only file's rewrites apart (bench/aof_rewrite.py).
bench-aof-rewrite: install
	$(BIN)/python bench/aof_rewrite.py

## The load generator, from Debian's packages (apt; as root, or through sudo).
wrk:
	@if ! command -v wrk >/dev/null; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq wrk; \
	fi

## valgrind (callgrind counts instructions for bench-instructions), from Debian's packages.
valgrind:
	@if ! command -v valgrind >/dev/null || ! command -v callgrind_control >/dev/null; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq valgrind; \
	fi

clean:
	rm -rf $(VENV) .calendence .pytest_cache .mypy_cache .ruff_cache
