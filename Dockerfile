# syntax=docker/dockerfile:1
#
# One image for every service: `cafe serve <service>` (order, payment, drink, customercenter,
# delivery, deliverycenter, gateway), or `cafe up` for the whole cafe in one container.
#
#   docker build -t cafe:0.1.0 .
#   docker run --rm -p 8080:8080 cafe:0.1.0                 # everything, embedded storage
#   docker run --rm -e DATABASE_URL=... -e NATS_URL=... cafe:0.1.0 serve payment
#
# scripts/oci-image.sh builds the same image without a container engine (an OCI layout
# from a release binary), and CI runs it from the unpacked root filesystem.

ARG RUST_VERSION=1.95

# ---- build: the release binary, from the locked dependency graph ----
FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
COPY . .
# The cache mounts keep the registry and target directory between builds; the binary is
# copied out of the cached target directory, stripped of its debug information.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p cafe \
    && mkdir -p /out/data /out/logs \
    && objcopy --strip-debug target/release/cafe /out/cafe

# ---- runtime: glibc, libgcc and CA certificates, no shell, user nonroot (65532) ----
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/cafe /usr/local/bin/cafe
# Writable places for `cafe up` and for logs when no volume is mounted there.
COPY --from=build --chown=65532:65532 /out/data /data
COPY --from=build --chown=65532:65532 /out/logs /logs
ENV CAFE_HOST=0.0.0.0 \
    CAFE_DATA_DIR=/data \
    CAFE_LOG_DIR=/logs
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/cafe"]
CMD ["up"]
