# Multi-stage build: compile with the Rust toolchain, run on a slim Debian
# as an unprivileged user with the data directory on a volume.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY tests ./tests
RUN cargo build --release --locked --bin portcullis

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/portcullis --create-home portcullis
COPY --from=build /src/target/release/portcullis /usr/local/bin/portcullis
COPY config/portcullis.toml /etc/portcullis/portcullis.toml
USER portcullis
WORKDIR /var/lib/portcullis
VOLUME ["/var/lib/portcullis"]
# LDAP, LDAPS, portal
EXPOSE 3389 6636 8080
ENV PORTCULLIS_DATA_DIR=/var/lib/portcullis/data
ENTRYPOINT ["/usr/local/bin/portcullis"]
CMD ["serve", "--ldap-addr", "0.0.0.0:3389", "--ldaps-addr", "0.0.0.0:6636", "--http-addr", "0.0.0.0:8080"]
