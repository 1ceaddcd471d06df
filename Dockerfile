# One image for every mixopt process: api (`mixopt serve`), worker, gpu-worker and beat.
#
#   docker build -t mixopt .                                   # CPU torch (api, worker, beat)
#   docker build -t mixopt:gpu --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu126 .
#
# The CPU build pins torch from the CPU index first: an unpinned torch would pull a multi-GB CUDA build.
FROM python:3.11-slim

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MIXOPT_HOST=0.0.0.0 \
    MIXOPT_PORT=8000

# LightGBM needs the GNU OpenMP runtime.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
RUN pip install --index-url "${TORCH_INDEX}" "torch==${TORCH_VERSION}"

COPY client client
RUN pip install ./client
COPY pyproject.toml README.md ./
COPY mixing mixing
COPY service service
COPY workers workers
COPY migrations migrations
COPY runtables runtables
RUN pip install . && useradd --create-home --uid 10001 mixopt

USER mixopt
EXPOSE 8000
CMD ["mixopt", "serve"]
