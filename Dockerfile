# berth's container image: one static binary on `scratch`, a drop-in for
# registry:2 (container port 5000, data in /var/lib/registry, REGISTRY_*
# variables honoured).
#
#   docker build -t berth .                       # from source (needs internet)
#   deploy/build-image.sh                         # from a binary built here (no network)
#
# BINARY_FROM picks the stage that supplies /berth: `source` builds it in a
# Rust image; `host` copies BERTH_BINARY from the context. BuildKit builds
# only the stage picked, so `host` pulls no image at all.

ARG BINARY_FROM=source
ARG RUST_IMAGE=rust:1-bookworm

FROM ${RUST_IMAGE} AS source
WORKDIR /src
COPY . .
RUN RUSTFLAGS=-Ctarget-feature=+crt-static \
    cargo build --locked --release --target x86_64-unknown-linux-gnu -p berth-cli \
 && objcopy --strip-debug target/x86_64-unknown-linux-gnu/release/berth /berth

FROM scratch AS host
ARG BERTH_BINARY=target/x86_64-unknown-linux-gnu/release/berth
COPY ${BERTH_BINARY} /berth

FROM ${BINARY_FROM} AS binary

FROM scratch
ARG VERSION=unknown
ARG REVISION=unknown
LABEL org.opencontainers.image.title="berth" \
      org.opencontainers.image.description="A private OCI container image registry in one binary; a drop-in for registry:2" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=binary /berth /berth
COPY deploy/image/config.toml /etc/berth/config.toml
# An empty folder in the context (see .dockerignore): no shell here to mkdir.
COPY --chown=65532:65532 deploy/image/empty/ /var/lib/registry/
ENV BERTH_CONFIG=/etc/berth/config.toml
USER 65532:65532
EXPOSE 5000
VOLUME /var/lib/registry
# `docker run IMAGE` serves; `docker run IMAGE fsck` (or any berth command)
# runs that command with the same baked-in configuration.
ENTRYPOINT ["/berth"]
CMD ["serve"]
