//! zuul-registry 1.3.0 (PyPI): a registry that demands a Bearer token on every request
//! (anonymous read tokens, a write token only for a configured user). scripts/test.sh installs
//! it into `target/peers/zuul` and exports `AIRLOCK_ZUUL_REGISTRY`; a test that needs it fails
//! when it is missing.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The user zuul gives write access to.
pub const USER: &str = "zuul-writer";
/// Its password.
pub const PASSWORD: &str = "zuul-pw-4417";

/// A running zuul-registry, killed on drop.
pub struct Zuul {
    child: Child,
    pub host: String,
    pub dir: tempfile::TempDir,
}

fn binary() -> PathBuf {
    let bin = std::env::var_os("AIRLOCK_ZUUL_REGISTRY")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/peers/zuul/bin/zuul-registry")
        });
    assert!(
        bin.is_file(),
        "zuul-registry not found at {}: run scripts/test.sh (it installs zuul-registry==1.3.0 into target/peers/zuul)",
        bin.display()
    );
    bin
}

impl Zuul {
    pub fn start() -> Zuul {
        let bin = binary();
        for _attempt in 0..3 {
            let dir = tempfile::tempdir().expect("tmp");
            let port = super::free_port();
            let host = format!("127.0.0.1:{port}");
            let config = format!(
                "registry:\n  address: '127.0.0.1'\n  port: {port}\n  public-url: 'http://{host}'\n  secret: 'airlock-test-secret'\n  users:\n    - name: {USER}\n      pass: {PASSWORD}\n      access: write\n  storage:\n    driver: filesystem\n    root: {}\n",
                dir.path().join("storage").display()
            );
            let cfg = dir.path().join("registry.yaml");
            std::fs::write(&cfg, config).expect("config");
            let log = std::fs::File::create(dir.path().join("zuul.log")).expect("log");
            let child = Command::new(&bin)
                .arg("-c")
                .arg(&cfg)
                .arg("serve")
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .spawn()
                .expect("start zuul-registry");
            let mut z = Zuul { child, host, dir };
            // Python start-up is slow on a loaded machine: allow a minute.
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = z.child.try_wait() {
                    break;
                }
                if std::net::TcpStream::connect(&z.host).is_ok() {
                    return z;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = z.child.kill();
            let _ = z.child.wait();
        }
        panic!("zuul-registry did not start after 3 attempts");
    }

    /// Raw manifest bytes as skopeo reads them (anonymously: zuul hands out read tokens).
    pub fn skopeo_raw(&self, reference: &str) -> Option<Vec<u8>> {
        let out = super::skopeo(&[
            "inspect".into(),
            "--raw".into(),
            "--tls-verify=false".into(),
            format!("docker://{}/{reference}", self.host),
        ]);
        out.status.success().then_some(out.stdout)
    }
}

impl Drop for Zuul {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
