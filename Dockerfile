# syntax=docker/dockerfile:1
# Courier's two images, one target each:
#
#   docker build --target operator -t REGISTRY/courier/operator:VERSION .
#   docker build --target worker   -t REGISTRY/courier/worker:VERSION .
#
# Both run as UID/GID 65532 with no shell, need nothing writable (they work with
# readOnlyRootFilesystem: true) and start the binary as ENTRYPOINT. docs/images.md
# has the build and push steps; the local cluster builds these same stages with
# buildah (e2e/images/build.sh), giving BINARIES=prebuilt and its own base image.

# The runtime base: glibc, libgcc, CA certificates and a nonroot user 65532.
ARG BASE_IMAGE=gcr.io/distroless/cc-debian12:nonroot
ARG RUST_IMAGE=docker.io/library/rust:1-bookworm
# Where the binaries come from: `build` compiles them below; `prebuilt` takes
# them from prebuilt/ in the build context (how e2e/images/build.sh passes
# binaries built on the host, stripped the same way).
ARG BINARIES=build
ARG VERSION=0.1.0

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
# The release profile keeps line tables for backtraces; the images keep symbols only.
RUN cargo build --release --locked -p courier-operator -p courier-worker --bins \
 && mkdir -p /out \
 && cp target/release/courier-operator target/release/courier-worker /out/ \
 && strip --strip-debug /out/*

FROM scratch AS prebuilt
COPY prebuilt/ /out/

FROM ${BINARIES} AS binaries

FROM ${BASE_IMAGE} AS operator
ARG VERSION
LABEL org.opencontainers.image.title="courier-operator" \
      org.opencontainers.image.description="Courier operator: plans DeliveryPackages, scales and coordinates workers" \
      org.opencontainers.image.source="https://example.invalid/courier" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=binaries /out/courier-operator /usr/local/bin/courier-operator
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/courier-operator"]

FROM ${BASE_IMAGE} AS worker
ARG VERSION
LABEL org.opencontainers.image.title="courier-worker" \
      org.opencontainers.image.description="Courier worker: reads shards from HDFS and sends one request per record" \
      org.opencontainers.image.source="https://example.invalid/courier" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=binaries /out/courier-worker /usr/local/bin/courier-worker
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/courier-worker"]
