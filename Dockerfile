# One image for every Herald process; the command picks the process.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy
RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY gen ./gen
COPY mesh ./mesh
COPY gateway ./gateway
COPY userd ./userd
COPY templated ./templated
COPY deliveryd ./deliveryd
RUN uv sync --frozen --no-dev
ENV PATH="/app/.venv/bin:$PATH" HERALD_HOST=0.0.0.0
USER nobody
