# The README's commands. Each target installs what it needs on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-16)
KAFKA  := dev/kafka/kafka.sh

.PHONY: help venv tools demo test test-unit bench faults soak broker-start broker-stop clean

help:
	@echo "make demo    run the tracker on the embedded store with a bundled sample, print a journey"
	@echo "make test    the whole test suite against a real Kafka broker and real chDB"
	@echo "make bench   throughput/latency benchmark (report in bench/results/)"
	@echo "make faults  the fault and bad-input suite at full length (docs/faults.md)"
	@echo "make soak    30 min at half the benchmark throughput, memory must stay flat (not in CI)"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

# docker-compose (Debian package; needs no Docker engine) validates docker-compose.yml in
# tests/unit/test_compose.py; chromium + chromium-driver run the web UI tests (Selenium,
# tests/integration/test_ui.py); npm fetches analytics.js and RudderStack's SDK for the browser tests.
# Installed only when missing; apt-get update only if the install fails.
# Segment's analytics.js from npm (no CDN) for the browser test (tests/integration/test_browser_cors.py).
ANALYTICS_JS_VERSION := 1.84.3
ANALYTICS_JS_DIR := .cache/npm/analytics-next-$(ANALYTICS_JS_VERSION)
ANALYTICS_JS := $(ANALYTICS_JS_DIR)/package/dist/umd/index.js
# RudderStack's JS SDK from npm, the bundled build (plugins inside: no CDN) for
# tests/integration/test_browser_rudderstack.py.
RUDDER_JS_VERSION := 3.34.1
RUDDER_JS_DIR := .cache/npm/rudderstack-analytics-js-$(RUDDER_JS_VERSION)
RUDDER_JS := $(RUDDER_JS_DIR)/package/dist/npm/modern/bundled/umd/index.js

tools:
	@command -v docker-compose >/dev/null 2>&1 || { \
	  sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $$sudo apt-get install -y --no-install-recommends docker-compose \
	  || { $$sudo apt-get update && $$sudo apt-get install -y --no-install-recommends docker-compose; }; }
	@{ [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; } || { \
	  sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $$sudo apt-get install -y --no-install-recommends chromium chromium-driver \
	  || { $$sudo apt-get update && $$sudo apt-get install -y --no-install-recommends chromium chromium-driver; }; }
	@command -v npm >/dev/null 2>&1 || { \
	  sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $$sudo apt-get install -y --no-install-recommends npm \
	  || { $$sudo apt-get update && $$sudo apt-get install -y --no-install-recommends npm; }; }
	@[ -f $(ANALYTICS_JS) ] || { \
	  mkdir -p $(ANALYTICS_JS_DIR) && cd $(ANALYTICS_JS_DIR) && npm pack --silent @segment/analytics-next@$(ANALYTICS_JS_VERSION) >/dev/null \
	  && tar xzf segment-analytics-next-$(ANALYTICS_JS_VERSION).tgz && rm segment-analytics-next-$(ANALYTICS_JS_VERSION).tgz; }
	@[ -f $(RUDDER_JS) ] || { \
	  mkdir -p $(RUDDER_JS_DIR) && cd $(RUDDER_JS_DIR) && npm pack --silent @rudderstack/analytics-js@$(RUDDER_JS_VERSION) >/dev/null \
	  && tar xzf rudderstack-analytics-js-$(RUDDER_JS_VERSION).tgz && rm rudderstack-analytics-js-$(RUDDER_JS_VERSION).tgz; }

broker-start:
	@PYTHON=$(abspath $(BIN)/python) $(KAFKA) start

broker-stop:
	@$(KAFKA) stop

# Starts a broker only if none answers at JOURNEYS_KAFKA_BOOTSTRAP, and stops only what it started.
demo: $(STAMP)
	@set -e; started=0; \
	if ! PYTHON=$(abspath $(BIN)/python) $(KAFKA) status >/dev/null 2>&1; then started=1; fi; \
	PYTHON=$(abspath $(BIN)/python) $(KAFKA) start; \
	rc=0; $(BIN)/journeys demo $(DEMO_ARGS) || rc=$$?; \
	if [ $$started = 1 ] && [ -z "$(findstring --keep-running,$(DEMO_ARGS))" ]; then $(KAFKA) stop; fi; \
	exit $$rc

# tests/conftest.py starts the broker (if none is reachable) and stops it afterwards.
test: tools $(STAMP)
	PYTHON=$(abspath $(BIN)/python) $(BIN)/python -m pytest $(PYTEST_ARGS)

# The fault and bad-input suite at full length (docs/faults.md): 20 random kill trials per kill
# scenario, a 60 s ClickHouse outage, 3x the workload. Prints the results table (and writes it to
# test-artifacts/faults.md). `make test` runs the same suite short (3 trials, 15 s outage).
faults: $(STAMP)
	FAULTS_TRIALS=20 FAULTS_FULL=1 PYTHON=$(abspath $(BIN)/python) $(BIN)/python -m pytest tests/faults -m faults \
	  --timeout 3600 $(PYTEST_ARGS)

# 30 minutes at half the benchmark throughput; memory must stay flat (bench/soak.py). Not in CI.
# SOAK_ARGS="--minutes 5 --rate 20" for a shorter run. Writes bench/results/soak.{json,md}.
soak: $(STAMP)
	PYTHON=$(abspath $(BIN)/python) $(BIN)/python -m bench.soak $(SOAK_ARGS)

test-unit: tools $(STAMP)
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

# Floors, end-to-end throughput and latency, worker RSS, restart, timeline query (< 15 min on
# 2 cores); writes bench/results/latest.{json,md}. BENCH_ARGS=--quick for a short run.
bench: $(STAMP)
	PYTHON=$(abspath $(BIN)/python) $(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf .journeys test-artifacts
