#!/usr/bin/env bash
# Container CI: lint the Dockerfile, build the image, use it as a user would.
#
#   1. hadolint Dockerfile (from the project venv: `pip install -e .[test]` installs it)
#   2. torch CPU wheel from pip's find-links into wheelhouse/, then build the image with
#      ../shared/tools/container-check.sh (buildah; base image stand-in made with debootstrap)
#   3. in the container: a question answered from the terminal ("85 votes"); a changed,
#      mounted corpus rebuilt into an index volume, and not rebuilt on the next start; the
#      bot against the tests' fake Telegram server on the host, then stopped with SIGTERM
#   4. the image size
#
# Every step has a time limit; all traffic stays on loopback (the container shares the
# host's network, the fake Telegram server binds 127.0.0.1).
# Env: WORK (podman/buildah storage, default /tmp/container-check), IMAGE, PYTHON (the
# project venv's python), BUILD_TIMEOUT (s, default 2700).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
CHECK=../shared/tools/container-check.sh
export WORK=${WORK:-/tmp/container-check}
export IMAGE=${IMAGE:-localhost/quotebot:ci}
export KEEP_IMAGE=1
# the storage and engine settings container-check.sh writes under WORK
export CONTAINERS_STORAGE_CONF=$WORK/storage.conf CONTAINERS_CONF=$WORK/containers.conf
QUESTION="how many votes did the 63rd resolution get?"
TOKEN=123456:CI-TEST-TOKEN-0123456789
BOT=quotebot-ci-bot
TMP=$(mktemp -d)
FAKE_PID=

cleanup() {
    [ -n "$FAKE_PID" ] && kill "$FAKE_PID" 2>/dev/null || true
    if command -v podman >/dev/null && [ -f "$CONTAINERS_CONF" ]; then
        timeout 60 podman rm -f -t 2 "$BOT" >/dev/null 2>&1 || true
        timeout 60 podman volume rm -f quotebot-ci-index >/dev/null 2>&1 || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT

T0=$EPOCHREALTIME
step() {  # step NAME: print a heading and remember when it started
    STEP=$1 STEP_T0=$EPOCHREALTIME
    echo "=== container-ci: $STEP"
}
done_step() {
    awk -v a="$STEP_T0" -v b="$EPOCHREALTIME" -v n="$STEP" 'BEGIN{printf "=== container-ci: %s: ok in %.1fs\n", n, b-a}'
}
fail() { echo "=== container-ci: $STEP: FAILED: $*" >&2; exit 1; }

# ---------------------------------------------------------------- 1. lint
step "hadolint"
[ -x .venv/bin/hadolint ] || fail ".venv/bin/hadolint missing (pip install -e '.[test]')"
timeout 120 .venv/bin/hadolint Dockerfile || fail "hadolint found problems"
done_step

# ---------------------------------------------------------------- 2. build
step "torch wheel into wheelhouse/"
mkdir -p wheelhouse
wheel=
# pip's find-links, from its config files and PIP_FIND_LINKS (space-separated lists)
for dir in $(timeout 60 "$PYTHON" -m pip config list 2>/dev/null |
             sed -n "s/^[^=]*find-links='\\(.*\\)'\$/\\1/p"); do
    for candidate in "${dir#file://}"/torch-2.13.0+cpu-cp311-*.whl; do
        [ -f "$candidate" ] && { wheel=$candidate; break 2; }
    done
done
if [ -n "$wheel" ]; then
    if cmp -s "$wheel" "wheelhouse/$(basename "$wheel")"; then
        echo "wheelhouse/$(basename "$wheel") already there"
    else
        timeout 300 cp "$wheel" wheelhouse/ && echo "copied $wheel"
    fi
else
    echo "no torch 2.13.0+cpu wheel in pip's find-links; the build will use TORCH_INDEX_URL"
fi
done_step

step "image build (container-check.sh)"
# The layer cache under WORK grows with each dependency change; below 15 GB free, drop it.
mkdir -p "$WORK"
if [ "$(df -Pk "$WORK" | awk 'NR==2 {print $4}')" -lt $((15 * 1024 * 1024)) ] &&
   command -v podman >/dev/null && [ -f "$CONTAINERS_CONF" ]; then
    echo "less than 15 GB free under $WORK: removing unused images (the layer cache)"
    timeout 600 podman image prune -af >/dev/null || true
fi
# container-check.sh builds, then runs one command in the image: a cheap look at the index.
# BUILDAH_LAYERS: keep each step's layer, so a rebuild on this machine (WORK kept) redoes only
# what changed; the dependency layers (pip from PyPI) then come from the cache.
BUILDAH_LAYERS=${BUILDAH_LAYERS:-true} RUN_ARGS="--no-healthcheck" \
    timeout "${BUILD_TIMEOUT:-2700}" bash "$CHECK" . python -m index stats ||
    fail "build or first run failed"
done_step

# ---------------------------------------------------------------- 3. use
# (no healthcheck timers for these one-off runs: podman would ask systemd, which isn't there)
RUN=(podman run --rm --network host --no-healthcheck)

step "search from the terminal"
timeout 300 "${RUN[@]}" "$IMAGE" python -m index search "$QUESTION" >"$TMP/search.out" ||
    { cat "$TMP/search.out"; fail "search failed"; }
cat "$TMP/search.out"
grep -q "85 votes" "$TMP/search.out" || fail "no '85 votes' quote in the answer"
done_step

step "mounted corpus: rebuilt when changed, and only then"
cp -r corpus "$TMP/corpus"
cat >"$TMP/corpus/ci-extra-article.md" <<'EOF'
---
publisher: CI test article
date: '2020-01-01'
---

The lighthouse keepers of the northern cape voted 12 to 3 to replace the old lamp with a brighter one.
EOF
chmod -R a+rX "$TMP"
timeout 60 podman volume rm -f quotebot-ci-index >/dev/null 2>&1 || true
mounts=(-v "$TMP/corpus:/app/corpus:ro" -v quotebot-ci-index:/app/var/index)
timeout 300 "${RUN[@]}" "${mounts[@]}" "$IMAGE" python -m index stats >"$TMP/first.out" 2>&1 || { cat "$TMP/first.out"; fail "first start"; }
cat "$TMP/first.out"
grep -q "^Indexed 6 article" "$TMP/first.out" || fail "the changed corpus was not indexed"
grep -q "1 embedded, 5 reused" "$TMP/first.out" || fail "unchanged articles were embedded again"
timeout 300 "${RUN[@]}" "${mounts[@]}" "$IMAGE" \
    python -m index search "How did the lighthouse keepers vote?" >"$TMP/second.out" 2>&1 ||
    { cat "$TMP/second.out"; fail "second start"; }
cat "$TMP/second.out"
grep -q "is up to date" "$TMP/second.out" || fail "the unchanged corpus was indexed again"
grep -q "voted 12 to 3" "$TMP/second.out" || fail "the new article is not searchable"
done_step

step "bot against the fake Telegram server"
"$PYTHON" -m tests.fake_telegram --port 0 --token "$TOKEN" --send "$QUESTION" \
    --expect "85 votes" --connect-timeout 180 --reply-timeout 60 >"$TMP/fake.out" 2>"$TMP/fake.err" &
FAKE_PID=$!
for _ in $(seq 100); do grep -q '^BASE_URL=' "$TMP/fake.out" 2>/dev/null && break; sleep 0.2; done
base_url=$(sed -n 's/^BASE_URL=//p' "$TMP/fake.out")
[ -n "$base_url" ] || { cat "$TMP/fake.err"; fail "the fake Telegram server did not start"; }
echo "fake Telegram at $base_url"
# (with its HEALTHCHECK; podman's complaint that systemd can't time it goes to podman-run.err)
timeout 120 podman run -d --name "$BOT" --network host \
    -e TELEGRAM_BOT_TOKEN="$TOKEN" -e TELEGRAM_BASE_URL="$base_url" "$IMAGE" \
    >/dev/null 2>"$TMP/podman-run.err" || { cat "$TMP/podman-run.err"; fail "podman run"; }
# the fake server exits by itself: 0 reply matched, 1 no reply, 2 never connected, 3 mismatch
fake_rc=0
timeout 300 tail --pid="$FAKE_PID" -f /dev/null || kill "$FAKE_PID" 2>/dev/null || true
wait "$FAKE_PID" || fake_rc=$?
FAKE_PID=
echo "--- reply:"; cat "$TMP/fake.out"
health=ok
timeout 60 podman healthcheck run "$BOT" || health=failed
echo "HEALTHCHECK while the bot runs: $health"
t_stop=$EPOCHREALTIME
timeout 60 podman stop -t 20 "$BOT" >/dev/null || true
stop_s=$(awk -v a="$t_stop" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}')
exit_code=$(timeout 60 podman inspect -f '{{.State.ExitCode}}' "$BOT" 2>/dev/null || echo '?')
echo "--- bot log (lines cut at 300 characters):"
timeout 60 podman logs "$BOT" 2>&1 | tail -n 40 | cut -c1-300 || true
timeout 60 podman rm -f "$BOT" >/dev/null 2>&1 || true
[ "$fake_rc" = 0 ] || { cat "$TMP/fake.err"; fail "no matching reply from the bot (fake server exit $fake_rc)"; }
echo "SIGTERM: stopped in ${stop_s}s, exit code $exit_code"
awk -v s="$stop_s" 'BEGIN{exit !(s < 15)}' || fail "the bot took ${stop_s}s to stop on SIGTERM"
[ "$exit_code" != 137 ] || fail "the bot did not stop on SIGTERM and was killed"
[ "$health" = ok ] || fail "the HEALTHCHECK failed"
done_step

# ---------------------------------------------------------------- 4. size
step "image size"
timeout 60 podman image inspect -f '{{.Size}}' "$IMAGE" |
    awk -v img="$IMAGE" '{printf "image %s: %.0f MB (%d bytes)\n", img, $1/1e6, $1}'
timeout 60 podman image ls "$IMAGE"
done_step

awk -v a="$T0" -v b="$EPOCHREALTIME" 'BEGIN{printf "=== container-ci: all passed in %.1fs\n", b-a}'
