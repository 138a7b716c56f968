# dragonfly-serve in a container: the gRPC server (port 50051) and Prometheus metrics (9108).
#
#   docker build -t dragonfly .
#   docker run --rm -p 50051:50051 -p 9108:9108 -e DRAGONFLY_TOKEN=... dragonfly ethbtc btcusdt
#
# Every option also comes from DRAGONFLY_* variables (README). The image serves on every
# interface; lock it down with a token (DRAGONFLY_TOKEN) and TLS (docs/serving.md). The
# HEALTHCHECK asks grpc.health.v1 over plaintext: with TLS on, give it your own.

# --- build: the wheel, with the C speedups compiled ------------------------------------
FROM python:3.11-slim-bookworm AS build
# The compiler is the distribution's current one: pinning Debian package versions breaks
# the build at the next security update, and the build stage ships nothing but the wheel.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md LICENSE ./
COPY dragonfly ./dragonfly
COPY latency ./latency
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# --- run: the wheel and its dependencies, as a user without privileges -----------------
FROM python:3.11-slim-bookworm
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl \
    && rm -rf /wheels \
    && useradd --system --uid 10001 --no-create-home dragonfly
USER 10001
ENV DRAGONFLY_HOST=0.0.0.0 \
    DRAGONFLY_METRICS_PORT=9108 \
    DRAGONFLY_METRICS_HOST=0.0.0.0 \
    PYTHONUNBUFFERED=1
EXPOSE 50051 9108
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s \
    CMD ["python", "-c", "import grpc, os, sys; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g; c = grpc.insecure_channel('127.0.0.1:' + os.environ.get('DRAGONFLY_PORT', '50051')); s = g.HealthStub(c).Check(h.HealthCheckRequest(), timeout=4); sys.exit(s.status != h.HealthCheckResponse.SERVING)"]
ENTRYPOINT ["dragonfly-serve"]
CMD ["ethbtc"]
