#!/bin/sh
# One-shot set-up of docker-compose.yml (its `setup` service runs this as root in the chronos
# image, which has openssl). Writes into $CERTS_DIR:
#   ca.pem, ca.key               the compose cluster's own CA (docs/security.md, "TLS")
#   <cloud host>.pem/.key        one per cloud member: serverAuth and clientAuth (members talk
#                                mutual TLS) for the name the others reach it at, and localhost
#   grafana.pem/.key, client.pem/.key
#                                client certificates: once CHRONOS_TLS_CA_CERT is set, a member's
#                                PostgreSQL port takes only clients with one signed by that CA
#   <edge id>.token              each edge's sync token, `chronos sync-token` under
#                                CHRONOS_SYNC_SECRET, so the edges never hold the secret
# Certificates that exist are kept (a new CA replaces them all); tokens are made on every run,
# so they follow a changed secret. Keys go to the uid that reads them, mode 0600.
set -eu

CERTS_DIR=${CERTS_DIR:-/certs}
CLOUD_HOSTS=${CLOUD_HOSTS:-cloud1 cloud2 cloud3}
EDGE_IDS=${EDGE_IDS:-edge1 edge2}
CHRONOS_UID=${CHRONOS_UID:-10001}   # the image's `chronos` user
GRAFANA_UID=${GRAFANA_UID:-472}     # the grafana/grafana image's user
DAYS=${DAYS:-825}
: "${CHRONOS_SYNC_SECRET:?set SYNC_SECRET in docker/.env}"

mkdir -p "$CERTS_DIR"
cd "$CERTS_DIR"
umask 077

# own UID FILE MODE (chown only as root: a run by another user keeps the files as its own)
own() {
  if [ "$(id -u)" = 0 ]; then chown "$1" "$2"; fi
  chmod "$3" "$2"
}

if [ ! -s ca.pem ] || [ ! -s ca.key ]; then
  rm -f ./*.pem ./*.key ./*.srl
  openssl req -x509 -newkey rsa:2048 -nodes -days "$DAYS" -subj /CN=chronos-compose-ca \
    -keyout ca.key -out ca.pem 2>/dev/null
  echo "setup: new CA"
fi
own 0 ca.pem 0644
own 0 ca.key 0600

# cert NAME UID EXTENSIONS: a key and a certificate signed by the CA, unless both exist.
cert() {
  if [ ! -s "$1.pem" ] || [ ! -s "$1.key" ]; then
    printf '%s\n' "$3" >"$1.ext"
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$1" -keyout "$1.key" -out "$1.csr" 2>/dev/null
    openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days "$DAYS" \
      -extfile "$1.ext" -out "$1.pem" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
    echo "setup: certificate for $1"
  fi
  own "$2" "$1.pem" 0644
  own "$2" "$1.key" 0600
}

for host in $CLOUD_HOSTS; do
  cert "$host" "$CHRONOS_UID" "basicConstraints=CA:FALSE
keyUsage=digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=DNS:$host,DNS:localhost,IP:127.0.0.1"
done
CLIENT="basicConstraints=CA:FALSE
keyUsage=digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
cert grafana "$GRAFANA_UID" "$CLIENT"   # Grafana's PostgreSQL data source
cert client 0 "$CLIENT"                 # psql in the `psql` tool service (runs as root)

for edge in $EDGE_IDS; do
  chronos sync-token --edge-id "$edge" >"$edge.token"
  own "$CHRONOS_UID" "$edge.token" 0600
done
echo "setup: certificates and sync tokens ready in $CERTS_DIR"
