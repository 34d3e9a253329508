# Sourced by compare-openldap.sh and before-after.sh: one P-256 server
# certificate for 127.0.0.1 and localhost, signed by a CA made for the run.
# make_bench_cert DIR writes DIR/ca.pem, DIR/server.pem and DIR/server.key
# (0600); the CA's key is thrown away once it has signed. openssl's output
# goes to DIR/openssl.log.
make_bench_cert() {
    local dir=$1
    mkdir -p "$dir"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj "/CN=Portcullis benchmark CA" -keyout "$dir/ca.key" -out "$dir/ca.pem" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        2>>"$dir/openssl.log"
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -subj "/CN=localhost" -keyout "$dir/server.key" -out "$dir/server.csr" 2>>"$dir/openssl.log"
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' \
        > "$dir/server.ext"
    openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
        -days 2 -extfile "$dir/server.ext" -out "$dir/server.pem" 2>>"$dir/openssl.log"
    rm -f "$dir/ca.key"
    chmod 600 "$dir/server.key"
}
