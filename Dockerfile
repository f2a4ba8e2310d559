# srcnet-sim: the workflow image (entrypoint `srcnet-sim`), built from this repository:
#   docker build -t srcnet-sim:0.1.0 .
# The root filesystem may be read-only: TMPDIR and every cache point into /scratch, the Job's
# `temporal-scratch` volume.
FROM python:3.11.11-slim-bookworm AS build
WORKDIR /build
COPY pyproject.toml README.md ./
COPY src ./src
COPY deploy/docker/install.sh ./install.sh
RUN sh install.sh /build /opt/srcnet-sim

FROM python:3.11.11-slim-bookworm
LABEL org.opencontainers.image.title="srcnet-sim" \
      org.opencontainers.image.description="Mock SKA-Mid observations as SRCNet-ready data products"
RUN groupadd --gid 10001 srcnet && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin srcnet
COPY --from=build /opt/srcnet-sim /opt/srcnet-sim
ENV PATH=/opt/srcnet-sim/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TMPDIR=/scratch \
    HOME=/scratch \
    XDG_CACHE_HOME=/scratch/.cache \
    NUMBA_CACHE_DIR=/scratch/.cache/numba \
    MPLCONFIGDIR=/scratch/.cache/matplotlib
WORKDIR /scratch
USER 10001:10001
HEALTHCHECK NONE
ENTRYPOINT ["srcnet-sim"]
CMD ["run", "--help"]
