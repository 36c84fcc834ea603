#!/usr/bin/env bash
# The WAN section of scripts/bench.sh (run it as `scripts/bench.sh wan [DELAY_MS]`): the
# many-image set a round trip away. Prints a markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
DELAY=${1:-25}
N=120

# BENCH_PROFILE, BENCH_BUILD, BENCH_AIRLOCK, BENCH_SAMPLES: see bench_binaries in lib.sh.
bench_binaries
# The proxy only forwards and sleeps; its debug build (dependencies optimised) is enough and
# is the same for airlock and skopeo.
[ "${BENCH_BUILD:-1}" = 1 ] && cargo build --quiet --example wanproxy
WANPROXY=$PWD/target/debug/examples/wanproxy
WORK=$(mktemp -d -t airlock-bench-wan.XXXXXX)
cleanup() {
  # start_proxy runs in a command substitution (a subshell): its pids are kept in files.
  for f in "$WORK"/*.proxypid; do
    [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
  done
  sleep 0.2
  stop_registries "$WORK"
  # The registries may still be writing as they stop.
  rm -rf "$WORK" 2>/dev/null || { sleep 1; rm -rf "$WORK"; }
}
trap cleanup EXIT
export AIRLOCK_PASSWORD=bench-only
"$AIRLOCK" key generate --out "$WORK/keys/bench" --quiet >/dev/null

# start_proxy NAME UPSTREAM -> prints the proxy's HOST:PORT; its request count is in
# $WORK/NAME.count.
start_proxy() {
  local name=$1 upstream=$2
  "$WANPROXY" "$upstream" "$DELAY" "$WORK/$name.count" >"$WORK/$name.host" 2>"$WORK/$name.log" &
  echo $! >"$WORK/$name.proxypid"
  for _ in $(seq 1 100); do
    [ -s "$WORK/$name.host" ] && [ -s "$WORK/$name.count" ] && { cat "$WORK/$name.host"; return 0; }
    sleep 0.1
  done
  echo "proxy $name did not start; see $WORK/$name.log" >&2
  return 1
}
count() { cat "$WORK/$1.count"; }

declare -A SECS RSS REQS
# measure NAME PROXY CMD...: time, peak RSS and the requests PROXY saw while CMD ran.
measure() {
  local name=$1 proxy=$2; shift 2
  sleep 0.2
  local before; before=$(count "$proxy")
  /usr/bin/time -f '%e %M' -o "$WORK/time.$name" "$@" >"$WORK/out.$name" 2>"$WORK/err.$name" || {
    echo "$name failed:" >&2; cat "$WORK/err.$name" >&2; exit 1; }
  sleep 0.2
  REQS[$name]=$(( $(count "$proxy") - before ))
  read -r SECS[$name] RSS[$name] <"$WORK/time.$name"
}

src=$(start_registry "$WORK/src")
dst=$(start_registry "$WORK/dst")
dst2=$(start_registry "$WORK/dst2")
srcp=$(start_proxy srcp "$src")
dstp=$(start_proxy dstp "$dst")
dst2p=$(start_proxy dst2p "$dst2")

"$SAMPLES" many "$src" >"$WORK/refs"
[ "$(wc -l <"$WORK/refs")" -eq "$N" ] || { echo "expected $N images" >&2; exit 1; }
sed "s|^$src/|$srcp/|" "$WORK/refs" >"$WORK/refs.wan"
{ echo "name: wan"; echo "images:"; sed 's/^/  - ref: /' "$WORK/refs.wan"; } >"$WORK/wan.yaml"

measure lock srcp "$AIRLOCK" lock "$WORK/wan.yaml" -o "$WORK/wan.lock" --insecure-registry "$srcp" --quiet
measure collect srcp "$AIRLOCK" collect "$WORK/wan.lock" -o "$WORK/wan.tar.zst" \
  --cache "$WORK/cache" --insecure-registry "$srcp" --quiet --sign "$WORK/keys/bench.key"
measure import dstp "$AIRLOCK" import "$WORK/wan.tar.zst" --to "$dstp/wan" --insecure-registry "$dstp" \
  --quiet --trust "$WORK/keys/bench.pub"
# The skopeo loops: one image at a time, every platform, through the same kind of proxy.
measure skopeo-pull srcp bash -c "i=0; while read -r ref; do i=\$((i+1)); skopeo copy -q --all --src-tls-verify=false docker://\$ref oci:$WORK/layout:img\$i >/dev/null; done <$WORK/refs.wan"
measure skopeo-push dst2p bash -c "i=0; while read -r ref; do i=\$((i+1)); skopeo copy -q --all --dest-tls-verify=false oci:$WORK/layout:img\$i docker://$dst2p/wan/img\$i:1 >/dev/null; done <$WORK/refs.wan"

ratio() { python3 -c "print(f'{$2/max($1,0.001):.2f}x')"; }
sum() { python3 -c "print(f'{$1+$2:.2f}')"; }
per() { python3 -c "print(f'{$1/$N:.1f}')"; }
mib() { python3 -c "print(f'{$1/1024:.0f}')"; }
LC=$(sum "${SECS[lock]}" "${SECS[collect]}")

echo
echo "Build: $PROFILE. Content: $N images (100 single-platform, 20 two-platform indexes, 30 signed), ${DELAY} ms added to every request; machine: $(nproc) cores; $(date -u +%F); load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| step | airlock s | requests/image | peak RSS MiB | baseline | baseline s | requests/image | speed-up |"
echo "|---|---|---|---|---|---|---|---|"
echo "| lock | ${SECS[lock]} | $(per "${REQS[lock]}") | $(mib "${RSS[lock]}") | | | | |"
echo "| collect | ${SECS[collect]} | $(per "${REQS[collect]}") | $(mib "${RSS[collect]}") | | | | |"
echo "| lock + collect | $LC | $(per $(( REQS[lock] + REQS[collect] ))) | | skopeo copy --all → oci: (loop) | ${SECS[skopeo-pull]} | $(per "${REQS[skopeo-pull]}") | $(ratio "$LC" "${SECS[skopeo-pull]}") |"
echo "| import | ${SECS[import]} | $(per "${REQS[import]}") | $(mib "${RSS[import]}") | skopeo copy --all oci: → registry (loop) | ${SECS[skopeo-push]} | $(per "${REQS[skopeo-push]}") | $(ratio "${SECS[import]}" "${SECS[skopeo-push]}") |"
