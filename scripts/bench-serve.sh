#!/usr/bin/env bash
# Time to first byte and throughput of `airlock serve` for one large blob (docs/BENCHMARKS.md).
# Usage: scripts/bench-serve.sh [SIZE_MIB] [AIRLOCK_BINARY]   (defaults: 1024, target/debug/airlock)
set -euo pipefail
SIZE_MIB=${1:-1024}
AIRLOCK=$(realpath "${2:-target/debug/airlock}")
W=$(mktemp -d)
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$W"' EXIT
cd "$W"

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
REG=127.0.0.1:$(port)
mkdir -p storage
printf 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s/storage\nhttp:\n  addr: %s\nlog:\n  level: error\n' "$W" "$REG" > reg.yml
docker-registry serve reg.yml >reg.log 2>&1 & PIDS+=($!)
for _ in $(seq 100); do curl -sf "http://$REG/v2/" >/dev/null && break; sleep 0.1; done

# An OCI layout with one image whose only layer is SIZE_MIB of random bytes (incompressible, as
# gzip layers are), pushed with skopeo.
mkdir -p layout/blobs/sha256
head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom > layer
L=$(sha256sum layer | cut -d' ' -f1); LS=$(stat -c %s layer); mv layer "layout/blobs/sha256/$L"
printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' "$L" > cfg
C=$(sha256sum cfg | cut -d' ' -f1); CS=$(stat -c %s cfg); mv cfg "layout/blobs/sha256/$C"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' "$C" "$CS" "$L" "$LS" > m
M=$(sha256sum m | cut -d' ' -f1); MS=$(stat -c %s m); mv m "layout/blobs/sha256/$M"
echo '{"imageLayoutVersion":"1.0.0"}' > layout/oci-layout
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"1"}}]}' "$M" "$MS" > layout/index.json
skopeo copy -q --dest-tls-verify=false oci:layout:1 "docker://$REG/bench/big:1"
rm -rf layout
# skopeo compresses a layer it finds uncompressed: take the digest the registry holds.
read -r L LS < <(curl -s -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
  "http://$REG/v2/bench/big/manifests/1" |
  python3 -c 'import json,sys; l=json.load(sys.stdin)["layers"][0]; print(l["digest"][7:], l["size"])')

printf 'name: bench\nimages:\n  - ref: %s/bench/big:1\n' "$REG" > b.yaml
"$AIRLOCK" -q lock b.yaml --insecure-registry "$REG" >/dev/null
T0=$(date +%s.%N)
"$AIRLOCK" -q collect b.lock -o b.tar.zst --insecure-registry "$REG" >/dev/null
T1=$(date +%s.%N)
echo "collect: $(echo "$T1 - $T0" | bc) s, bundle $(stat -c %s b.tar.zst) bytes"
rm -rf cache

SRV=127.0.0.1:$(port)
T0=$(date +%s.%N)
"$AIRLOCK" serve b.tar.zst --allow-unsigned --listen "$SRV" >serve.out 2>serve.err & PIDS+=($!)
for _ in $(seq 600); do curl -sf "http://$SRV/v2/" >/dev/null && break; sleep 0.05; done
T1=$(date +%s.%N)
echo "serve ready (signature gate, frame and entry index, manifests): $(echo "$T1 - $T0" | bc) s"
URL="http://$SRV/v2/bench/big/blobs/sha256:$L"
FMT='ttfb %{time_starttransfer} s, total %{time_total} s, %{speed_download} B/s, %{size_download} bytes\n'
echo -n "first GET (verifies while streaming):  "; curl -s -o /dev/null -w "$FMT" "$URL"
echo -n "second GET (verified):                 "; curl -s -o /dev/null -w "$FMT" "$URL"
echo -n "Range 1 MiB at 90% (verified):         "
curl -s -o /dev/null -w "$FMT" -H "Range: bytes=$((LS * 9 / 10))-$((LS * 9 / 10 + 1048575))" "$URL"
echo -n "baseline zstd -dc | sha256sum:         "
T0=$(date +%s.%N); zstd -dc b.tar.zst | sha256sum >/dev/null; T1=$(date +%s.%N); echo "$(echo "$T1 - $T0" | bc) s"
echo -n "baseline curl from docker-registry:    "; curl -s -o /dev/null -w "$FMT" "http://$REG/v2/bench/big/blobs/sha256:$L"
if [ -n "${AIRLOCK_OLD:-}" ]; then
  # A bundle of one frame (as written before seekable frames): reads decode from the start.
  zstd -dc b.tar.zst | zstd -q -1 -T2 -o old.tar.zst
  kill "${PIDS[-1]}"; SRV=127.0.0.1:$(port)
  "$AIRLOCK" serve old.tar.zst --allow-unsigned --listen "$SRV" >serve.out 2>serve.err & PIDS+=($!)
  for _ in $(seq 600); do curl -sf "http://$SRV/v2/" >/dev/null && break; sleep 0.05; done
  URL="http://$SRV/v2/bench/big/blobs/sha256:$L"
  echo -n "one-frame bundle, first GET:           "; curl -s -o /dev/null -w "$FMT" "$URL"
  echo -n "one-frame bundle, Range at 90%:        "
  curl -s -o /dev/null -w "$FMT" -H "Range: bytes=$((LS * 9 / 10))-$((LS * 9 / 10 + 1048575))" "$URL"
fi
