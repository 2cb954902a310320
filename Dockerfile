# Multi-stage: build with the full Rust toolchain, ship a slim Debian with the binary only.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY schemas ./schemas
COPY benches ./benches
RUN cargo build --release --locked --bin cx-pipeline

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libssl3 && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 cx
COPY --from=build /src/target/release/cx-pipeline /usr/local/bin/cx-pipeline
COPY schemas /etc/cx-pipeline/schemas
COPY deploy/pipeline.toml /etc/cx-pipeline/pipeline.toml
USER cx
EXPOSE 9898
ENV CXP_CONFIG=/etc/cx-pipeline/pipeline.toml
ENTRYPOINT ["cx-pipeline"]
CMD ["run"]
