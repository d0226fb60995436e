# beuss-server in an empty ("scratch") image: the static musl binary is the whole
# image (well under 1 MB), plus the beuss CLI for health checks and `docker exec`.
#
#   docker build -t beuss .
#   docker run -d --name beuss -p 6552:6552 beuss
#   echo hello | beuss PUT jobs          # from the host, with the beuss CLI
#   docker exec beuss /beuss GET jobs    # or with the one in the image
#
# Stage 1 builds from source with the official Rust image, cross-compiling on the
# build machine's own architecture (no emulation) for the image's architecture, and
# links with rust-lld as release.sh does. Multi-arch:
#   docker buildx build --platform linux/amd64,linux/arm64,linux/arm/v7,linux/arm/v6 -t beuss .
#
# To package binaries that release.sh already built instead of compiling here, replace
# stage 1 with the lines below (x86_64 shown) and keep stage 2 as is:
#   FROM scratch AS build
#   ADD dist/beuss-0.1.0-x86_64-unknown-linux-musl.tar.gz /
#   ... and COPY --from=build /beuss-0.1.0-x86_64-unknown-linux-musl/beuss-server /beuss-server
#
# Settings are the server's environment variables (beuss-server --help), e.g.
#   docker run -e BMAXMESSAGESIZE=1M -e BMAXMEMORY=64M ...
# Messages are held in memory only: they are gone when the container stops.

FROM --platform=$BUILDPLATFORM rust:1.95-slim AS build
ARG TARGETARCH
ARG TARGETVARIANT
WORKDIR /src
RUN case "$TARGETARCH$TARGETVARIANT" in \
        amd64*) echo x86_64-unknown-linux-musl ;; \
        arm64*) echo aarch64-unknown-linux-musl ;; \
        armv7) echo armv7-unknown-linux-musleabihf ;; \
        armv6) echo arm-unknown-linux-musleabihf ;; \
        *) echo "unsupported platform $TARGETARCH$TARGETVARIANT" >&2; exit 1 ;; \
    esac >/target-triple \
    && rustup target add "$(cat /target-triple)"
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY bin ./bin
RUN triple="$(cat /target-triple)" \
    && linker_var="CARGO_TARGET_$(echo "$triple" | tr 'a-z-' 'A-Z_')_LINKER" \
    && env "$linker_var=rust-lld" cargo build --release --locked --target "$triple" \
        --bin beuss-server --bin beuss \
    && mkdir /out \
    && cp "target/$triple/release/beuss-server" "target/$triple/release/beuss" /out/

FROM scratch
COPY --from=build /out/beuss-server /beuss-server
COPY --from=build /out/beuss /beuss
# Listen on every interface of the container; publish the port to choose who can reach it.
ENV BHOST=0.0.0.0 \
    BPORT=6552 \
    RUST_LOG=info
EXPOSE 6552
# Any non-root id works: without BDATADIR the server touches no file. To keep messages
# on disk, mount a volume writable by this id and set it, e.g.
#   docker run -v beuss-data:/data -e BDATADIR=/data ...
# (with a named volume, give /data to 65534 first, or pick --user to match).
USER 65534:65534
HEALTHCHECK --interval=30s --timeout=5s CMD ["/beuss", "--host", "127.0.0.1", "PING"]
ENTRYPOINT ["/beuss-server"]
