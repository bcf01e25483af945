# The two commands a newcomer needs: `make run` (the whole loop) and `make test`.
# Both set up everything themselves: the virtual environment, the Python packages and,
# on first use, a Kafka broker's jars from Maven Central (cached in ~/.cache/erpbridge).
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: run test lint setup image lock

setup: $(STAMP)

# pip -qq for the package: setuptools' notes on editable installs are no warning of ours;
# errors still show.
$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "erpbridge needs Python >= 3.11")'
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install -qq -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $@

run: $(STAMP)
	$(VENV)/bin/erpbridge demo

# Two pytest-xdist workers, each with its own broker, registry, Tryton and Medusa: the
# tests mostly wait on servers, so two share this 2-core machine's CPU well.
test: $(STAMP)
	$(VENV)/bin/ruff check --no-cache streams connectors tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest -n 2 --dist worksteal

lint: $(STAMP)
	$(VENV)/bin/ruff check --no-cache streams connectors tests bench
	$(VENV)/bin/mypy

# The container image, daemonless (buildah, installed on first use as root on Debian):
# an OCI archive in build/image with its digest printed. BASE=<image> builds from a
# registry's base instead of one made from Debian's packages.
image: $(STAMP)
	$(VENV)/bin/python -m streams.local.image build $(if $(BASE),--base $(BASE))

# The image's pinned dependencies, resolved afresh from pyproject.toml.
lock: $(STAMP)
	$(VENV)/bin/python -m streams.local.image lock
