#!/usr/bin/env bash
# Benchmark: `ledger verify` and `ledger prove` on a ledger of N entries (default 100 000, one
# checkpoint per entry, about 1.8 KB a line) made by examples/ledger_gen.rs and opened once as
# an importer would (so the derived files a ledger made by appends has are there).
# Usage: scripts/bench.sh ledger [N]
# Prints a markdown table: wall (best and median of 5 runs, measured around the process),
# user and sys CPU and peak RSS of the best run, and the load average.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100000}
cargo build --release --quiet --bin airlock --example ledger_gen
AIRLOCK=$PWD/target/release/airlock
WORK=$(mktemp -d -t airlock-bench-ledger.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
L=$WORK/L
start=$(date +%s)
target/release/examples/ledger_gen "$L" "$N" --open 2>/dev/null
echo "ledger of $N entries made in $(( $(date +%s) - start )) s ($(du -sh "$L" | cut -f1))"
python3 - "$AIRLOCK" "$L" "$N" <<'PY'
import os, statistics, subprocess, sys, time
airlock, L, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
vkey = ["--vkey", os.path.join(L, "ledger.vkey")]
cases = [
    (f"`airlock ledger verify L --vkey L/ledger.vkey` ({n} entries)", ["ledger", "verify", L] + vkey),
    (f"`airlock ledger verify L --vkey L/ledger.vkey --every-checkpoint` (reads all {n + 1} checkpoints)",
     ["ledger", "verify", L, "--every-checkpoint"] + vkey),
    (f"`airlock ledger prove L --index {n // 2}`", ["ledger", "prove", L, "--index", str(n // 2)]),
]
print(f"\nload average: {os.getloadavg()[0]:.2f}, {os.getloadavg()[1]:.2f}, {os.getloadavg()[2]:.2f}\n")
print("| command | wall, best | wall, median of 5 | user | sys | max RSS |")
print("|---|---|---|---|---|---|")
for label, args in cases:
    runs = []
    for _ in range(5):
        t = time.perf_counter()
        p = subprocess.Popen([airlock] + args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t
        if status != 0:
            sys.exit(f"{label} failed (status {status}); run it by hand to see why")
        runs.append((wall, ru.ru_utime, ru.ru_stime, ru.ru_maxrss))
    best = min(runs)
    fmt = lambda s: f"{s * 1000:.1f} ms" if s < 1 else f"{s:.2f} s"
    print(f"| {label} | {fmt(best[0])} | {fmt(statistics.median(r[0] for r in runs))} | {fmt(best[1])} | {fmt(best[2])} | {best[3] // 1024} MB |")
PY
