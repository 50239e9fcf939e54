# iotlake: `make demo` runs the demo, `make test` runs every test. Both set up what they need.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# mosquitto: the MQTT broker; chromium + chromium-driver: dashboard and phone-page browser
# tests; docker-compose: validates docker-compose.yml without a Docker engine.
APT_PACKAGES := mosquitto chromium chromium-driver docker-compose

.PHONY: demo test test-fast lint deps venv localstack down clean

demo: deps venv
	$(BIN)/iotlake up
	$(BIN)/iotlake provision
	$(BIN)/iotlake status

test: deps venv
	$(BIN)/python -m pytest

test-fast: deps venv
	$(BIN)/python -m pytest -m "not slow"

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

deps:
	@missing=""; for pkg in $(APT_PACKAGES); do \
	  dpkg -s $$pkg >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  echo "installing Debian packages:$$missing"; \
	  $$sudo apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$missing >/dev/null; fi

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -c requirements.lock -e '.[dev]'
	touch $@

# LocalStack host mode needs Python 3.13 (pyenv) and pins its own crypto stack.
localstack:
	$$(pyenv root)/versions/3.13.0/bin/python -m venv .venv-localstack
	.venv-localstack/bin/pip install -q localstack-core==2026.3.0 'cbor2<6' \
	  pyopenssl==24.3.0 cryptography==44.0.3 'service_identity<25'

down:
	$(BIN)/iotlake down

clean: down
	rm -rf .iotlake test-artifacts
