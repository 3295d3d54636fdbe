#!/bin/sh
# quotebot container entrypoint (runs under tini, which forwards SIGTERM).
#
# 1. Bring the index up to date with the corpus: `python -m index build --if-changed`
#    does nothing (no model load, a second or so) when the index already holds exactly
#    the corpus's files with the configured model, so a restart with an unchanged corpus
#    costs nothing and a restart with a changed one (a mounted corpus directory) rebuilds,
#    re-embedding only new or changed articles.
# 2. exec the command (default: `python -m bot`), so it receives signals directly.
#
# The entrypoint's own messages go to stderr, one line each, so that a command's stdout
# (e.g. `python -m index search --json`) stays clean; `docker logs` shows both streams.
# QUOTEBOT_SKIP_INDEX_BUILD=1 skips step 1.
set -eu

log() {
    printf '%s %s quotebot.entrypoint: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%S)" "$1" "$2" >&2
}

index_dir=${QUOTEBOT_INDEX_DIR:-var/index}
corpus_dir=${QUOTEBOT_CORPUS_DIR:-corpus}

index_loads() {  # cheap: reads the index without loading the model
    python -m index stats >/dev/null 2>&1
}

if [ "${QUOTEBOT_SKIP_INDEX_BUILD:-0}" = 1 ]; then
    log INFO "QUOTEBOT_SKIP_INDEX_BUILD=1: using the index at $index_dir as it is"
elif [ ! -e "$corpus_dir" ]; then
    log WARNING "no corpus at $corpus_dir; using the index at $index_dir as it is"
elif [ -w "$index_dir" ] || { [ ! -e "$index_dir" ] && mkdir -p "$index_dir" 2>/dev/null; }; then
    # stdout to stderr too: the build's summary is a log line, not the command's output
    if ! python -m index build --if-changed --no-progress 1>&2; then
        if index_loads; then
            log WARNING "index build from $corpus_dir failed; serving the previous index at $index_dir"
        else
            log ERROR "index build from $corpus_dir failed and no usable index is at $index_dir"
            exit 1
        fi
    fi
elif python - <<'PY'
import sys
from index.build import is_up_to_date
from index.settings import IndexSettings
s = IndexSettings()
sys.exit(0 if is_up_to_date(s.corpus_dir, s.index_dir, s.model) else 1)
PY
then
    log INFO "index at $index_dir (read-only) is up to date with $corpus_dir"
elif index_loads; then
    log WARNING "index at $index_dir does not match $corpus_dir but is not writable by \
uid $(id -u), so it is used as it is; to rebuild, make it writable (chown $(id -u) on the \
host) or use a named volume"
else
    log ERROR "no usable index at $index_dir, and it is not writable by uid $(id -u) to \
build one; make it writable (chown $(id -u) on the host) or use a named volume"
    exit 1
fi

exec "$@"
