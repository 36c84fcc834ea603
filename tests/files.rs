//! Plain files (issue #6): pinned by sha256 in the spec, carried as OCI artifacts, pushed at
//! import under `PREFIX/files/<name>:<version>` where an independent client gets them back.

mod common;

use airlock::oci::Digest;
use common::fixtures;
use common::{airlock, fails_with, ok, FileServer, TestRegistry};

#[test]
fn files_cross_as_oci_artifacts_and_come_back_byte_exact() {
    let dst = TestRegistry::start();
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    let tool = fixtures::noise(5, 300_000);
    let ca = b"-----BEGIN CERTIFICATE-----\nnot really\n-----END CERTIFICATE-----\n".to_vec();
    std::fs::create_dir_all(dir.join("www/dl")).expect("dir");
    std::fs::create_dir_all(dir.join("local")).expect("dir");
    std::fs::write(dir.join("www/dl/tool.bin"), &tool).expect("write");
    std::fs::write(dir.join("local/ca.pem"), &ca).expect("write");
    let www = FileServer::serve(dir.join("www"));
    let spec = |tool_sha: &Digest| {
        format!(
            "name: f\nfiles:\n  - url: {}/dl/tool.bin\n    sha256: {tool_sha}\n    version: \"1.0\"\n  - path: local/ca.pem\n    sha256: {}\n    name: ca-bundle\n",
            www.url,
            Digest::of(&ca).hex()
        )
    };

    // A wrong pin: refused naming the URL and both digests, no bundle, nothing cached.
    let wrong = Digest::of(b"something else");
    std::fs::write(dir.join("bad.yaml"), spec(&wrong)).expect("spec");
    ok(&airlock(dir, &["lock", "bad.yaml"]));
    let out = airlock(
        dir,
        &["collect", "bad.lock", "-o", "bad.tar.zst", "--cache", "c"],
    );
    let err = fails_with(&out, "sha256 mismatch");
    assert!(
        err.contains("/dl/tool.bin") && err.contains(wrong.as_str()),
        "{err}"
    );
    assert!(!dir.join("bad.tar.zst").exists());
    assert!(!dir.join("c/sha256").join(Digest::of(&tool).hex()).exists());

    std::fs::write(dir.join("f.yaml"), spec(&Digest::of(&tool))).expect("spec");
    ok(&airlock(dir, &["lock", "f.yaml"]));
    ok(&airlock(
        dir,
        &["collect", "f.lock", "-o", "f.tar.zst", "--cache", "c"],
    ));
    let stdout = ok(&airlock(dir, &["verify", "f.tar.zst", "--allow-unsigned"]));
    assert!(stdout.contains("2 artifacts"), "{stdout}");
    let to = format!("{}/mirror", dst.host);
    let mut args = vec![
        "import",
        "f.tar.zst",
        "--to",
        &to,
        "--allow-unsigned",
        "--files-to",
        "out",
    ];
    let flags = dst.cli_flags();
    args.extend(flags.iter().map(String::as_str));
    ok(&airlock(dir, &args));

    // --files-to: the files themselves, verified, and nothing half-written beside them.
    assert_eq!(std::fs::read(dir.join("out/tool.bin")).expect("tool"), tool);
    assert_eq!(std::fs::read(dir.join("out/ca-bundle")).expect("ca"), ca);
    let mut names: Vec<String> = std::fs::read_dir(dir.join("out"))
        .expect("ls")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["ca-bundle", "tool.bin"]);
    let verify_to = |out: &str| {
        ok(&airlock(
            dir,
            &["verify", "f.tar.zst", "--allow-unsigned", "--files-to", out],
        ))
    };
    verify_to("out2");
    assert_eq!(
        std::fs::read(dir.join("out2/tool.bin")).expect("tool"),
        tool
    );

    // Issue 10 class 7: symlinks planted at the old temporary name and at the final name,
    // pointing outside the directory, are never written through.
    let out3 = dir.join("out3");
    std::fs::create_dir_all(&out3).expect("dir");
    for (planted, victim) in [(".tool.bin.partial", "victim-a"), ("tool.bin", "victim-b")] {
        std::fs::write(dir.join(victim), b"precious").expect("victim");
        std::os::unix::fs::symlink(dir.join(victim), out3.join(planted)).expect("plant");
    }
    verify_to("out3");
    for victim in ["victim-a", "victim-b"] {
        assert_eq!(
            std::fs::read(dir.join(victim)).expect("victim"),
            b"precious",
            "{victim} was written through a planted symlink"
        );
    }
    let landed = std::fs::symlink_metadata(out3.join("tool.bin")).expect("landed");
    assert!(landed.file_type().is_file(), "the link itself is replaced");
    assert_eq!(std::fs::read(out3.join("tool.bin")).expect("tool"), tool);

    for (repo, tag, name, bytes) in [
        ("mirror/files/tool.bin", "1.0", "tool.bin", &tool),
        ("mirror/files/ca-bundle", "latest", "ca-bundle", &ca),
    ] {
        let m: serde_json::Value =
            serde_json::from_slice(&dst.skopeo_raw(&format!("{repo}:{tag}"))).expect("json");
        assert_eq!(m["artifactType"], "application/vnd.airlock.file.v1");
        let layer = &m["layers"][0];
        assert_eq!(layer["annotations"]["org.opencontainers.image.title"], name);
        assert_eq!(layer["digest"], Digest::of(bytes).to_string());
        // skopeo fetches the layer back: the same bytes.
        let out_dir = dir.join(format!("pulled-{name}"));
        let o = common::skopeo(&[
            "copy".into(),
            "--src-tls-verify=false".into(),
            format!("docker://{}/{repo}:{tag}", dst.host),
            format!("dir:{}", out_dir.display()),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let got = std::fs::read(out_dir.join(Digest::of(bytes).hex())).expect("layer");
        assert_eq!(&got, bytes, "{name}");
    }
}
