# One image for the whole event stack: order-service, billing-service,
# notification-service and evctl, with the Avro schemas and the topics
# description. The command chooses the program (compose.yaml runs each
# service from this image):
#
#   docker build -t libevents-stack .
#   docker run --rm libevents-stack order-service --help
#   docker run --rm -i libevents-stack evctl publish - < tools/demo-orders.jsonl
#
# Build stage: Debian bookworm with the -dev packages (the same versions as
# tools/deps installs: librdkafka 2.0.2, avro-c 1.11.1, hiredis 0.14.1,
# libmicrohttpd 0.9.75, jemalloc 5.3.0); runtime stage: bookworm-slim with
# only their runtime libraries, and curl for compose's health checks of
# /readyz.

ARG DEBIAN_RELEASE=bookworm

FROM debian:${DEBIAN_RELEASE} AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config \
      librdkafka-dev libavro-dev libjansson-dev libcurl4-openssl-dev \
      libhiredis-dev libssl-dev libmicrohttpd-dev libjemalloc-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# .dockerignore lets only the sources the build needs into the context.
COPY CMakeLists.txt ./
COPY libevents/ libevents/
COPY services/ services/
COPY tools/ tools/
COPY schemas/ schemas/
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DLEV_BUILD_TESTS=OFF \
 && cmake --build /build -j"$(nproc)" \
      --target order-service billing-service notification-service evctl \
 && strip /build/services/order/order-service /build/services/billing/billing-service \
      /build/services/notification/notification-service /build/tools/evctl/evctl

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      librdkafka1 libavro23 libjansson4 libhiredis0.14 libcurl4 libssl3 libmicrohttpd12 \
      libjemalloc2 \
      ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/libevents \
      --create-home --shell /usr/sbin/nologin app
COPY --from=build /build/services/order/order-service /usr/local/bin/order-service
COPY --from=build /build/services/billing/billing-service /usr/local/bin/billing-service
COPY --from=build /build/services/notification/notification-service /usr/local/bin/notification-service
COPY --from=build /build/tools/evctl/evctl /usr/local/bin/evctl
# Where the programs look by default (LEV_SCHEMA_DIRS, LEV_TOPICS_FILE).
COPY schemas/ /usr/local/share/libevents/schemas/
COPY tools/topics.json /usr/local/share/libevents/topics.json
ENV LEV_SCHEMA_DIRS=/usr/local/share/libevents/schemas \
    LEV_TOPICS_FILE=/usr/local/share/libevents/topics.json
USER app
WORKDIR /var/lib/libevents
# The services stop gracefully on SIGTERM (finish, flush, commit, leave the group).
STOPSIGNAL SIGTERM
CMD ["evctl", "--help"]
