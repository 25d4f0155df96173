# One image, one binary: `tradeflow <subcommand>` runs each service (see docker-compose.yml).
#
# Builds with the classic builder and with BuildKit alike, with no network beyond Debian's and
# crates.io's registries: no `# syntax=` frontend to pull, no `RUN --mount` (the classic builder has
# none; a rebuild after a source change compiles from scratch, ~10 minutes on 2 cores).
#
#   docker build -t tradeflow:local .                      the full build: compiles the release binary
#   docker build --target prebuilt --build-arg TRADEFLOW_BINARY=target/release/tradeflow -t tradeflow:local .
#                                                          the image around a binary built outside (it must
#                                                          be built on Debian bookworm: glibc 2.36); CI's
#                                                          compose check does this with the test run's binary

FROM debian:bookworm-slim AS runtime-base
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/tradeflow --create-home tradeflow \
 && mkdir -p /logs /state /secrets \
 && chown tradeflow:tradeflow /logs /state /secrets
# The migrations and the dashboard page are compiled into the binary; the sources ride along for
# operators who want to read them.
COPY migrations /usr/share/tradeflow/migrations
COPY dashboard/web /usr/share/tradeflow/web
WORKDIR /var/lib/tradeflow
ENV RUST_LOG=info
ENTRYPOINT ["tradeflow"]
CMD ["--help"]

# Target `prebuilt`. The classic builder runs every stage before the one it is asked for, so the
# default build passes through here too: without TRADEFLOW_BINARY this stage installs nothing (and,
# built as the target so, gives an image with no binary).
FROM runtime-base AS prebuilt
ARG TRADEFLOW_BINARY=
COPY Cargo.lock ${TRADEFLOW_BINARY} /tmp/prebuilt/
RUN if [ -n "$TRADEFLOW_BINARY" ]; then \
      install -m 0755 "/tmp/prebuilt/${TRADEFLOW_BINARY##*/}" /usr/local/bin/tradeflow \
      && tradeflow --version; \
    fi \
 && rm -rf /tmp/prebuilt
USER tradeflow

FROM rust:1.95-slim-bookworm AS build
# librdkafka is built from source (rdkafka's bundled build): it needs a C toolchain, make and zlib;
# its TLS is the system's OpenSSL (headers from libssl-dev, found by pkg-config; libssl3 at run time).
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential pkg-config zlib1g-dev libssl-dev python3 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin tradeflow \
 && cp target/release/tradeflow /usr/local/bin/tradeflow \
 && rm -rf target

FROM runtime-base AS runtime
COPY --from=build /usr/local/bin/tradeflow /usr/local/bin/tradeflow
USER tradeflow
