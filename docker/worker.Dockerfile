# The ai_generation worker (aigen-worker). Built from the repo root: docker compose does that (context: ..).
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# only what the package needs: the worker and the contracts it reads (the addon's schemas/ folder is the
# aigen_contracts package; the repo root's schemas is a link to it)
COPY setup.cfg pyproject.toml README.md ./
COPY addons/ai_generation/schemas ./addons/ai_generation/schemas
COPY worker ./worker
RUN pip install . && rm -rf /src

RUN useradd --system --uid 10001 --no-create-home aigen
USER aigen
WORKDIR /tmp

EXPOSE 9464
# metrics and /healthz on AIGEN_METRICS_PORT; everything else from AIGEN_* (see docs/worker.md)
CMD ["aigen-worker"]
