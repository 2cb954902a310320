#!/usr/bin/env bash
# Makes the certificates the TLS tests use, at test time, with openssl: a CA, a server
# certificate it signs for 127.0.0.1/localhost (PEM key and chain, and a PKCS#12 keystore with
# password "changeit" for the Kafka broker), the same server certificate but expired, a
# client certificate for mutual TLS, and a second CA nobody uses (an "unknown CA").
#   scripts/make-certs.sh DIR
set -euo pipefail
d=$1
mkdir -p "$d"
cd "$d"
[ -f done ] && exit 0
ossl() { openssl "$@" >/dev/null 2>&1 || { echo "openssl $* failed" >&2; openssl "$@"; exit 1; }; }
ca() { # name
  ossl req -x509 -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.pem" -days 30 \
    -subj "/CN=cx-pipeline test $1"
}
ca ca
ca other-ca
cat > san.cnf <<CNF
[ext]
subjectAltName = IP:127.0.0.1, DNS:localhost
basicConstraints = CA:FALSE
keyUsage = digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
CNF
leaf() { # name cn
  ossl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "/CN=$2"
}
leaf server localhost
ossl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem \
  -days 30 -extfile san.cnf -extensions ext
# Expired: signed with a validity that ended in 2021 (openssl ca takes explicit dates).
mkdir -p ca-db && : > ca-db/index.txt && echo 1000 > ca-db/serial
cat > ca.cnf <<CNF
[ca]
default_ca = test
[test]
database = ca-db/index.txt
serial = ca-db/serial
new_certs_dir = ca-db
certificate = ca.pem
private_key = ca.key
default_md = sha256
policy = any
copy_extensions = none
[any]
commonName = supplied
[ext]
subjectAltName = IP:127.0.0.1, DNS:localhost
basicConstraints = CA:FALSE
extendedKeyUsage = serverAuth
CNF
leaf expired localhost
ossl ca -batch -config ca.cnf -in expired.csr -out expired.pem -extensions ext \
  -startdate 20200101000000Z -enddate 20210101000000Z -notext
leaf client cx-client
ossl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem \
  -days 30 -extfile san.cnf -extensions ext
for n in server expired; do
  ossl pkcs12 -export -in "$n.pem" -inkey "$n.key" -certfile ca.pem -name "$n" \
    -out "$n.p12" -passout pass:changeit
done
# The broker's truststore (client certificates signed by the CA), PEM type.
cp ca.pem truststore.pem
touch done
