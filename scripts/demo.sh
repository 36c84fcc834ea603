#!/usr/bin/env bash
# The whole job end to end on an embedded sample: two local registries (the "connected" source
# and the "isolated" internal one), sample images and charts, then lock → collect (signed) →
# verify → import → check with skopeo. Installs what it needs (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_apt docker-registry:docker-registry skopeo:skopeo zstd:zstd python3:python3

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "building airlock (release)"
cargo build --release --quiet --bin airlock --example samples
AIRLOCK=$PWD/target/release/airlock
SAMPLES=$PWD/target/release/examples/samples

WORK=$(mktemp -d -t airlock-demo.XXXXXX)
cleanup() { stop_registries "$WORK"; [ -n "${HTTP_PID:-}" ] && kill "$HTTP_PID" 2>/dev/null || true; }
trap cleanup EXIT

say "starting two registries"
SRC=$(start_registry "$WORK/source")
DST=$(start_registry "$WORK/internal")
echo "connected side: $SRC    isolated side: $DST    work dir: $WORK"

say "building sample content in $SRC"
"$SAMPLES" demo "$SRC" "$WORK/www/charts" "$WORK/keys/vendor.pub"
HTTP_PORT=$(free_port)
python3 -m http.server "$HTTP_PORT" --bind 127.0.0.1 --directory "$WORK/www" >/dev/null 2>&1 &
HTTP_PID=$!
sleep 0.5

cat >"$WORK/platform.yaml" <<YAML
name: platform
images:
  - ref: $SRC/platform/web:1.0
    platforms: [linux/amd64, linux/arm64]
  - ref: $SRC/platform/api:2.3
charts:
  - ref: oci://$SRC/charts/web:1.0.0
  - repo: http://127.0.0.1:$HTTP_PORT/charts
    name: podinfo
    version: 6.4.0
trust:                      # the vendor must have signed every platform image
  rules:
    - pattern: $SRC/platform/*
      keys: [keys/vendor.pub]
YAML
# The isolated side's own policy: it trusts the vendor key it was given out of band.
cat >"$WORK/site-policy.yaml" <<YAML
rules:
  - pattern: $SRC/platform/*
    keys: [keys/vendor.pub]
YAML
cd "$WORK"
export AIRLOCK_PASSWORD=demo-only-password   # a real site keeps keys and passwords elsewhere

say "airlock key generate -o keys/release   (the release engineer's signing key)"
"$AIRLOCK" key generate -o keys/release
say "airlock ledger init ledger   (the isolated side's provenance ledger)"
"$AIRLOCK" ledger init ledger --origin demo.invalid/airlock-ledger

say "airlock lock platform.yaml"
"$AIRLOCK" lock platform.yaml --insecure-registry "$SRC"

say "airlock collect platform.lock -o platform.tar.zst"
"$AIRLOCK" collect platform.lock -o platform.tar.zst --cache cache --insecure-registry "$SRC" --key keys/release.key

say "airlock inspect platform.tar.zst"
"$AIRLOCK" inspect platform.tar.zst

say "airlock verify platform.tar.zst --trust keys/release.pub"
"$AIRLOCK" verify platform.tar.zst --trust keys/release.pub

say "airlock import platform.tar.zst --to $DST/mirror --trust keys/release.pub --policy site-policy.yaml --ledger ledger"
"$AIRLOCK" import platform.tar.zst --to "$DST/mirror" --insecure-registry "$DST" \
  --trust keys/release.pub --policy site-policy.yaml --ledger ledger --operator demo

say "what the internal registry serves (skopeo, an independent client)"
for ref in mirror/platform/web:1.0 mirror/platform/api:2.3 mirror/charts/web:1.0.0 mirror/charts/podinfo:6.4.0; do
  d=$(skopeo inspect --tls-verify=false --raw "docker://$DST/$ref" | sha256sum | cut -d' ' -f1)
  echo "$DST/$ref  sha256:$d"
done

say "re-running the import pushes nothing new"
"$AIRLOCK" import platform.tar.zst --to "$DST/mirror" --insecure-registry "$DST" --trust keys/release.pub \
  --ledger ledger --operator demo --quiet | tail -n 1

say "the auditor: airlock ledger verify ledger"
"$AIRLOCK" ledger verify ledger

WEB=$(skopeo inspect --tls-verify=false --raw "docker://$DST/mirror/platform/web:1.0" | sha256sum | cut -d' ' -f1)
say "the auditor: where did sha256:$WEB come from?"
"$AIRLOCK" ledger show ledger --digest "sha256:$WEB"

say "done"
