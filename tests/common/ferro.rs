//! ferro-oci-server 1.0.0 (crates.io), a registry that serves the OCI 1.1 referrers API, started
//! per test like the distribution registry. `scripts/test.sh` installs it under
//! `target/peers/ferro` and exports `AIRLOCK_FERRO`; a test that needs it fails (never skips)
//! when it is missing.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, TestRegistry};

/// The ferro-oci-server binary: `$AIRLOCK_FERRO`, else where `scripts/test.sh` installs it.
pub fn binary() -> PathBuf {
    let path = std::env::var_os("AIRLOCK_FERRO")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("target/peers/ferro/bin/ferro-oci-server")
        });
    assert!(
        path.is_file(),
        "ferro-oci-server not found at {}: run scripts/test.sh (it installs ferro-oci-server 1.0.0 into target/peers/ferro)",
        path.display()
    );
    path
}

/// Starts ferro-oci-server on 127.0.0.1 with its own storage; plain HTTP, no auth.
pub fn start() -> TestRegistry {
    let bin = binary();
    for _attempt in 0..5 {
        let dir = tempfile::tempdir().expect("tmp");
        let host = format!("127.0.0.1:{}", free_port());
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("log");
        let child = Command::new(&bin)
            .env("FERRO_OCI_LISTEN", &host)
            .env("FERRO_OCI_STORAGE_DIR", dir.path().join("storage"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start ferro-oci-server");
        let mut reg = TestRegistry {
            child,
            host,
            dir,
            tls: None,
            auth: None,
            token: None,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = reg.child.try_wait() {
                break;
            }
            if std::net::TcpStream::connect(&reg.host).is_ok() {
                return reg;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = reg.child.kill();
    }
    panic!("ferro-oci-server did not start after 5 attempts");
}
