# The two commands: `make run` starts a server, `make test` runs the whole suite.
# Both create .venv and install the project into it first (again only when pyproject.toml changes).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test test-ric bench bench-esm bench-images bench-streaming bench-auth bench-console clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.run-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.run-installed

run: $(VENV)/.run-installed
	$(BIN)/lambdalet server

# Three passes: everything (linux sandbox where the host allows it, SQLite); the process backend;
# and what keeps state in the database against a throwaway PostgreSQL (scripts/with-postgres).
PG_TESTS := tests/integration/test_async.py tests/integration/test_destinations.py \
	tests/integration/test_persistence.py tests/integration/test_functions_api.py \
	tests/integration/test_versions.py tests/integration/test_aliases.py \
	tests/integration/test_esm_api.py tests/integration/test_stream_poller.py tests/integration/test_schedules.py \
	tests/integration/test_esm_nodes.py tests/integration/test_s3_code.py tests/integration/test_states_and_shapes.py \
	tests/integration/test_console.py tests/integration/test_iam_api.py tests/integration/test_iam_authorization.py \
	tests/integration/test_iam_nodes.py tests/integration/test_iam_accounts.py tests/integration/test_async_nodes.py \
	tests/integration/test_concurrency_nodes.py tests/integration/test_placement.py \
	tests/integration/test_database_outage.py tests/integration/test_code_nodes.py tests/integration/test_logs_nodes.py \
	tests/integration/test_change_signals.py tests/integration/test_cluster_netns.py
# Cluster-wide limits, code kept in the database and database outages are PostgreSQL's (SQLite is one
# machine, in-process): the first two passes leave them out.
POSTGRES_ONLY := --ignore=tests/integration/test_concurrency_nodes.py --ignore=tests/integration/test_database_outage.py \
	--ignore=tests/integration/test_code_nodes.py --ignore=tests/integration/test_change_signals.py \
	--ignore=tests/integration/test_cluster_netns.py
# Pollers and schedules do not depend on the sandbox backend: the process pass leaves them to the first.
NOT_SANDBOXED := --ignore=tests/integration/test_esm_sqs.py --ignore=tests/integration/test_esm_streams.py \
	--ignore=tests/integration/test_esm_crash.py --ignore=tests/integration/test_esm_api.py \
	--ignore=tests/integration/test_stream_poller.py --ignore=tests/integration/test_schedules.py \
	--ignore=tests/integration/test_frameworks.py --ignore=tests/integration/test_esm_observability.py \
	--ignore=tests/integration/test_esm_nodes.py
# Container images run under the linux backend only (test_images_process.py checks the process
# backend's refusal and stays in); the registry helpers' own tests need no second pass.
NOT_SANDBOXED += --ignore=tests/integration/test_images.py --ignore=tests/integration/test_oci_support.py \
	--ignore=tests/integration/test_registry_logins.py --ignore=tests/integration/test_hostile_requests.py \
	--ignore=tests/integration/test_fuzz_api.py
# The console is the same pages under either backend.
NOT_SANDBOXED += --ignore=tests/integration/test_console.py

# scripts/ensure-test-packages installs what the container-image and console tests use
# (docker-registry, busybox-static, apache2-utils, chromium) when missing and running as root,
# else says what to install.
test: $(VENV)/.test-installed
	scripts/ensure-test-packages
	$(BIN)/python -m pytest $(POSTGRES_ONLY)
	$(BIN)/python -m pytest tests/integration --sandbox process -m "not isolation and not snapstart and not ric" -q \
		$(NOT_SANDBOXED) $(POSTGRES_ONLY)
	scripts/with-postgres $(BIN)/python -m pytest $(PG_TESTS) -m "not isolation and not snapstart and not ric" -q

# AWS's own Node.js runtime interface client (npm aws-lambda-ric) as a custom runtime. Its native
# addon builds from source on first use (minutes; needs npm, cmake, g++, autoconf, automake, libtool).
test-ric: $(VENV)/.test-installed
	$(BIN)/python -m pytest tests/integration/test_node.py -m ric

bench: $(VENV)/.test-installed
	$(BIN)/python bench/invoke.py

bench-esm: $(VENV)/.test-installed
	$(BIN)/python bench/event_source_mappings.py

bench-images: $(VENV)/.test-installed
	$(BIN)/python bench/images.py

# Time to first byte of InvokeWithResponseStream against a warm buffered Invoke (needs node).
bench-streaming: $(VENV)/.test-installed
	$(BIN)/python bench/streaming.py

bench-auth: $(VENV)/.test-installed
	$(BIN)/python bench/auth.py

# The console's functions page in headless Chromium, with 1 function and with 1,000.
bench-console: $(VENV)/.test-installed
	scripts/ensure-test-packages
	$(BIN)/python bench/console.py

clean:
	rm -rf $(VENV) .lambdalet .pytest_cache
