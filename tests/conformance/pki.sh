#!/usr/bin/env bash
# pki.sh DIR — make a throwaway test PKI in DIR (idempotent):
#   ca.pem / ca.key        self-signed CA (stands in for chain.pem / ssl_trusted_certificate)
#   cert.pem / key.pem     leaf for localhost, 127.0.0.1, ::1; carries an OCSP responder URL on
#                          loopback so nginx's ssl_stapling loads without a warning
#   fullchain.pem          leaf + CA (what ssl_certificate points at)
#   dhparam.pem            RFC 7919 ffdhe2048 (what Mozilla's configs ship)
# Nothing here is ever trusted outside the suite's temp dirs.
set -euo pipefail
dir=${1:?usage: pki.sh DIR}
mkdir -p "$dir"
cd "$dir"
[[ -s fullchain.pem && -s key.pem && -s dhparam.pem ]] && exit 0

cat >leaf.ext <<'EOF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
authorityInfoAccess = OCSP;URI:http://127.0.0.1:9/
EOF
{
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -sha256 \
    -subj '/CN=kiln conformance test CA' -keyout ca.key -out ca.pem \
    -addext 'basicConstraints=critical,CA:TRUE' -addext 'keyUsage=critical,keyCertSign,cRLSign'
  openssl req -new -newkey rsa:2048 -nodes -sha256 -subj '/CN=localhost' -keyout key.pem -out leaf.csr
  openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -sha256 \
    -extfile leaf.ext -out cert.pem
  openssl genpkey -genparam -algorithm DH -pkeyopt group:ffdhe2048 -out dhparam.pem
} >pki.log 2>&1 || { cat pki.log >&2; exit 1; }
cat cert.pem ca.pem >fullchain.pem
chmod 644 ./*.pem
chmod 600 ca.key key.pem
