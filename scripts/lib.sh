# Shared helpers for scripts/demo.sh and scripts/bench.sh (sourced, not run).

# Installs Debian packages that are missing (idempotent).
ensure_apt() {
  local missing=()
  for pair in "$@"; do
    local cmd=${pair%%:*} pkg=${pair##*:}
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}" >&2
    local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_registry DIR -> prints HOST:PORT; the registry runs until the script exits.
start_registry() {
  local dir=$1 port
  port=$(free_port)
  mkdir -p "$dir/storage"
  cat >"$dir/config.yml" <<YML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
YML
  docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
  echo $! >"$dir/pid"
  for _ in $(seq 1 100); do
    if (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null; then echo "127.0.0.1:$port"; return 0; fi
    sleep 0.1
  done
  echo "registry in $dir did not start; see $dir/registry.log" >&2
  return 1
}

stop_registries() {
  local root=$1
  for p in "$root"/*/pid; do
    [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null || true
  done
}

# bench_binaries: builds (unless BENCH_BUILD=0) and chooses the binaries a bench measures, and
# sets AIRLOCK and SAMPLES. BENCH_PROFILE=debug takes the debug build (dependencies optimised,
# airlock not): a quick look on a machine too loaded to build a release; figures to publish use
# the release. BENCH_BUILD=0 measures the binaries already built (say which commit built them);
# BENCH_AIRLOCK / BENCH_SAMPLES point at binaries elsewhere (another worktree's release).
bench_binaries() {
  local profile=${BENCH_PROFILE:-release}
  if [ "${BENCH_BUILD:-1}" = 1 ]; then
    if [ "$profile" = release ]; then
      cargo build --release --quiet --bin airlock --example samples
    else
      cargo build --quiet --bin airlock --example samples
    fi
  fi
  AIRLOCK=${BENCH_AIRLOCK:-$PWD/target/$profile/airlock}
  SAMPLES=${BENCH_SAMPLES:-$PWD/target/$profile/examples/samples}
  PROFILE=$profile
}
