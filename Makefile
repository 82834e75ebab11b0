# slatestream developer commands. Every target creates and reuses .venv on its own.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The deployment checkers (hadolint, compose schema, kubernetes-validate) live apart from the runtime.
DEPLOY_VENV := .venv-deploy
DEPLOY_STAMP := $(DEPLOY_VENV)/.installed
# One BLAS thread: the core's many small solves are much slower with threaded BLAS.
export OMP_NUM_THREADS ?= 1
export OPENBLAS_NUM_THREADS ?= 1

.PHONY: demo test lint typecheck purity unit lock clean deploy-check

# Every dependency at the version in requirements.lock (a fresh machine gets what CI tested).
$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip uv
	$(BIN)/uv pip install --python $(BIN)/python -q -c requirements.lock -e '.[dev]'
	touch $(STAMP)

## Run the main job on its embedded default: simulator -> every policy -> table + report.
demo: $(STAMP)
	$(BIN)/slatestream demo --out reports/demo

## Lint, type-check, purity check, then the whole test suite (a real Kafka broker included), less any
## test marked quarantine (a known open bug, docs/reliability.md "Open"; none at present).
test: $(STAMP) lint typecheck purity deploy-check
	$(BIN)/python -m pytest -q -m "not quarantine"

lint: $(STAMP)
	$(BIN)/ruff check online encoders streams slatestream tests bench examples

typecheck: $(STAMP)
	$(BIN)/mypy online encoders streams slatestream

purity: $(STAMP)
	$(BIN)/python tools/check_purity.py online

## Check Dockerfiles, the compose file, Kubernetes manifests, the dashboard and the OpenAPI file (no engine needed).
deploy-check: $(DEPLOY_STAMP)
	$(DEPLOY_VENV)/bin/python deploy/check.py

$(DEPLOY_STAMP): deploy/check-requirements.txt
	test -x $(DEPLOY_VENV)/bin/python || $(PYTHON) -m venv $(DEPLOY_VENV)
	$(DEPLOY_VENV)/bin/python -m pip install -q --disable-pip-version-check -r deploy/check-requirements.txt
	touch $(DEPLOY_STAMP)

unit: $(STAMP)
	$(BIN)/python -m pytest -q -m "not kafka and not onnx"

## Re-resolve requirements.lock from pyproject.toml (after changing a dependency; then run make test).
lock: $(STAMP)
	$(BIN)/uv pip compile -q --upgrade pyproject.toml --extra dev --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) $(DEPLOY_VENV) reports .pytest_cache .mypy_cache .ruff_cache
