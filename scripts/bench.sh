#!/usr/bin/env bash
# Benchmark: airlock vs skopeo and zstd|openssl on 20 images (~1 GiB, layers 1 KiB..300 MiB,
# some shared) in local registries. Prints a markdown table (MB/s, ratios, peak RSS), then
# repeats the airlock runs with one layer grown to 2 GiB to show memory stays flat.
# Usage: scripts/bench.sh [BIG_LAYER_MIB_FOR_FLATNESS_RUN (default 2048; 0 to skip)]
#        scripts/bench.sh wan [DELAY_MS (default 25)]
#        scripts/bench.sh ledger [N (default 100000)]   (scripts/bench-ledger.sh)
#        scripts/bench.sh rss [N (default 1000)]        (scripts/bench-rss.sh)
# The `wan` section: 120 small images (100 single-platform, 20 two-platform indexes, 30
# signed) in a real registry behind a loopback proxy that adds DELAY_MS to every request;
# lock + collect against a skopeo pull loop, import (into a registry behind the same kind of
# proxy) against a skopeo push loop from an OCI layout; requests per image counted at the
# proxies; peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
if [ "${1:-}" = ledger ]; then
  exec bash scripts/bench-ledger.sh "${2:-100000}"
fi
ensure_apt docker-registry:docker-registry skopeo:skopeo zstd:zstd openssl:openssl python3:python3
[ -x /usr/bin/time ] || ensure_apt gnu-time-missing:time
if [ "${1:-}" = wan ]; then
  exec bash scripts/bench-wan.sh "${2:-25}"
fi
if [ "${1:-}" = rss ]; then
  ensure_apt pgrep:procps
  exec bash scripts/bench-rss.sh "${2:-1000}"
fi
FLAT_MIB=${1:-2048}

# BENCH_PROFILE, BENCH_BUILD, BENCH_AIRLOCK, BENCH_SAMPLES: see bench_binaries in lib.sh.
bench_binaries
WORK=$(mktemp -d -t airlock-bench.XXXXXX)
trap 'stop_registries "$WORK"; rm -rf "$WORK"' EXIT
# Bundles are signed and checked as in real use (the signature costs microseconds).
export AIRLOCK_PASSWORD=bench-only
"$AIRLOCK" key generate -o "$WORK/keys/bench" --quiet >/dev/null

# measure NAME CMD...: runs CMD under /usr/bin/time, records seconds and peak RSS (KiB).
declare -A SECS RSS
measure() {
  local name=$1; shift
  /usr/bin/time -f '%e %M' -o "$WORK/time.$name" "$@" >"$WORK/out.$name" 2>"$WORK/err.$name" || {
    echo "$name failed:" >&2; cat "$WORK/err.$name" >&2; exit 1; }
  read -r SECS[$name] RSS[$name] <"$WORK/time.$name"
}

# median_of NAME REPS: NAME's seconds become the median of NAME#1..NAME#REPS, its peak RSS the
# highest of them.
median_of() {
  local name=$1 reps=$2 r secs=() rss=0
  for r in $(seq 1 "$reps"); do
    secs+=("${SECS[$name#$r]}")
    [ "${RSS[$name#$r]}" -gt "$rss" ] && rss=${RSS[$name#$r]}
  done
  SECS[$name]=$(printf '%s\n' "${secs[@]}" | sort -g | sed -n "$(( (reps + 1) / 2 ))p")
  RSS[$name]=$rss
}

# The shared machines are noisy: the base set runs every operation and its baseline REPS times
# (BENCH_REPS, default 3), interleaved (airlock, then its baseline, in each round) so drift
# hits both alike, and reports medians. Each import goes into a registry of its own.
REPS=${BENCH_REPS:-3}

# import_into NAME SOURCE TAG: imports SOURCE (a bundle or its parts) into a registry of its own,
# measured as NAME. It starts with no dirty pages from the step before (a bundle, a split)
# being written back under it.
import_into() {
  local name=$1 source=$2 dst
  dst=$(start_registry "$WORK/dst-$3")
  sync
  measure "$name" "$AIRLOCK" import "$source" --to "$dst/bench" --insecure-registry "$dst" --quiet \
    --trust "$WORK/keys/bench.pub"
}

# curl_put HOST:PORT REPO FILE HEX: one monolithic upload of FILE as blob sha256:HEX.
curl_put() {
  local loc sep
  loc=$(curl -sf -i -X POST "http://$1/v2/$2/blobs/uploads/" | tr -d '\r' | awk -F': ' 'tolower($1)=="location"{print $2}')
  case "$loc" in http*) ;; *) loc="http://$1$loc" ;; esac
  sep='?'; case "$loc" in *\?*) sep='&' ;; esac
  curl -sf -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' -T "$3" "${loc}${sep}digest=sha256:$4"
}

run_set() {  # run_set LABEL BIG_MIB -> fills SECS/RSS with LABEL-prefixed names
  local label=$1 big=$2 reps=1 r
  [ "$label" = base ] && reps=$REPS
  local src dst
  src=$(start_registry "$WORK/$label-src")
  BYTES=$("$SAMPLES" bench "$src" "$big" | tail -n 1)
  { echo "name: bench"; echo "images:"; for i in $(seq -w 0 19); do echo "  - ref: $src/bench/img$i:1"; done; } >"$WORK/$label.yaml"
  "$AIRLOCK" lock "$WORK/$label.yaml" -o "$WORK/$label.lock" --insecure-registry "$src" --quiet >/dev/null
  for r in $(seq 1 "$reps"); do
    rm -rf "$WORK/$label-cache" "$WORK/$label.tar.zst"
    sync
    measure "$label-collect#$r" "$AIRLOCK" collect "$WORK/$label.lock" -o "$WORK/$label.tar.zst" \
      --cache "$WORK/$label-cache" --insecure-registry "$src" --quiet --key "$WORK/keys/bench.key"
    measure "$label-verify#$r" "$AIRLOCK" verify "$WORK/$label.tar.zst" --quiet --trust "$WORK/keys/bench.pub"
    if [ "$label" != base ]; then
      import_into "$label-import#$r" "$WORK/$label.tar.zst" "$label-a$r"
      continue
    fi
    # The same bundle as 128 MiB parts (collect writes the same bytes every round): verify and
    # import from them should be within 10 % of from the file. The two imports run back to back,
    # in turns first, so the registry's disk state weighs on both alike.
    if [ "$r" = 1 ]; then
      "$AIRLOCK" split "$WORK/$label.tar.zst" --size 128MiB --out-dir "$WORK/$label-parts" \
        --key "$WORK/keys/bench.key" --quiet >/dev/null
    fi
    measure "$label-verify-parts#$r" "$AIRLOCK" verify "$WORK/$label-parts" --quiet --trust "$WORK/keys/bench.pub"
    if [ $((r % 2)) = 1 ]; then
      import_into "$label-import#$r" "$WORK/$label.tar.zst" "$label-a$r"
      import_into "$label-import-parts#$r" "$WORK/$label-parts" "$label-p$r"
    else
      import_into "$label-import-parts#$r" "$WORK/$label-parts" "$label-p$r"
      import_into "$label-import#$r" "$WORK/$label.tar.zst" "$label-a$r"
    fi
    # The registry's own ingest, the ceiling for any import (issue 12): the bundle file's bytes
    # (as many as import uploads, near enough: the blobs, each once) in one monolithic `curl`
    # PUT into a fresh registry; then two such PUTs at once into another (what the registry
    # takes from concurrent streams).
    [ -n "${BUNDLE_DIGEST:-}" ] || BUNDLE_DIGEST=$(sha256sum "$WORK/$label.tar.zst" | cut -d' ' -f1)
    dst=$(start_registry "$WORK/dst-$label-c$r")
    sync
    measure "$label-curl-put#$r" bash -c "$(declare -f curl_put); curl_put $dst one $WORK/$label.tar.zst $BUNDLE_DIGEST"
    dst=$(start_registry "$WORK/dst-$label-d$r")
    sync
    measure "$label-curl-put2#$r" bash -c "$(declare -f curl_put); curl_put $dst one $WORK/$label.tar.zst $BUNDLE_DIGEST & a=\$!; curl_put $dst two $WORK/$label.tar.zst $BUNDLE_DIGEST & b=\$!; wait \$a && wait \$b"
    rm -rf "$WORK/layout"
    measure "$label-skopeo-pull#$r" bash -c "for i in \$(seq -w 0 19); do skopeo copy -q --all --src-tls-verify=false docker://$src/bench/img\$i:1 oci:$WORK/layout:img\$i >/dev/null; done"
    dst=$(start_registry "$WORK/dst-$label-s$r")
    sync
    measure "$label-skopeo-push#$r" bash -c "for i in \$(seq -w 0 19); do skopeo copy -q --all --dest-tls-verify=false oci:$WORK/layout:img\$i docker://$dst/bench/img\$i:1 >/dev/null; done"
    measure "$label-zstd-openssl#$r" bash -c "zstd -dc $WORK/$label.tar.zst | openssl dgst -sha256 >/dev/null"
    # Free the disk the round used: its target registries' storage.
    for d in "$WORK/dst-$label"-*"$r"; do
      { [ -f "$d/pid" ] && kill "$(cat "$d/pid")" 2>/dev/null; } || true
      rm -rf "$d/storage"
    done
  done
  local op
  for op in collect verify import skopeo-pull skopeo-push zstd-openssl verify-parts import-parts curl-put curl-put2; do
    [ -n "${SECS[$label-$op#1]:-}" ] && median_of "$label-$op" "$reps"
  done
  rm -rf "$WORK/$label-cache" "$WORK/$label-parts" "$WORK/layout"
  stop_registries "$WORK"
}

mbs() { python3 -c "print(f'{$1/1e6/max($2,0.001):.0f}')"; }
ratio() { python3 -c "print(f'{$2/max($1,0.001):.2f}x')"; }
mib() { python3 -c "print(f'{$1/1024:.0f}')"; }

run_set base 300
B=$BYTES
echo
echo "Content: 20 images, $(python3 -c "print(f'{$B/2**20:.0f}')") MiB of blobs; medians of $REPS rounds; machine: $(nproc) cores; $(date -u +"%F %H:%M UTC"); load average at the end: $(cut -d" " -f1-3 /proc/loadavg)"
echo
echo "| operation | airlock s | airlock MB/s | airlock peak RSS MiB | baseline | baseline s | baseline MB/s | speed-up |"
echo "|---|---|---|---|---|---|---|---|"
row() {  # row OP AIRLOCK_NAME BASE_LABEL BASE_NAME
  echo "| $1 | ${SECS[$2]} | $(mbs "$B" "${SECS[$2]}") | $(mib "${RSS[$2]}") | $3 | ${SECS[$4]} | $(mbs "$B" "${SECS[$4]}") | $(ratio "${SECS[$2]}" "${SECS[$4]}") |"
}
row collect base-collect "skopeo copy --all → oci: (per image)" base-skopeo-pull
row import base-import "skopeo copy --all oci: → registry (per image)" base-skopeo-push
row verify base-verify "zstd -dc \| openssl dgst -sha256" base-zstd-openssl
CEIL_BYTES=$(stat -c %s "$WORK/base.tar.zst" 2>/dev/null || echo "$B")
echo
# Import uploads the bundle's blobs (each once), about as many bytes as the bundle file: its
# share of the ceiling is the ceiling's time over its own.
share() { python3 -c "print(f'{$1/max($2,0.001)*100:.0f}')"; }
echo "Import against the registry's own ingest of the bundle file's $(python3 -c "print(f'{$CEIL_BYTES/2**20:.0f}')") MiB (about what import uploads: each blob once), each into a fresh registry: one monolithic curl PUT ${SECS[base-curl-put]} s ($(mbs "$CEIL_BYTES" "${SECS[base-curl-put]}") MB/s); two at once ${SECS[base-curl-put2]} s ($(mbs "$((2 * CEIL_BYTES))" "${SECS[base-curl-put2]}") MB/s in all). airlock import ${SECS[base-import]} s = $(share "${SECS[base-curl-put]}" "${SECS[base-import]}") % of one stream's rate, $(share "$(python3 -c "print(${SECS[base-curl-put2]}/2)")" "${SECS[base-import]}") % of two streams'."
echo
echo "Each round's seconds (airlock / baseline):"
echo
for pair in collect:skopeo-pull import:skopeo-push verify:zstd-openssl import:import-parts import:curl-put import:curl-put2; do
  a=${pair%%:*} b=${pair##*:} line=""
  for r in $(seq 1 "$REPS"); do line+=" ${SECS[base-$a#$r]} / ${SECS[base-$b#$r]};"; done
  echo "- $a / $b:${line%;}"
done
echo
echo "From 128 MiB parts (target: within 10 % of the file):"
echo
echo "| operation | from the file s | from parts s | parts / file | peak RSS MiB (parts) |"
echo "|---|---|---|---|---|"
for op in verify import; do
  echo "| $op | ${SECS[base-$op]} | ${SECS[base-$op-parts]} | $(python3 -c "print(f'{${SECS[base-$op-parts]}/max(${SECS[base-$op]},0.001):.2f}')") | $(mib "${RSS[base-$op-parts]}") |"
done

if [ "$FLAT_MIB" -gt 0 ]; then
  run_set flat "$FLAT_MIB"
  echo
  echo "Memory with one layer grown from 300 MiB to $FLAT_MIB MiB ($(python3 -c "print(f'{$BYTES/2**20:.0f}')") MiB in all):"
  echo
  echo "| operation | peak RSS MiB (300 MiB layer) | peak RSS MiB ($FLAT_MIB MiB layer) |"
  echo "|---|---|---|"
  for op in collect import verify; do
    echo "| $op | $(mib "${RSS[base-$op]}") | $(mib "${RSS[flat-$op]}") |"
  done
fi
