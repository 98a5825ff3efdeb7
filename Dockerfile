# syntax=docker/dockerfile:1
# One image with the gate's binaries: load-test, perf-decision and vllm-sim in /usr/local/bin.
#
#   docker build -t vllm-perf-gate:dev .
#   docker run --rm vllm-perf-gate:dev load-test --help
#   docker run --rm -e VLLM_URL=http://host.docker.internal:8000 -e ADAPTER_NAME=my-adapter \
#     -e EVAL_DATA_PATH=/data/eval.jsonl -v "$PWD/eval.jsonl:/data/eval.jsonl:ro" \
#     -v "$PWD/out:/output" -e OUTPUT_DIR=/output vllm-perf-gate:dev load-test
#
# The binaries are built with exactly the command CI uses: cargo build --release --locked --bins.
# Dependencies are cooked by cargo-chef in their own layer, so a source-only change rebuilds only the
# workspace crates. The runtime is distroless (glibc, libgcc, CA certificates, no shell), user 65532.

ARG RUST_VERSION=1.95
ARG CARGO_CHEF_VERSION=0.1.78

FROM rust:${RUST_VERSION}-bookworm AS chef
ARG CARGO_CHEF_VERSION
RUN cargo install cargo-chef --locked --version "${CARGO_CHEF_VERSION}"
WORKDIR /src

# Reduce the workspace to a recipe of its dependencies (changes only when Cargo.toml/Cargo.lock do).
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
# Dependencies only: this layer is cached until a manifest or the lock file changes.
RUN cargo chef cook --release --locked --bins --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked --bins \
 && mkdir -p /out/bin /out/output \
 && cp target/release/load-test target/release/perf-decision target/release/vllm-sim /out/bin/

# bookworm builder -> Debian 12 runtime: same glibc. The binaries link only libc, libm and libgcc_s.
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="vllm-perf-gate" \
      org.opencontainers.image.description="Performance gate for LoRA adapters served by vLLM: load-test, perf-decision, vllm-sim" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://example.invalid/vllm-perf-gate" \
      org.opencontainers.image.base.name="gcr.io/distroless/cc-debian12:nonroot"
COPY --from=builder /out/bin/ /usr/local/bin/
# Results go to OUTPUT_DIR (default: the working directory, /output, writable by the runtime user).
COPY --from=builder --chown=65532:65532 /out/output /output
WORKDIR /output
USER 65532:65532
# No ENTRYPOINT: the command picks the binary (load-test, perf-decision or vllm-sim).
CMD ["load-test", "--help"]
