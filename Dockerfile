# syntax=docker/dockerfile:1
#
# One image for all three services (edge_encoder, cloud_analyzer, cloud_reconstructor):
# docker-compose.yml picks the service with its command (`python -m <service>`), so there is no CMD.
#
#   docker compose up --build                                                # CPU
#   docker compose -f docker-compose.yml -f docker-compose.gpu.yml up --build  # NVIDIA GPU
#   podman build -t facecodec:latest --build-arg BASE_IMAGE=localhost/debian:bookworm .  # see README
#
# Two stages: the build stage installs into a virtual environment and fetches the pretrained face
# models; the final stage copies only that environment, so pip, its caches and the sources stay out.
#
# No torch: the services run on ONNX Runtime and CompressAI's compiled entropy coder
# (scripts/serve_requirements.py says which dependencies the image takes and why). Training and
# evaluation need the development install (`make setup`), not this image.

# Any Debian-based image: python:3.11-slim (Python in /usr/local), or a plain Debian 12 (bookworm), whose
# python3 is 3.11 too and is installed from Debian below. Either way the lock (constraints.txt, made
# for CPython 3.11) applies.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build

# onnxruntime (CPU) or onnxruntime-gpu; docker-compose.gpu.yml sets the latter.
ARG ORT_PACKAGE=onnxruntime
# Optional: another package index (a mirror) for pip; unset, PyPI.
ARG PIP_INDEX_URL=

# A plain Debian base has no Python: take Debian's (python3-venv brings ensurepip for the venv).
RUN if ! command -v python3 >/dev/null; then \
        apt-get update && apt-get install -y --no-install-recommends python3 python3-venv && \
        rm -rf /var/lib/apt/lists/*; \
    fi

# Every pip install below takes its versions from the lock file (constraints.txt, `make lock`).
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_CONSTRAINT=/src/constraints.txt \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH
RUN python3 -m venv /opt/venv

# Behind a TLS-inspecting proxy, pass its CA bundle as the build secret `ca` (for pip and the model
# download); nothing of it stays in the image:
#   --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt
# `with-ca CMD...` runs CMD with that bundle (and the index URL, if given) when they were passed.
RUN printf '%s\n' '#!/bin/sh' \
        'if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca SSL_CERT_FILE=/run/secrets/ca; fi' \
        'if [ -n "$PIP_INDEX_URL" ]; then export PIP_INDEX_URL; else unset PIP_INDEX_URL; fi' \
        'exec "$@"' > /usr/local/bin/with-ca && chmod +x /usr/local/bin/with-ca

WORKDIR /src
COPY pyproject.toml constraints.txt ./
COPY scripts/serve_requirements.py ./scripts/
# The dependencies first, in their own layer (the largest and the least often changed): pip and the
# build tools at their locked versions, then the services' requirements, then CompressAI alone (its
# compiled entropy coder; its declared dependencies are torch and the training tools). The packages' own
# test suites (scipy's and numpy's alone are some 60 MB) go.
RUN --mount=type=secret,id=ca with-ca pip install pip setuptools wheel && \
    python scripts/serve_requirements.py > /tmp/serve.txt && \
    python scripts/serve_requirements.py --no-deps > /tmp/serve-no-deps.txt && \
    with-ca pip install -r /tmp/serve.txt && \
    with-ca pip install --no-deps -r /tmp/serve-no-deps.txt && \
    rm /tmp/serve*.txt && \
    find /opt/venv/lib -depth -type d -name tests -exec rm -r {} +

# The GPU build swaps the runtime: onnxruntime and onnxruntime-gpu install the same module and must
# not both be present. The [cuda,cudnn] extras bring the CUDA and cuDNN libraries as wheels, so the
# slim base image needs no CUDA install (the host's driver comes in through the NVIDIA runtime).
RUN --mount=type=secret,id=ca if [ "$ORT_PACKAGE" != "onnxruntime" ]; then \
        pip uninstall -y onnxruntime && \
        if [ "$ORT_PACKAGE" = "onnxruntime-gpu" ]; then with-ca pip install "onnxruntime-gpu[cuda,cudnn]"; \
        else with-ca pip install "$ORT_PACKAGE"; fi; \
    fi

COPY facecodec ./facecodec
COPY service_common ./service_common
COPY edge_encoder ./edge_encoder
COPY cloud_analyzer ./cloud_analyzer
COPY cloud_reconstructor ./cloud_reconstructor
COPY devstack ./devstack
COPY proto ./proto
# The project itself, without its dependencies (installed above, torch left out on purpose), built by
# the locked setuptools.
RUN pip install --no-deps --no-build-isolation .

# The pretrained ONNX face models go into the image now: nothing is downloaded at run time. Run from
# outside /src so that `-m` imports the installed package (and the models land beside it), not the
# source tree; then check they load from there, and that no service imports torch.
WORKDIR /
RUN --mount=type=secret,id=ca with-ca python -m facecodec.assets && \
    python -c "from facecodec.assets import MODEL_SHA256, model_path; [model_path(n) for n in MODEL_SHA256]" && \
    python -c "import importlib.util as u, sys; assert u.find_spec('torch') is None, 'torch in a service image'"


FROM ${BASE_IMAGE}

# The same Python as the build stage's (the venv links to it): Debian's on a plain Debian base.
RUN if ! command -v python3 >/dev/null; then \
        apt-get update && apt-get install -y --no-install-recommends python3 && \
        rm -rf /var/lib/apt/lists/*; \
    fi

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH

COPY --from=build /opt/venv /opt/venv
# The web console's static files, served by the analyzer at /console/ (no build step: copied as they are).
COPY console /opt/console
ENV ANALYZER_CONSOLE_DIR=/opt/console

# GPU build only: let the dynamic loader find the CUDA/cuDNN libraries installed as wheels, so
# onnxruntime's CUDA provider loads without any LD_LIBRARY_PATH set by hand.
RUN for d in /opt/venv/lib/python3*/site-packages/nvidia; do \
        if [ -d "$d" ]; then find "$d" -mindepth 2 -maxdepth 2 -type d -name lib > /etc/ld.so.conf.d/nvidia-wheels.conf && ldconfig; fi; \
    done

# An unprivileged user; /data/edge, /tls and /tls-ca exist and belong to it so that fresh named volumes
# mounted there (EDGE_DATA_DIR, the certificates, the CA key) are writable.
RUN useradd --system --uid 10001 --home-dir /srv --shell /usr/sbin/nologin app && \
    mkdir -p /srv /data/edge /tls /tls-ca && chown -R app /srv /data /tls /tls-ca
USER app
WORKDIR /srv

# HTTP: edge 8001, analyzer 8002, reconstructor 8003; gRPC: analyzer Ingest 50051, edge Fetch 50052.
EXPOSE 8001 8002 8003 50051 50052

# No default command: docker-compose.yml runs `python -m <service>` for each service.
CMD []
