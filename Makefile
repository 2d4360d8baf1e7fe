# One entry point for set-up, the demo chain and the tests. Every target depends on `install`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# detectron2 is not published under its own name; the package index has upstream's Python code as
# sal-detectron2 (cp310 wheel, pure Python use). Hash-pinned.
D2_REQ := sal-detectron2==0.7.2 --hash=sha256:491af0c7f79bdb2d178e46f6cb16a97c4ac968d45c41ea3f6b6435d59bbee561

.PHONY: install test clean-venv
.DEFAULT_GOAL := help

help:
	@echo "make install   create $(VENV) with torch, detectron2 and this project (editable)"
	@echo "make test      run the test suite (installs first)"

install: $(STAMP)

# Rebuilt when pyproject.toml changes. A detectron2 already importable from $(PYTHON) (a user's own
# build with compiled ops, in a system, conda or virtual environment) is kept: a .pth file puts its
# folder at the end of the venv's sys.path, so the venv's pinned packages still come first.
$(STAMP): pyproject.toml
	@set -e; \
	own_d2=$$($(PYTHON) -c 'import os, detectron2; print(os.path.dirname(os.path.dirname(detectron2.__file__)))' 2>/dev/null || true); \
	$(PYTHON) -m venv $(VENV); \
	sp=$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'); \
	$(PY) -m pip install -q --upgrade "pip>=24" "setuptools==80.9.0" wheel; \
	$(PY) -m pip install -q -e ".[dev]"; \
	if [ -n "$$own_d2" ]; then \
	  echo "[install] keeping the detectron2 importable from $(PYTHON) (in $$own_d2)"; \
	  echo "$$own_d2" > "$$sp/zz_user_detectron2.pth"; \
	elif ! $(PY) -c 'import detectron2' 2>/dev/null; then \
	  echo "[install] detectron2: installing sal-detectron2 0.7.2 (upstream's Python code) into $(VENV)"; \
	  req=$$(mktemp); echo "$(D2_REQ)" > $$req; \
	  $(PY) -m pip install -q --no-deps --only-binary=:all: --python-version 3.10 --implementation cp \
	      --require-hashes --target "$$sp" --upgrade -r $$req; \
	  rm -f $$req; rm -rf "$$sp/tools"; \
	fi; \
	$(PY) -c 'import torch, torchvision, detectron2; print("[install] torch", torch.__version__, "torchvision", torchvision.__version__, "detectron2", detectron2.__version__, "from", detectron2.__file__)'; \
	touch $(STAMP)

test: install
	$(PY) -m pytest -q

clean-venv:
	rm -rf $(VENV)
