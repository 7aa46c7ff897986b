# SCALE images: one build stage, one small runtime target per binary.
#   docker build --target scale-server -t scale-server .
# Binaries read their configuration from SCALE_* environment variables only.

FROM debian:bookworm AS build
WORKDIR /src
COPY scripts/deps.sh scripts/deps.sh
RUN apt-get update -q && scripts/deps.sh && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DSCALE_BUILD_TESTS=OFF \
 && cmake --build /build -j"$(nproc)" \
 && strip /build/bin/*

# Shared runtime base: only the shared libraries the binaries load.
FROM debian:bookworm-slim AS runtime
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends libgrpc29 libprotobuf-c1 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin scale
USER 10001:10001
# Kubernetes probes and Services reach the pod IP, not loopback.
ENV SCALE_LOG_FORMAT=json

FROM runtime AS scale-server
COPY --from=build /build/bin/scale-server /usr/local/bin/scale-server
ENV SCALE_GRPC_ADDR=0.0.0.0:50051
EXPOSE 50051
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/scale-server"]
