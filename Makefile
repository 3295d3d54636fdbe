# quotebot: the two commands a newcomer needs are `make run` and `make test`.
# Everything is installed into .venv by this file; nothing is assumed on the machine
# but Python 3.11+.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test install index lint bench bench-scale eval quality train clean

# Run the bot. With TELEGRAM_BOT_TOKEN set it connects to Telegram; without it,
# it opens a chat in this terminal over the same answering code.
run: index
	$(BIN)/python -m bot

# Lint, then the whole test suite (real model, real FAISS, real PTB over HTTP).
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch is pinned in pyproject.toml to the CPU build; see README "Installing".
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Build or refresh the index when the corpus (or the model) changed since the last
# build; only new or changed articles are embedded again. Nothing to do costs a second.
index: $(STAMP)
	$(BIN)/python -m index build --if-changed

lint: $(STAMP)
	$(BIN)/ruff check .

eval: index
	$(BIN)/python -m index eval ../shared/eval/dev_qa.jsonl --misses
	$(BIN)/python -m index eval eval/holdout_qa.jsonl --misses

# Answer quality, held out: quotebot's models fitted fold by fold (folds by article) on
# ../shared/eval, beside BM25, dense and their fusion, one table per question set.
quality: $(STAMP)
	$(BIN)/python -m index quality

# Learn the ranker, the "not found" and the highlight models again and write them into index/models,
# with a record of the data, folds, seed and held-out figures (training.json).
train: $(STAMP)
	$(BIN)/python -m index train

bench: index
	$(BIN)/python scripts/benchmark.py

# Scale benchmark (issue 8): synthetic archives of 20k, 100k and 1M passages built, loaded
# and queried with a tiny random model, so the index machinery is measured, not the
# encoder; prints one table, asserts nothing. The 1M size needs a long time and much
# memory. Archives are kept in /tmp/quotebot-bench-scale (--workdir) and reused.
# With the real model (embedding dominates; 20k passages take minutes on 2 cores):
#   $(BIN)/python scripts/bench_scale.py --sizes 20000
bench-scale: $(STAMP)
	$(BIN)/python scripts/bench_scale.py --tiny

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
