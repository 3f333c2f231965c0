# neurofit worker / notebook image. CPU by default; --build-arg VARIANT=cuda for NVIDIA GPUs:
#   docker build -t neurofit:0.1.0 .                          # CPU-only torch
#   docker build --build-arg VARIANT=cuda -t neurofit:0.1.0-cuda .
# The install is deploy/install.sh, the same script `make test` (and so CI) runs.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG VARIANT=cpu
ARG EXTRAS=s3,slurm,notebook
WORKDIR /src
COPY pyproject.toml README.md ./
COPY deploy/install.sh deploy/install.sh
COPY datasets datasets
COPY models models
COPY pipelines pipelines
COPY schemas schemas
RUN PYTHON=python3 VENV=/opt/neurofit EXTRAS="${EXTRAS}" EDITABLE=no TORCH_VARIANT="${VARIANT}" sh deploy/install.sh

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="neurofit" \
      org.opencontainers.image.description="neurofit workers and tools: experiment tracking for fitting deep networks to neural data"
# A fixed unprivileged user: files it writes on mounted volumes have a known owner.
RUN groupadd --gid 10001 neurofit && useradd --uid 10001 --gid 10001 --create-home --shell /usr/sbin/nologin neurofit
COPY --from=build /opt/neurofit /opt/neurofit
ENV PATH=/opt/neurofit/bin:$PATH \
    NEUROFIT_HOME=/home/neurofit/.neurofit \
    PYTHONUNBUFFERED=1 \
    DJ_USE_TLS=true
USER 10001:10001
WORKDIR /home/neurofit
ENTRYPOINT ["neurofit"]
CMD ["worker", "--wait"]
