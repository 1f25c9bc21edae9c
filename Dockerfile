# syntax=docker/dockerfile:1
#
# One image for all three services (edge_encoder, cloud_analyzer, cloud_reconstructor):
# docker-compose.yml picks the service with its command (`python -m <service>`), so there is no CMD.
#
#   docker compose up --build                                                # CPU
#   docker compose -f docker-compose.yml -f docker-compose.gpu.yml up --build  # NVIDIA GPU
#
# Two stages: the build stage installs into a virtual environment and fetches the pretrained face
# models; the final stage copies only that environment, so pip, its caches and the sources stay out.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build

# onnxruntime (CPU) or onnxruntime-gpu; docker-compose.gpu.yml sets the latter.
ARG ORT_PACKAGE=onnxruntime
# CPU wheels of torch/torchvision: the default PyPI wheels bring some GB of CUDA libraries that nothing
# here needs (the face models run on ONNX Runtime, the codec's torch parts are small). They carry the
# versions pinned in pyproject.toml with a "+cpu" local label, which `torch==X` accepts, so the
# `pip install .` below keeps them.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

# Every pip install below takes its versions from the lock file (constraints.txt, `make lock`).
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_CONSTRAINT=/src/constraints.txt \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv

WORKDIR /src
COPY pyproject.toml constraints.txt ./
# torch first, in its own layer (the largest and the least often changed). Its pins are read from
# pyproject.toml so that they are written in one place only.
RUN pip install --index-url "$TORCH_INDEX_URL" $(python -c 'import tomllib; deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]; print(" ".join(d for d in deps if d.startswith(("torch==", "torchvision=="))))')

COPY facecodec ./facecodec
COPY service_common ./service_common
COPY edge_encoder ./edge_encoder
COPY cloud_analyzer ./cloud_analyzer
COPY cloud_reconstructor ./cloud_reconstructor
COPY devstack ./devstack
COPY proto ./proto
RUN pip install .

# The GPU build swaps the runtime: onnxruntime and onnxruntime-gpu install the same module and must
# not both be present. The [cuda,cudnn] extras bring the CUDA and cuDNN libraries as wheels, so the
# slim base image needs no CUDA install (the host's driver comes in through the NVIDIA runtime).
RUN if [ "$ORT_PACKAGE" != "onnxruntime" ]; then \
        pip uninstall -y onnxruntime && \
        if [ "$ORT_PACKAGE" = "onnxruntime-gpu" ]; then pip install "onnxruntime-gpu[cuda,cudnn]"; \
        else pip install "$ORT_PACKAGE"; fi; \
    fi

# The pretrained ONNX face models go into the image now: nothing is downloaded at run time. Run from
# outside /src so that `-m` imports the installed package (and the models land beside it), not the
# source tree; then check they load from there.
WORKDIR /
RUN python -m facecodec.assets && \
    python -c "from facecodec.assets import MODEL_SHA256, model_path; [model_path(n) for n in MODEL_SHA256]"


FROM ${PYTHON_IMAGE}

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
