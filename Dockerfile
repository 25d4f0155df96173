# syntax=docker/dockerfile:1
# One image, one binary: `tradeflow <subcommand>` runs each service (see docker-compose.yml).

FROM rust:1.95-slim-bookworm AS build
# librdkafka is built from source (rdkafka's bundled build): it needs a C toolchain, make and zlib;
# its TLS is a vendored OpenSSL, built from source too (perl drives OpenSSL's configure).
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential pkg-config zlib1g-dev python3 perl \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin tradeflow \
 && cp target/release/tradeflow /usr/local/bin/tradeflow

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/tradeflow --create-home tradeflow \
 && mkdir -p /logs /state /secrets \
 && chown tradeflow:tradeflow /logs /state /secrets
COPY --from=build /usr/local/bin/tradeflow /usr/local/bin/tradeflow
# The migrations and the dashboard page are compiled into the binary; the sources ride along for
# operators who want to read them.
COPY migrations /usr/share/tradeflow/migrations
COPY dashboard/web /usr/share/tradeflow/web
USER tradeflow
WORKDIR /var/lib/tradeflow
ENV RUST_LOG=info
ENTRYPOINT ["tradeflow"]
CMD ["--help"]
