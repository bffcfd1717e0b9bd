#!/bin/sh
# A lab CA and server certificate for the compose set-up (production: your own certificates).
# tls/server.pem, tls/server.key: nginx's certificate; tls/vendor-cas.pem: the CAs whose
# client certificates nginx verifies (here the lab CA; in production the phone vendors' CAs).
set -eu
cd "$(dirname "$0")"
provisioning=${PROVISIONING:-provisioning}
mkdir -p tls
"$provisioning" certs ca tls/ca
"$provisioning" certs server tls/ca tls/server --host "${1:-localhost}" --host 127.0.0.1
cp tls/server/server.pem tls/server/server.key tls/
cp tls/ca/ca.pem tls/vendor-cas.pem
chmod 0644 tls/server.key  # read by nginx's worker inside its container
