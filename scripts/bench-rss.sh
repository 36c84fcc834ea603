#!/usr/bin/env bash
# The memory section of scripts/bench.sh (run it as `scripts/bench.sh rss [N]`): N small images
# (the WAN set's mix, grown: a sixth two-platform indexes, a quarter of the single-platform
# images and half the indexes signed) in a local registry, then every command of the mirror
# path on them under /usr/bin/time. Prints a markdown table: seconds, peak RSS, within the
# 128 MiB of issue 12 or not. Run it at a few N to see whether a command grows with N. The last
# rows run collect and import again with a scan policy.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
N=${1:-1000}
LIMIT_MIB=128
# Parts small enough that even N = 250 makes several.
PART=4MiB

# BENCH_PROFILE, BENCH_BUILD, BENCH_AIRLOCK, BENCH_SAMPLES: see bench_binaries in lib.sh.
bench_binaries
WORK=$(mktemp -d -t airlock-bench-rss.XXXXXX)
cleanup() {
  [ -f "$WORK/serve.pid" ] && kill "$(cat "$WORK/serve.pid")" 2>/dev/null || true
  stop_registries "$WORK"
  # The registries may still be writing as they stop.
  rm -rf "$WORK" 2>/dev/null || { sleep 1; rm -rf "$WORK"; }
}
trap cleanup EXIT
export AIRLOCK_PASSWORD=bench-only AIRLOCK_LEDGER_PASSWORD=bench-only

declare -A SECS RSS FAILED
# Counted apart: `${#FAILED[@]}` of an empty associative array is "unbound" under `set -u`.
NFAILED=0
ORDER=()
# measure NAME OK_EXIT_CODES CMD...: runs CMD under /usr/bin/time, records seconds and peak RSS
# (KiB). OK_EXIT_CODES is a space-separated list (scan and rescan exit 5 on these images: their
# random layers hold no packages to check). A failure is recorded in the table, with the end of
# its error, and the run goes on: the commands after it are still measured.
measure() {
  local name=$1 ok=$2 rc=0; shift 2
  /usr/bin/time -f '%e %M' -o "$WORK/time.$name" "$@" >"$WORK/out.$name" 2>"$WORK/err.$name" || rc=$?
  case " $ok " in
    *" $rc "*) ;;
    *) echo "$name failed (exit $rc):" >&2; cat "$WORK/err.$name" >&2
       NFAILED=$((NFAILED + 1))
       FAILED[$name]="exit $rc: $(tail -n 1 "$WORK/err.$name" | sed 's/.*: \([^:]*: [^:]*\)$/\1/; s/|/\\|/g')" ;;
  esac
  read -r "SECS[$name]" "RSS[$name]" < <(tail -n 1 "$WORK/time.$name")
  ORDER+=("$name")
}

spec() {  # spec NAME HOST: the spec of the N images as HOST serves them
  { echo "name: $1"; echo "images:"; sed "s|^[^/]*/|  - ref: $2/|" "$WORK/refs"; }
}

src=$(start_registry "$WORK/src")
dst=$(start_registry "$WORK/dst")
dst2=$(start_registry "$WORK/dst2")
"$SAMPLES" many "$src" "$N" >"$WORK/refs"
[ "$(wc -l <"$WORK/refs")" -eq "$N" ] || { echo "expected $N images" >&2; exit 1; }
spec rss "$src" >"$WORK/rss.yaml"
"$AIRLOCK" key generate --out "$WORK/keys/bench" --quiet >/dev/null
"$AIRLOCK" ledger init --origin bench.invalid/ledger "$WORK/ledger" --quiet >/dev/null
K=(--key "$WORK/keys/bench.key")
T=(--trust "$WORK/keys/bench.pub")
sync

measure "db build" "0" "$AIRLOCK" db build --osv tests/data/osv/debian --osv tests/data/osv/alpine \
  -o "$WORK/vuln.db" --quiet
measure lock "0" "$AIRLOCK" lock "$WORK/rss.yaml" -o "$WORK/rss.lock" --insecure-registry "$src" --quiet
measure "collect (signed)" "0" "$AIRLOCK" collect "$WORK/rss.lock" -o "$WORK/rss.tar.zst" \
  --cache "$WORK/cache" --insecure-registry "$src" --quiet "${K[@]}"
measure inspect "0" "$AIRLOCK" inspect "$WORK/rss.tar.zst" --quiet "${T[@]}"
measure verify "0" "$AIRLOCK" verify "$WORK/rss.tar.zst" --quiet "${T[@]}"
measure "scan (bundle)" "0 5" "$AIRLOCK" scan "$WORK/rss.tar.zst" --db "$WORK/vuln.db" --quiet
measure "import --ledger" "0" "$AIRLOCK" import "$WORK/rss.tar.zst" --to "$dst/rss" \
  --insecure-registry "$dst" --ledger "$WORK/ledger" --quiet "${T[@]}"
measure "ledger verify" "0" "$AIRLOCK" ledger verify "$WORK/ledger" --quiet
measure "ledger show --bundle" "0" "$AIRLOCK" ledger show "$WORK/ledger" --bundle rss --quiet
measure "ledger report" "0" "$AIRLOCK" ledger report "$WORK/ledger" -o "$WORK/report.html" --quiet
measure "ledger export" "0" "$AIRLOCK" ledger export "$WORK/ledger" -o "$WORK/export.tar" --quiet
measure "receipt --ledger" "0" "$AIRLOCK" receipt --registry "$dst/rss" --ledger "$WORK/ledger" \
  -o "$WORK/receipt.json" --insecure-registry "$dst" --quiet
measure "mirror-config" "0" "$AIRLOCK" mirror-config --ledger "$WORK/ledger" --runtime containerd \
  -o "$WORK/mirror" --quiet
measure rescan "0 5" "$AIRLOCK" rescan --ledger "$WORK/ledger" --registry "$dst/rss" --db "$WORK/vuln.db" \
  --cache "$WORK/rescan-cache" --insecure-registry "$dst" --quiet
measure "split" "0" "$AIRLOCK" split "$WORK/rss.tar.zst" --size "$PART" --out-dir "$WORK/split" \
  --quiet "${K[@]}"
measure "verify-parts" "0" "$AIRLOCK" verify-parts "$WORK/split" --quiet "${T[@]}"
measure "collect --split" "0" "$AIRLOCK" collect "$WORK/rss.lock" -o "$WORK/parts/rss.tar.zst" \
  --split "$PART" --cache "$WORK/cache" --insecure-registry "$src" --quiet "${K[@]}"
measure "import (parts)" "0" "$AIRLOCK" import "$WORK/parts" --to "$dst2/rss" \
  --insecure-registry "$dst2" --quiet "${T[@]}"

# The same set with a scan policy: collect scans every platform (two at once) while it pulls,
# and import judges the carried SBOMs against the database before pushing. The random layers
# hold no OS, so the policy only warns about that; every layer is still read.
{ spec scanned "$src"; printf 'scan:\n  db: vuln.db\n  unknown_os: warn\n'; } >"$WORK/scanned.yaml"
printf 'db: vuln.db\nunknown_os: warn\n' >"$WORK/scan-policy.yaml"
measure "lock (scan policy)" "0" "$AIRLOCK" lock "$WORK/scanned.yaml" -o "$WORK/scanned.lock" \
  --insecure-registry "$src" --quiet
measure "collect (scan policy)" "0" "$AIRLOCK" collect "$WORK/scanned.lock" -o "$WORK/scanned.tar.zst" \
  --cache "$WORK/scan-cache" --insecure-registry "$src" --quiet "${K[@]}"
measure "import --scan-policy --db" "0" "$AIRLOCK" import "$WORK/scanned.tar.zst" --to "$dst2/scanned" \
  --insecure-registry "$dst2" --scan-policy "$WORK/scan-policy.yaml" --db "$WORK/vuln.db" \
  --quiet "${T[@]}"

# serve: measured over its whole life, which includes a lock and a collect of all N images
# from it (every manifest and blob served and hashed once), then SIGTERM.
port=$(free_port)
/usr/bin/time -f '%e %M' -o "$WORK/time.serve" "$AIRLOCK" serve "$WORK/rss.tar.zst" "${T[@]}" \
  --listen "127.0.0.1:$port" --quiet >"$WORK/out.serve" 2>"$WORK/err.serve" &
timepid=$!
up=0
for _ in $(seq 1 600); do
  if (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null; then up=1; break; fi
  sleep 0.1
done
[ "$up" = 1 ] || { echo "serve did not start:" >&2; cat "$WORK/err.serve" >&2; exit 1; }
pgrep -P "$timepid" >"$WORK/serve.pid"
spec served "127.0.0.1:$port" >"$WORK/served.yaml"
"$AIRLOCK" lock "$WORK/served.yaml" -o "$WORK/served.lock" --insecure-registry "127.0.0.1:$port" --quiet >/dev/null
"$AIRLOCK" collect "$WORK/served.lock" -o "$WORK/served.tar.zst" --cache "$WORK/served-cache" \
  --insecure-registry "127.0.0.1:$port" --quiet >/dev/null
kill -TERM "$(cat "$WORK/serve.pid")"
wait "$timepid" || true
rm -f "$WORK/serve.pid"
read -r "SECS[serve]" "RSS[serve]" < <(tail -n 1 "$WORK/time.serve")
ORDER+=("serve")

mib() { python3 -c "print(f'{$1/1024:.0f}')"; }
within() { [ "$1" -le $((LIMIT_MIB * 1024)) ] && echo yes || echo "**no**"; }
echo
echo "Build: $PROFILE ($AIRLOCK). Content: $N images ($((N - N / 6)) single-platform, $((N / 6)) two-platform indexes), bundle $(( $(stat -c %s "$WORK/rss.tar.zst") >> 20 )) MiB; machine: $(nproc) cores; $(date -u +%F); load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| command | seconds | peak RSS MiB | ≤ $LIMIT_MIB MiB | failed |"
echo "|---|---|---|---|---|"
for name in "${ORDER[@]}"; do
  echo "| $name | ${SECS[$name]} | $(mib "${RSS[$name]}") | $(within "${RSS[$name]}") | ${FAILED[$name]:-} |"
done
[ "$NFAILED" -eq 0 ] || exit 1
