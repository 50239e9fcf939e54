# iotlake: `make demo` runs the demo, `make test` runs every test. Both set up what they need.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# mosquitto: the MQTT broker; chromium + chromium-driver: dashboard and phone-page browser
# tests; docker-compose: validates docker-compose.yml without a Docker engine;
# openjdk-17-jdk-headless + maven: Spark's JVM, the Kafka broker, and `make jars` (javac builds
# the catalog plugin).
APT_PACKAGES := mosquitto chromium chromium-driver docker-compose openjdk-17-jdk-headless maven

.PHONY: demo test test-fast test-compose lint deps venv jars localstack down clean

demo: deps venv jars
	$(BIN)/iotlake demo

test: deps venv jars localstack
	$(BIN)/python -m pytest

test-fast: deps venv jars
	$(BIN)/python -m pytest -m "not slow"

# The end-to-end tests against the `docker compose` stack, which must be up and healthy
# (`cp .env.example .env`, then `docker compose up --wait`). The compose-e2e workflow runs it.
test-compose: venv
	E2E_STACK=compose $(BIN)/python -m pytest tests/compose/test_compose_stack.py

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

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

# The JVM jars: Delta Lake, Spark's Kafka source and S3A for Spark; Apache Kafka for the
# embedded broker. Exact coordinates in jars/*.pom.xml; resolved from Maven Central once into
# .jars/<group>/ (Maven keeps its download cache in ~/.m2), so later runs need no network.
JAR_GROUPS := spark kafka
jars: deps $(foreach group,$(JAR_GROUPS),.jars/$(group)/.resolved) .jars/catalog/iotlake-catalog.jar \
  .jars/spark-classes.jsa

.jars/%/.resolved: jars/%.pom.xml
	rm -rf .jars/$*
	mvn -q -B -f $< dependency:copy-dependencies -DincludeScope=runtime \
	  -DoutputDirectory=$(CURDIR)/.jars/$*
	touch $@

# iotlake.catalog.LakeCatalog, the Spark catalog plugin that names the session catalog's
# tables catalog.schema.table as Databricks does (jars/catalog/src). Compiled against
# pyspark's own jars and .jars/spark/; a folder of its own, since the rule above empties
# .jars/<group>/ whenever it resolves a group. The venv (pyspark's jars) is made first but,
# order-only, does not make the jar rebuild when it changes.
CATALOG_SOURCES := $(shell find jars/catalog/src -name '*.java')
.jars/catalog/iotlake-catalog.jar: $(CATALOG_SOURCES) .jars/spark/.resolved | $(VENV)/.installed
	rm -rf .jars/catalog && mkdir -p .jars/catalog/classes
	javac --release 17 -Xlint:all,-path,-processing -Werror -d .jars/catalog/classes \
	  -cp "$$($(BIN)/python -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')/jars/*:.jars/spark/*" \
	  $(CATALOG_SOURCES)
	jar --create --file $@ -C .jars/catalog/classes .
	rm -rf .jars/catalog/classes

# The classes Spark's driver loads, archived with the JDK's class-data sharing so each driver
# maps them instead of loading them (spark_jobs/class_archive.py): made again when the JDK,
# the jars or the venv change, since an archive holds for the exact ones it was made with.
JAVA_BINARY := $(realpath $(shell command -v java))
.jars/spark-classes.jsa: .jars/spark/.resolved .jars/catalog/iotlake-catalog.jar $(VENV)/.installed $(JAVA_BINARY)
	$(BIN)/python -m spark_jobs.class_archive $@

# LocalStack host mode (`iotlake up --aws localstack`) needs Python 3.13 and pins its own
# crypto stack, so it gets a virtualenv of its own.
# pyenv's shims answer `command -v` for versions that are not active, so ask pyenv first.
PYTHON313 ?= $(shell p=$$(pyenv prefix 3.13.0 2>/dev/null) && echo $$p/bin/python || command -v python3.13)
localstack: .venv-localstack/.installed

.venv-localstack/.installed: Makefile
	$(PYTHON313) -m venv .venv-localstack
	.venv-localstack/bin/pip install -q 'localstack-core[runtime]==2026.3.0' 'cbor2<6' \
	  pyopenssl==24.3.0 cryptography==44.0.3 'service_identity<25'
	touch $@

down:
	$(BIN)/iotlake down

clean: down
	rm -rf .iotlake test-artifacts .jars
