# Production image: the synthflow-agi FastAGI server alone (no Asterisk), as a non-root user.
#
#   docker build -f docker/fastagi.Dockerfile -t synthflow-agi-fastagi .      (repository root)
#   docker run -d --name synthflow-fastagi -p 4573:4573 \
#       -e SYNTHFLOW_API_TOKEN_FILE=/run/secrets/synthflow-token \
#       -v /etc/synthflow/token:/run/secrets/synthflow-token:ro \
#       -e SYNTHFLOW_MODEL_ID=... -e SYNTHFLOW_WORKSPACE_ID=... -e SYNTHFLOW_AGENT_NUMBER=+1... \
#       synthflow-agi-fastagi
# Port 9573 (/metrics, /healthz) stays unpublished there: the HEALTHCHECK asks it from inside.
#
# Settings come from SYNTHFLOW_* environment variables and/or a mounted
# /etc/asterisk/synthflow.conf (a missing file is fine); docs/deploy.md has the details.
#
# BASE: any Debian-like image whose python3 is 3.9 or newer.  Offline builds (no trusted
# route to PyPI) put wheels for the image's Python into docker/wheels/ and pass
#   --build-arg PIP_NO_INDEX=1 --build-arg PIP_FIND_LINKS=/opt/wheels
ARG BASE=debian:trixie-slim

# ---------------------------------------------------------------- build: a venv with the package
FROM ${BASE} AS build
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && apt-get clean && rm -rf /var/lib/apt/lists/*

ARG PIP_NO_INDEX=
ARG PIP_FIND_LINKS=
COPY docker/wheels/ /opt/wheels/
# README.m[d]: setup.cfg reads README.md; the pattern tolerates a checkout without it.
COPY setup.cfg setup.py README.m[d] /src/
COPY src/ /src/src/
COPY agi-bin/ /src/agi-bin/
# A host-built project wheel wins (offline builds); otherwise pip builds /src.  The metrics
# extra (prometheus_client) serves /healthz, which the HEALTHCHECK below asks; pip only warns
# about an extra it cannot find, hence the import.  pip itself is removed afterwards: the
# running server never installs anything.
RUN set -eu; \
    [ -n "$PIP_NO_INDEX" ] || unset PIP_NO_INDEX; \
    [ -n "$PIP_FIND_LINKS" ] || unset PIP_FIND_LINKS; \
    python3 -m venv /opt/synthflow-agi; \
    pkg=$(ls /opt/wheels/synthflow_agi-*.whl 2>/dev/null | head -n 1 || true); \
    /opt/synthflow-agi/bin/pip install --no-cache-dir --disable-pip-version-check "${pkg:-/src}[metrics]"; \
    /opt/synthflow-agi/bin/python -c "import prometheus_client"; \
    /opt/synthflow-agi/bin/pip uninstall -y -q pip; \
    /opt/synthflow-agi/bin/synthflow-agi --version

# ---------------------------------------------------------------- runtime: python3 and the venv
FROM ${BASE}
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 \
 && apt-get clean && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 synthflow \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin synthflow
COPY --from=build /opt/synthflow-agi/ /opt/synthflow-agi/

# Bytecode was compiled at install time, so a read-only root filesystem costs nothing.
ENV PATH=/opt/synthflow-agi/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# A numeric user, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
# 4573 FastAGI; 9573 Prometheus /metrics and /healthz (docs/metrics.md).
EXPOSE 4573 9573
# SIGTERM stops accepting, lets calls in flight finish within --grace, then exits 0:
# give the container runtime a stop timeout longer than --grace (docker stop -t 40).
STOPSIGNAL SIGTERM
# /healthz answers 503 both while draining and while the settings are unusable (every call
# would get CONFIG_ERROR) though the FastAGI port still accepts: a TCP check misses the latter.
# ProxyHandler({}) ignores any http_proxy in the environment, which would otherwise route this
# loopback request through the proxy.  The excepthook turns a failure (a 503, a refused
# connection) into one line: the engine keeps only the start of a check's output.  A command
# that drops --metrics-listen 0.0.0.0:9573 (or moves it) must also replace this check.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request as r; sys.excepthook = lambda kind, error, tb: print('unhealthy:', error); s = r.build_opener(r.ProxyHandler({})).open('http://127.0.0.1:9573/healthz', timeout=2).status; sys.exit(0 if s == 200 else 'unhealthy: /healthz answered %d' % s)"]
ENTRYPOINT ["synthflow-agi"]
# FastAGI has no authentication: publish 4573 only on a private network (docs/deploy.md).
# Off loopback the server requires --allow; private ranges and loopback by default. Narrow it
# to your PBXs, e.g. `fastagi --listen 0.0.0.0:4573 --allow 10.1.2.0/24`.  The metrics port
# has no allow list (it serves counts and a health word): keep 9573 unpublished or internal.
CMD ["fastagi", "--listen", "0.0.0.0:4573", "--allow", "127.0.0.0/8,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7", "--grace", "30", "--metrics-listen", "0.0.0.0:9573"]
