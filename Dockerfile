# One image for every Herald process; the command picks the process.
# The console's front-end files (htmx), from the npm registry as locked.
FROM node:22-slim AS console-assets
WORKDIR /console
COPY console/package.json console/package-lock.json ./
RUN npm ci --no-audit --no-fund

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy
RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY gen ./gen
COPY mesh ./mesh
COPY gateway ./gateway
COPY console ./console
COPY --from=console-assets /console/node_modules ./console/node_modules
COPY userd ./userd
COPY templated ./templated
COPY deliveryd ./deliveryd
RUN uv sync --frozen --no-dev
# Herald's own modules compiled too (UV_COMPILE_BYTECODE covers .venv only): the pods run
# as nobody with PYTHONDONTWRITEBYTECODE, so each start would compile them again.
RUN .venv/bin/python -m compileall -q gen mesh gateway console userd templated deliveryd
ENV PATH="/app/.venv/bin:$PATH" HERALD_HOST=0.0.0.0
USER nobody
