# syntax=docker/dockerfile:1
# responder's container image: `docker build -t responder .` at the top of the repository.
#
# Stage "build" makes the wheel (the bundled rules, playbooks and probes go inside it) and installs it
# into a virtualenv; stage "runtime" is a slim image holding only that virtualenv, running as an
# unprivileged user. No secret is baked in: every credential is a ${ENV_VAR} in responder.yaml, given at
# run time (docker run -e / env_file, a Kubernetes Secret, fly secrets, Railway variables).
#
# Configuration lives in /etc/responder (RESPONDER_CONFIG points at its responder.yaml, and the rules/,
# playbooks/ and probes/ folders next to it are loaded). The image carries a copy of the repository's
# files there; mount your own over it read-only, e.g. `-v "$PWD/config:/etc/responder:ro"`.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# The build context is what .dockerignore allows: pyproject.toml, README.md, the package and the
# folders the wheel bundles (the config, the JSON schemas). Nothing else reaches the builder.
COPY . .
RUN pip wheel --no-deps --wheel-dir /wheels . \
    && python -m venv /opt/venv \
    && /opt/venv/bin/pip install /wheels/responder-*.whl

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="responder" \
      org.opencontainers.image.description="Event-driven incident responder" \
      org.opencontainers.image.licenses="Apache-2.0"
# tzdata: silences and maintenance windows use zoneinfo time zones. Not pinned (DL3008): Debian's
# security updates replace exact versions, and the base image tag already fixes the release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 responder \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin responder \
    && install -d -o 10001 -g 10001 -m 0700 /var/lib/responder
COPY --from=build /opt/venv /opt/venv
COPY responder.yaml /etc/responder/responder.yaml
COPY rules/ /etc/responder/rules/
COPY playbooks/ /etc/responder/playbooks/
COPY probes/ /etc/responder/probes/
COPY deploy/docker/healthcheck.py /opt/responder/healthcheck.py
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    RESPONDER_CONFIG=/etc/responder/responder.yaml \
    RESPONDER_HOST=0.0.0.0 \
    XDG_STATE_HOME=/var/lib/responder
# The outage spool (webhooks accepted while Redis is unreachable) is written under $XDG_STATE_HOME: keep it
# on a volume so that a restart replays what it holds.
VOLUME ["/var/lib/responder"]
WORKDIR /opt/responder
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "/opt/responder/healthcheck.py"]
STOPSIGNAL SIGTERM
# Listens on 8080 (server.port in responder.yaml); a platform that sets $PORT (Railway, Fly) gets that.
CMD ["sh", "-c", "exec responder run ${PORT:+--port \"$PORT\"}"]
