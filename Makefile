# One entry point for set-up, the demo chain and the tests. Every target depends on `install`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# detectron2 is not published under its own name; the package index has upstream's Python code as
# sal-detectron2 (cp310 wheel, pure Python use). Hash-pinned.
D2_REQ := sal-detectron2==0.7.2 --hash=sha256:491af0c7f79bdb2d178e46f6cb16a97c4ac968d45c41ea3f6b6435d59bbee561

.PHONY: help install demo test lint clean-venv gpu-check wheels
.DEFAULT_GOAL := help

help:
	@echo "make install              create $(VENV) with torch, detectron2 and this project (editable)"
	@echo "make demo                 = make pretrain && make voc-det coco-mask (built-in data: minutes on 2 CPU cores)"
	@echo "make test                 lint, then run the test suite (installs first)"
	@echo "make lint                 ruff: lint and import order (line length 120, pyproject.toml)"
	@echo "make data                 write the built-in synthetic dataset (cached)"
	@echo "make pretrain             MoCo v2 pretraining (DATA=, ARCH=, GPUS= for a real run)"
	@echo "make pretrain-supervised  supervised baseline on labelled ImageFolder data"
	@echo "make knn | lincls         kNN / linear evaluation of a checkpoint (CKPT=, TRAIN=, VAL=)"
	@echo "make convert IN= OUT=     checkpoint -> Detectron2 pickle, with the forward-pass proof"
	@echo "make voc-det | coco-mask  detection benchmarks (real data under DETECTRON2_DATASETS, else built-in)"
	@echo "make coco-vitdet          ViTDet for Vision Transformer checkpoints (VIT_WEIGHTS=\"a.pth b.pth\"; docs/vit.md)"
	@echo "make cityscapes-mask | voc-seg | cityscapes-seg   segmentation benchmarks (same runner, data rule, trials)"
	@echo "make coco-kp | lvis-mask  COCO keypoints (Keypoint R-CNN R50-FPN 2x) | LVIS v0.5 masks (Mask R-CNN R50-FPN 2x)"
	@echo "make tables               paper-style tables and plots from results/records"
	@echo "make transfer DATASET=    your own COCO/VOC data set: random / supervised / MoCo, then the tables"
	@echo "make gpu-check            the GPU check (CUDA path, speeds; tiny shapes on a CPU): docs/gpu-check.md"
	@echo "make wheels PY_VERSION=3.12 PLATFORM=manylinux_2_28_x86_64   dependencies for a node without a package index"
	@echo "make suite                every benchmark of the paper for DET_WEIGHTS, SUP_WEIGHTS and random: plan + estimate, runs, report card (SUITE_ARGS=\"--only voc-det,voc-seg --dry-run\")"

# The user's day on the built-in data (or on real data: DATA=..., DETECTRON2_DATASETS=...).
demo: install
	$(MAKE) pretrain
	$(MAKE) voc-det coco-mask TABLES_AFTER_RUN=
	$(MAKE) tables

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

test: install lint
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check .

clean-venv:
	rm -rf $(VENV)

# ---- pretraining (pretrain/) -------------------------------------------------------------------
# make pretrain                       MoCo v2 ResNet-18 demo on the synthetic set (CPU, a few minutes)
# make pretrain DATA=/data/imagenet/train ARCH=resnet50 GPUS=8   a real run (config moco_v2; torchrun if GPUS>1)
# Extra overrides: PRETRAIN_ARGS="optim.epochs=10 train.amp=bf16"; re-running resumes (--resume auto).
GPUS ?= 1
PRETRAIN_CONFIG ?= $(if $(DATA),moco_v2,demo)
PRETRAIN_OUT ?= $(if $(DATA),output/pretrain/moco_v2_$(or $(ARCH),resnet50),output/pretrain/moco_v2_demo)
PRETRAIN_LAUNCH = $(if $(filter-out 0 1,$(GPUS)),$(VENV)/bin/torchrun --nproc_per_node $(GPUS) -m mocobench.pretrain,$(PY) -m mocobench.pretrain)
PRETRAIN_DATA = $(if $(DATA),data.source=imagefolder data.path=$(DATA)) $(if $(ARCH),arch=$(ARCH))
.PHONY: pretrain pretrain-supervised knn lincls
pretrain: install
	$(PRETRAIN_LAUNCH) train --config $(PRETRAIN_CONFIG) --resume auto --output-dir $(PRETRAIN_OUT) $(PRETRAIN_DATA) $(PRETRAIN_ARGS)

pretrain-supervised: install
	$(PRETRAIN_LAUNCH) train --config supervised_demo --resume auto \
	  $(if $(DATA),--output-dir output/pretrain/supervised_$(or $(ARCH),resnet50)) $(PRETRAIN_DATA) $(PRETRAIN_ARGS)

# make knn|lincls CKPT=... TRAIN=<labelled ImageFolder> VAL=<labelled ImageFolder>
knn lincls: install
	@test -n "$(CKPT)" -a -n "$(TRAIN)" -a -n "$(VAL)" || { echo "usage: make $@ CKPT=checkpoint TRAIN=dir VAL=dir"; exit 2; }
	$(PY) -m mocobench.pretrain $@ --checkpoint $(CKPT) --train $(TRAIN) --val $(VAL) $(EVAL_ARGS)

# ---- results tables and plots (reporting/) --------------------------------------------------
# make tables    paper-style tables from every record under results/records: results/tables/tables.{md,csv,tex,html}
#                (Markdown also printed) and results/plots/*.png. Benchmark targets end with `$(MAKE) tables`.
# TABLES_ARGS="--pretrain-runs output/pretrain/moco_v2_demo" adds that run's loss / kNN curves.
# RESULTS=DIR: the results folder of every run target and of the tables they print (default results/).
RESULTS ?= results
.PHONY: tables
tables: install
	$(PY) -m mocobench tables --results $(RESULTS) $(TABLES_ARGS)

# Built-in synthetic data (data/synthetic): generated once per parameter set, then cached.
.PHONY: data
DATA_ROOT ?= output/synthetic
DATA_PRESET ?= demo
data: install
	$(PY) -m mocobench.data.synthetic --root $(DATA_ROOT) --preset $(DATA_PRESET)

# ---- detection benchmarks (detection/, runner/) ----------------------------------------
# make voc-det | coco-mask   real data under DETECTRON2_DATASETS: the paper's protocol (VOC07+12 Faster R-CNN
#   R50-C4 24k | COCO Mask R-CNN R50-FPN 1x) for DET_WEIGHTS (latest checkpoint of a pretraining folder) and
#   the baselines that exist (SUP_WEIGHTS, random). Without real data: the built-in demo (ResNet-18, tiny
#   schedule; coco-mask then runs Mask R-CNN C4 1x, DEMO_ALIASES in detection/benchmarks.py) comparing
#   `make pretrain`'s checkpoint, the supervised synthetic baseline (trained first if missing) and random init. Trials: 1 on real data, 2 on the built-in data (DET_TRIALS=5 for the paper's
#   count); DET_ARGS="--num-gpus 8 --amp ...".
# make convert IN=checkpoint OUT=weights.pkl   convert + prove one checkpoint
DET_WEIGHTS ?= $(PRETRAIN_OUT)
SUP_WEIGHTS ?= output/pretrain/supervised_demo
DET_TRIALS ?=
# each benchmark target prints the tables after its run; `make demo` prints them once, at the end
TABLES_AFTER_RUN ?= 1
# make cityscapes-mask | voc-seg | cityscapes-seg   the segmentation benchmarks (segmentation/): Cityscapes Mask
#   R-CNN R50-FPN, the paper appendix's FCN on dilated R50 for VOC train_aug -> val 2012 and Cityscapes; the
#   same weights, baselines, trials and built-in fallback as above.
.PHONY: voc-det coco-mask convert cityscapes-mask voc-seg cityscapes-seg coco-kp lvis-mask
voc-det coco-mask cityscapes-mask voc-seg cityscapes-seg coco-kp lvis-mask: install
	@if [ "$(SUP_WEIGHTS)" = output/pretrain/supervised_demo ] && ! ls $(SUP_WEIGHTS)/checkpoint_*.pth.tar >/dev/null 2>&1 \
	  && [ "$$($(PY) -c 'import sys; from mocobench.runner.cli import resolve_benchmark, data_mode; print(data_mode(resolve_benchmark(sys.argv[1]), "auto"))' $@ 2>/dev/null)" = True ]; then \
	  echo "[$@] no supervised synthetic baseline yet: make pretrain-supervised"; $(MAKE) pretrain-supervised; fi
	$(PY) -m mocobench run $@ --weights $(DET_WEIGHTS) --supervised $(SUP_WEIGHTS) --weights random --skip-missing \
	  --results $(RESULTS) \
	  $(if $(DET_TRIALS),--trials $(DET_TRIALS)) $(DET_ARGS)
	$(if $(TABLES_AFTER_RUN),$(MAKE) tables)

# make coco-vitdet VIT_WEIGHTS="dino_vitbase16_pretrain.pth mae_pretrain_vit_base.pth"   ViTDet Mask R-CNN, 100 epochs
#   (detection/vit; docs/vit.md) for each Vision Transformer checkpoint (DINO, MAE, MoCo v3, iBOT, DINOv2, timm;
#   converted with its proof; the ViT's size from the weights) and random init. Built-in data: a tiny ViT, short
#   schedule. VIT_ARGS="--vit-heads 12 ..." (heads when the file does not say), DET_ARGS as above.
VIT_WEIGHTS ?=
VIT_ARGS ?=
.PHONY: coco-vitdet
coco-vitdet: install
	$(PY) -m mocobench run $@ $(foreach w,$(VIT_WEIGHTS),--weights $(w)) --weights random --results $(RESULTS) \
	  $(if $(DET_TRIALS),--trials $(DET_TRIALS)) $(VIT_ARGS) $(DET_ARGS)
	$(if $(TABLES_AFTER_RUN),$(MAKE) tables)

convert: install
	@test -n "$(IN)" -a -n "$(OUT)" || { echo "usage: make convert IN=checkpoint OUT=weights.pkl"; exit 2; }
	$(PY) -m mocobench.detection.convert $(IN) $(OUT)

# ---- your own data set (data/custom.py; docs/own-data.md) ---------------------------------------------
# make transfer DATASET=widgets TRAIN=coco:ann/instances.json:images TEST=holdout:0.2
#   holds 20% of the annotated images out for test (split files in results/datasets/widgets/; TEST may
#   also be a second split: coco:ann/val.json:images), declares the data set (results/datasets/widgets.yaml),
#   fine-tunes USER_BENCH (det-fpn | det-c4 | mask-fpn | mask-c4) from DET_WEIGHTS (MoCo), SUP_WEIGHTS
#   (supervised) and random init, then prints the tables. Later runs name it alone: make transfer
#   DATASET=widgets. TRAIN/TEST may be voc:VOC_ROOT:SPLIT (TRAIN=voc:VOC_ROOT: every XML, with
#   TEST=holdout:F); DATASET=file.yaml declares it from a file. Extra runner options:
#   DET_ARGS="--epochs 24 --num-gpus 8 ..."
USER_BENCH ?= det-fpn
.PHONY: transfer
transfer: install
	@test -n "$(DATASET)" || { echo "usage: make transfer DATASET=name TRAIN=coco:ANN.json:IMAGE_DIR TEST=holdout:0.2 (or TEST=coco:...; voc:VOC_ROOT[:SPLIT])"; exit 2; }
	$(PY) -m mocobench run $(USER_BENCH) --dataset $(DATASET) $(if $(TRAIN),--train $(TRAIN)) $(if $(TEST),--test $(TEST)) \
	  --weights $(DET_WEIGHTS) --supervised $(SUP_WEIGHTS) --weights random --skip-missing --results $(RESULTS) \
	  $(if $(DET_TRIALS),--trials $(DET_TRIALS)) $(DET_ARGS)
	$(if $(TABLES_AFTER_RUN),$(MAKE) tables)

# ---- the GPU check and a node without a package index (docs/gpu-check.md) ---------------------------
# make gpu-check                     every check on the CUDA device (full shapes, <= 6 min) or tiny on a CPU
# make wheels PY_VERSION=3.12 PLATFORM=manylinux_2_28_x86_64   (manylinux2014_x86_64 = glibc 2.17: shapely 2.2
#   and pandas 3.1 have no wheel for it) the project's dependencies (not torch/torchvision, nor what they bring) as
#   wheels for that Python and platform in .whl/py$(PY_VERSION)-$(PLATFORM)/wheels (about 54 MiB); fvcore and
#   antlr4 wheels built here from their source archives; detectron2 fetched by the --python-version 3.10 trick.
#   On the node: python -m mocobench.benchmarks.perf.gpu_check.wheelhouse unpack DIR SITE; PYTHONPATH=SITE ...
PY_VERSION ?= 3.12
PLATFORM ?= manylinux_2_28_x86_64
GPU_CHECK_ARGS ?=
.PHONY: gpu-check wheels
gpu-check: install
	$(PY) -m mocobench.benchmarks.perf.gpu_check $(GPU_CHECK_ARGS)

wheels: install
	$(PY) -m mocobench.benchmarks.perf.gpu_check.wheelhouse build --python-version $(PY_VERSION) --platform $(PLATFORM)
# ---- the whole paper in one command (runner/suite.py, reporting/card.py; docs/suite.md) ------------------
# make suite DET_WEIGHTS=... SUP_WEIGHTS=...   every benchmark of the paper (the registry's), cheap first, for
#   DET_WEIGHTS, SUP_WEIGHTS and random init: the plan with its estimate, the runs (finished trials skipped, a
#   failing benchmark reported at the end), then the report card in results/card/card.{md,csv,html,png}.
#   The built-in data: each benchmark runs its demo, as the single targets do. SUITE_ARGS="--only voc-det,voc-seg
#   --skip ... --dry-run --trials 5 --submit ..."; DET_ARGS as for the single targets.
SUITE_ARGS ?=
.PHONY: suite
suite: install
	@if [ "$(SUP_WEIGHTS)" = output/pretrain/supervised_demo ] && ! ls $(SUP_WEIGHTS)/checkpoint_*.pth.tar >/dev/null 2>&1 \
	  && [ "$$($(PY) -c 'import sys; from mocobench.runner.cli import resolve_benchmark, data_mode; print(data_mode(resolve_benchmark(sys.argv[1]), "auto"))' voc-det 2>/dev/null)" = True ] \
	  && [[ "$(SUITE_ARGS)" != *--dry-run* ]]; then \
	  echo "[suite] no supervised synthetic baseline yet: make pretrain-supervised"; $(MAKE) pretrain-supervised; fi
	$(PY) -m mocobench run suite --weights $(DET_WEIGHTS) --supervised $(SUP_WEIGHTS) --weights random --skip-missing \
	  --results $(RESULTS) \
	  $(if $(DET_TRIALS),--trials $(DET_TRIALS)) $(SUITE_ARGS) $(DET_ARGS)
