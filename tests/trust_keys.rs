//! Keys and bundle signatures (`airlock::trust`): upstream cosign keys, interop with openssl,
//! the sealed-key byte layout, M-of-N manifest signatures and `airlock key generate`.
//!
//! Upstream keys and their expected outcomes: `tests/data/sigstore/keys/keys.json`, provenance in
//! `tests/data/sigstore/PROVENANCE.md`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use airlock::trust::bundle_sig::{SigFile, MAX_SIG_FILE_BYTES};
use airlock::trust::keys::{self, KeyPairPaths};
use airlock::trust::sealed::{self, ScryptParams};
use airlock::trust::{
    sign_manifest, verify_manifest, KeyError, KeyId, PemError, PublicKey, SealError, SigFileError,
    SigningKey, TrustError,
};
use base64::Engine as _;
use sha2::{Digest as _, Sha256};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Cheap scrypt cost for keys the tests make and throw away.
const FAST: ScryptParams = ScryptParams {
    log_n: 4,
    r: 8,
    p: 1,
};

fn keys_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sigstore/keys")
}

fn read(path: &Path) -> String {
    fs_err::read_to_string(path).expect("read test data")
}

/// DER body of a PEM `PUBLIC KEY` file, decoded independently of airlock's PEM reader.
fn pem_body(text: &str) -> Vec<u8> {
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    B64.decode(body).expect("base64 PEM body")
}

// ---------------------------------------------------------------------------------------------
// Upstream cosign / sigstore keys
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// Loads as an ECDSA P-256 signing key.
    Loads,
    /// Decrypts, but the plaintext is SEC1, which cosign refuses.
    Sec1,
    /// Decrypts, but the key type is not supported (the string is the type named in the error).
    Unsupported(&'static str),
}

/// Every key of keys.json with the outcome its upstream test (or keys.json) states.
const KEYS: &[(&str, Expect)] = &[
    ("zarf-layout-cosign.key", Expect::Loads),
    ("zarf-publish-cosign.key", Expect::Loads),
    ("oc-mirror-cosign.key", Expect::Loads),
    (
        "sigstore-rs-cosign-generated-empty-password.key",
        Expect::Loads,
    ),
    ("sigstore-rs-ecdsa-p256.key", Expect::Loads),
    ("sigstore-rs-ed25519.key", Expect::Unsupported("Ed25519")),
    ("sigstore-rs-rsa.key", Expect::Unsupported("RSA")),
    ("cosign-keys_test-pemcosignkey.key", Expect::Loads),
    ("cosign-keys_test-pemcosigneckey.key", Expect::Sec1),
    ("cosign-keys_test-pemsigstorekey.key", Expect::Loads),
];

struct KeyCase {
    file: String,
    password: String,
    public: Option<String>,
    expect: Expect,
}

fn key_cases() -> Vec<KeyCase> {
    let index: serde_json::Value =
        serde_json::from_str(&read(&keys_dir().join("keys.json"))).expect("keys.json");
    let entries = index["keys"].as_array().expect("keys array");
    assert_eq!(
        entries.len(),
        KEYS.len(),
        "keys.json and the KEYS table must list the same keys"
    );
    entries
        .iter()
        .map(|e| {
            let file = e["private_key"].as_str().expect("private_key").to_owned();
            let expect = KEYS
                .iter()
                .find(|(name, _)| *name == file)
                .unwrap_or_else(|| panic!("{file} is in keys.json but not in KEYS"))
                .1;
            let public = e["public_key"]
                .as_str()
                .or_else(|| e["public_key_derived_by_us"].as_str())
                .map(str::to_owned);
            KeyCase {
                file,
                password: e["password"].as_str().expect("password").to_owned(),
                public,
                expect,
            }
        })
        .collect()
}

#[test]
fn every_upstream_key_has_its_expected_outcome() {
    for case in key_cases() {
        let path = keys_dir().join(&case.file);
        let result = SigningKey::load(&path, case.password.as_bytes());
        match (case.expect, result) {
            (Expect::Loads, Ok(key)) => {
                if let Some(public) = &case.public {
                    let pub_text = read(&keys_dir().join(public));
                    let public = PublicKey::from_pem(&pub_text).expect("public key parses");
                    assert_eq!(key.public_key(), &public, "{}: public half", case.file);
                    assert_eq!(
                        key.public_key().spki_der(),
                        pem_body(&pub_text).as_slice(),
                        "{}: canonical DER equals the file's DER",
                        case.file
                    );
                    assert_eq!(
                        key.key_id().as_str(),
                        hex::encode(Sha256::digest(pem_body(&pub_text))),
                        "{}: key id is sha256 of the DER public key",
                        case.file
                    );
                }
                let sig = key.sign(b"airlock");
                key.public_key()
                    .verify(b"airlock", &sig)
                    .expect("signs and verifies");
            }
            (Expect::Sec1, Err(TrustError::PrivateKey { path: p, source })) => {
                assert_eq!(p, path);
                assert!(
                    matches!(source, KeyError::Sec1NotPkcs8),
                    "{}: {source}",
                    case.file
                );
            }
            (
                Expect::Unsupported(kind),
                Err(TrustError::PrivateKey {
                    source: KeyError::UnsupportedKeyType { key_type },
                    ..
                }),
            ) => assert_eq!(key_type, kind, "{}", case.file),
            (want, got) => panic!("{}: expected {want:?}, got {got:?}", case.file),
        }

        // Any other password fails the MAC check, whatever the key type inside.
        let wrong = format!("{}x", case.password);
        match SigningKey::load(&path, wrong.as_bytes()) {
            Err(TrustError::PrivateKey {
                path: p,
                source: KeyError::Sealed(SealError::WrongPassword),
            }) => assert_eq!(p, path),
            other => panic!("{}: wrong password gave {other:?}", case.file),
        }
    }
}

#[test]
fn zarf_wrong_password_error_names_the_file() {
    // zarf package_test.go asserts "wrongpassword" fails for this key.
    let path = keys_dir().join("zarf-layout-cosign.key");
    let err = SigningKey::load(&path, b"wrongpassword").expect_err("wrong password");
    let chain = format!(
        "{err}: {}",
        std::error::Error::source(&err).expect("source")
    );
    assert!(chain.contains("zarf-layout-cosign.key"), "{chain}");
    assert!(chain.contains("wrong password"), "{chain}");
}

#[test]
fn rsa_public_key_is_refused_by_name() {
    let text = read(&keys_dir().join("sigstore-rs-rsa.DERIVED.pub"));
    match PublicKey::from_pem(&text) {
        Err(KeyError::UnsupportedKeyType { key_type }) => assert_eq!(key_type, "RSA"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn refuses_malformed_public_keys() {
    let good = read(&keys_dir().join("zarf-layout-cosign.pub"));
    assert!(matches!(
        PublicKey::from_pem("not a key"),
        Err(KeyError::Pem(PemError::TextOutsideBlock))
    ));
    assert!(matches!(
        PublicKey::from_pem(&good.replace("PUBLIC KEY", "PRIVATE KEY")),
        Err(KeyError::Pem(PemError::UnexpectedLabel { .. }))
    ));
    let broken_b64 = good.replacen("MFkw", "MF*w", 1);
    assert!(matches!(
        PublicKey::from_pem(&broken_b64),
        Err(KeyError::Pem(PemError::Base64 { .. }))
    ));
    // Every truncation of the DER is refused.
    let der = pem_body(&good);
    for cut in 0..der.len() {
        assert!(
            PublicKey::from_spki_der(&der[..cut]).is_err(),
            "cut at {cut}"
        );
    }
    // Trailing bytes are refused.
    let mut long = der.clone();
    long.push(0);
    assert!(PublicKey::from_spki_der(&long).is_err());
    // A point not on the curve is refused.
    let mut off_curve = der.clone();
    let last = off_curve.len() - 1;
    off_curve[last] ^= 1;
    assert!(matches!(
        PublicKey::from_spki_der(&off_curve),
        Err(KeyError::InvalidPublicKey { .. })
    ));
}

#[test]
fn public_key_file_errors_name_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing.pub");
    let err = PublicKey::load(&missing).expect_err("missing");
    assert!(err.to_string().contains("missing.pub"), "{err}");
    let big = dir.path().join("big.pub");
    fs_err::write(&big, vec![b'A'; 70 * 1024]).expect("write");
    assert!(matches!(
        PublicKey::load(&big),
        Err(TrustError::TooLarge { .. })
    ));
    let garbage = dir.path().join("garbage.pub");
    fs_err::write(&garbage, "hello").expect("write");
    let err = PublicKey::load(&garbage).expect_err("garbage");
    assert!(matches!(err, TrustError::PublicKey { ref path, .. } if path == &garbage));
}

// ---------------------------------------------------------------------------------------------
// Interop with openssl
// ---------------------------------------------------------------------------------------------

/// Runs openssl; fails the test (never skips it) if openssl is missing.
fn openssl(args: &[&str], cwd: &Path) -> Output {
    Command::new("openssl")
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap_or_else(|e| panic!("openssl is required for these tests and could not run: {e}"))
}

#[test]
fn openssl_verifies_what_we_sign() {
    let dir = tempfile::tempdir().expect("tempdir");
    let generated =
        keys::generate_key_pair(&dir.path().join("release"), b"pw", false).expect("generate");
    let message = b"the exact bytes of airlock.json\n";
    fs_err::write(dir.path().join("file"), message).expect("write");
    fs_err::write(dir.path().join("sig.der"), generated.key.sign(message)).expect("write");

    let out = openssl(
        &[
            "dgst",
            "-sha256",
            "-verify",
            "release.pub",
            "-signature",
            "sig.der",
            "file",
        ],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "openssl refused our signature: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Verified OK"));

    fs_err::write(dir.path().join("file"), b"edited").expect("write");
    let out = openssl(
        &[
            "dgst",
            "-sha256",
            "-verify",
            "release.pub",
            "-signature",
            "sig.der",
            "file",
        ],
        dir.path(),
    );
    assert!(!out.status.success(), "openssl accepted an edited file");

    // The key id is the sha256 of the DER public key as openssl writes it.
    let out = openssl(
        &[
            "pkey",
            "-pubin",
            "-in",
            "release.pub",
            "-outform",
            "DER",
            "-out",
            "pub.der",
        ],
        dir.path(),
    );
    assert!(out.status.success());
    let der = fs_err::read(dir.path().join("pub.der")).expect("pub.der");
    assert_eq!(
        generated.key.key_id().as_str(),
        hex::encode(Sha256::digest(der))
    );
}

#[test]
fn we_verify_and_load_what_openssl_makes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |args: &[&str]| {
        let out = openssl(args, dir.path());
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        "k.pem",
    ]);
    run(&[
        "pkcs8", "-topk8", "-nocrypt", "-in", "k.pem", "-outform", "DER", "-out", "k.p8.der",
    ]);
    run(&["pkey", "-in", "k.pem", "-pubout", "-out", "k.pub"]);
    fs_err::write(dir.path().join("file"), b"payload").expect("write");
    run(&["dgst", "-sha256", "-sign", "k.pem", "-out", "sig", "file"]);

    let public = PublicKey::load(&dir.path().join("k.pub")).expect("openssl public key");
    let sig = fs_err::read(dir.path().join("sig")).expect("sig");
    public.verify(b"payload", &sig).expect("openssl signature");
    let b64 = B64.encode(&sig);
    public
        .verify(b"payload", b64.as_bytes())
        .expect("base64 text form");
    assert!(public.verify(b"payload!", &sig).is_err());

    // openssl's PKCS#8 key loads and has the same public half.
    let der = fs_err::read(dir.path().join("k.p8.der")).expect("der");
    let key = SigningKey::from_pkcs8_der(&der).expect("PKCS#8 from openssl");
    assert_eq!(key.public_key(), &public);

    // openssl's SEC1 ("EC PRIVATE KEY") form of the same key is refused, as cosign refuses it.
    run(&[
        "ec",
        "-in",
        "k.pem",
        "-outform",
        "DER",
        "-out",
        "k.sec1.der",
    ]);
    let sec1 = fs_err::read(dir.path().join("k.sec1.der")).expect("sec1");
    assert!(matches!(
        SigningKey::from_pkcs8_der(&sec1),
        Err(KeyError::Sec1NotPkcs8)
    ));
    // ...also when it arrives sealed like a cosign key.
    let sealed_sec1 =
        sealed::seal_with_params(&sec1, b"pw", sealed::LABEL_SIGSTORE, FAST).expect("seal");
    assert!(matches!(
        SigningKey::from_encrypted_pem(&sealed_sec1, b"pw"),
        Err(KeyError::Sec1NotPkcs8)
    ));
}

// ---------------------------------------------------------------------------------------------
// Keys we write: byte layout, re-open, files
// ---------------------------------------------------------------------------------------------

#[test]
fn generated_key_has_cosign_layout_and_opens_independently() {
    let dir = tempfile::tempdir().expect("tempdir");
    let generated =
        keys::generate_key_pair(&dir.path().join("k"), b"s3cret", false).expect("generate");
    let text = read(&generated.paths.private_key);

    // PEM as Go's encoding/pem writes it.
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----");
    assert_eq!(
        lines[lines.len() - 1],
        "-----END ENCRYPTED SIGSTORE PRIVATE KEY-----"
    );
    assert!(text.ends_with("-----\n"));
    for line in &lines[1..lines.len() - 1] {
        assert!(line.len() <= 64, "line longer than 64: {line}");
    }

    // The JSON body: the fields, their order (as go-tuf marshals its struct) and their sizes.
    let json = pem_body(&text);
    let json_text = std::str::from_utf8(&json).expect("utf8");
    assert!(
        json_text
            .starts_with(r#"{"kdf":{"name":"scrypt","params":{"N":65536,"r":8,"p":1},"salt":""#),
        "{json_text}"
    );
    let v: serde_json::Value = serde_json::from_slice(&json).expect("json");
    let top: Vec<&str> = v
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    let mut sorted_top = top.clone();
    sorted_top.sort_unstable();
    assert_eq!(sorted_top, ["cipher", "ciphertext", "kdf"]);
    assert_eq!(v["cipher"]["name"], "nacl/secretbox");
    let salt = B64
        .decode(v["kdf"]["salt"].as_str().expect("salt"))
        .expect("salt b64");
    let nonce = B64
        .decode(v["cipher"]["nonce"].as_str().expect("nonce"))
        .expect("nonce b64");
    let ciphertext = B64
        .decode(v["ciphertext"].as_str().expect("ciphertext"))
        .expect("ciphertext b64");
    assert_eq!(salt.len(), 32);
    assert_eq!(nonce.len(), 24);

    // Decrypt with the algorithm itself (scrypt, then XSalsa20-Poly1305 secretbox), not through
    // airlock's sealed module.
    let params = scrypt::Params::new(16, 8, 1, 32).expect("params");
    let mut key = [0u8; 32];
    scrypt::scrypt(b"s3cret", &salt, &params, &mut key).expect("scrypt");
    use crypto_secretbox::aead::{Aead as _, KeyInit as _};
    let plaintext = crypto_secretbox::XSalsa20Poly1305::new(&key.into())
        .decrypt(nonce.as_slice().into(), ciphertext.as_slice())
        .expect("secretbox opens with the password");
    assert_eq!(ciphertext.len(), plaintext.len() + 16);
    let reparsed = SigningKey::from_pkcs8_der(&plaintext).expect("PKCS#8 inside");
    assert_eq!(reparsed.public_key(), generated.key.public_key());

    // And through the module, with the right and a wrong password.
    let opened = sealed::open(&text, b"s3cret").expect("re-open");
    assert_eq!(opened.as_slice(), plaintext.as_slice());
    assert!(matches!(
        sealed::open(&text, b"s3cret "),
        Err(SealError::WrongPassword)
    ));
    let loaded = SigningKey::load(&generated.paths.private_key, b"s3cret").expect("load");
    assert_eq!(loaded.key_id(), generated.key.key_id());
    let public = PublicKey::load(&generated.paths.public_key).expect("pub");
    assert_eq!(&public, generated.key.public_key());
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    fs_err::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn writes_pair_atomically_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let paths = KeyPairPaths::new(&dir.path().join("nested/dir/site.key"));
    assert_eq!(paths.private_key, dir.path().join("nested/dir/site.key"));
    assert_eq!(paths.public_key, dir.path().join("nested/dir/site.pub"));
    let first = SigningKey::generate().expect("key");
    keys::write_key_pair_with(&first, b"pw", &paths, false, FAST).expect("write");
    #[cfg(unix)]
    {
        assert_eq!(mode(&paths.private_key), 0o600);
        assert_eq!(mode(&paths.public_key), 0o644);
    }
    let before = fs_err::read(&paths.private_key).expect("read");

    let second = SigningKey::generate().expect("key");
    match keys::write_key_pair_with(&second, b"pw", &paths, false, FAST) {
        Err(TrustError::Exists { path }) => assert_eq!(path, paths.private_key),
        other => panic!("overwrote without force: {other:?}"),
    }
    assert_eq!(fs_err::read(&paths.private_key).expect("read"), before);

    // Only the .pub exists: still refused, and no .key appears.
    fs_err::remove_file(&paths.private_key).expect("rm");
    assert!(matches!(
        keys::write_key_pair_with(&second, b"pw", &paths, false, FAST),
        Err(TrustError::Exists { .. })
    ));
    assert!(!paths.private_key.exists());

    keys::write_key_pair_with(&second, b"pw", &paths, true, FAST).expect("force");
    let loaded = SigningKey::load(&paths.private_key, b"pw").expect("load");
    assert_eq!(loaded.key_id(), second.key_id());
    assert_eq!(
        &PublicKey::load(&paths.public_key).expect("pub"),
        second.public_key()
    );
    // No temporary files are left next to the keys.
    let names: Vec<String> = fs_err::read_dir(dir.path().join("nested/dir"))
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    let mut names = names;
    names.sort();
    assert_eq!(names, ["site.key", "site.pub"]);
}

#[test]
fn no_partial_files_when_the_public_key_cannot_be_placed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let paths = KeyPairPaths::new(&dir.path().join("k"));
    // A directory where the .pub should go makes the final rename fail after the .key is placed.
    fs_err::create_dir(&paths.public_key).expect("mkdir");
    let key = SigningKey::generate().expect("key");
    let err = keys::write_key_pair_with(&key, b"pw", &paths, true, FAST).expect_err("must fail");
    assert!(err.to_string().contains("k.pub"), "{err}");
    assert!(!paths.private_key.exists(), "private key left behind");
}

// ---------------------------------------------------------------------------------------------
// Bundle signatures (airlock.json.sig)
// ---------------------------------------------------------------------------------------------

const MANIFEST: &[u8] = br#"{"format":1,"name":"demo","artifacts":[]}"#;

fn three_keys() -> [SigningKey; 3] {
    [
        SigningKey::generate().expect("key"),
        SigningKey::generate().expect("key"),
        SigningKey::generate().expect("key"),
    ]
}

fn publics(keys: &[&SigningKey]) -> Vec<PublicKey> {
    keys.iter().map(|k| k.public_key().clone()).collect()
}

#[test]
fn two_of_three_passes() {
    let [a, b, c] = three_keys();
    let sigs = sign_manifest(MANIFEST, &[a.clone(), b.clone()]);
    let bytes = sigs.to_vec();
    let parsed = SigFile::from_slice(&bytes).expect("parse");
    assert_eq!(parsed, sigs);
    let signers = verify_manifest(MANIFEST, &parsed, &publics(&[&a, &b, &c]), 2).expect("2 of 3");
    let mut want = vec![a.key_id().clone(), b.key_id().clone()];
    want.sort();
    let got: Vec<KeyId> = signers.into_iter().map(|s| s.key_id).collect();
    assert_eq!(got, want);

    // Same keys, same manifest: same bytes (bundles are reproducible).
    assert_eq!(
        sign_manifest(MANIFEST, &[b.clone(), a.clone()]).to_vec(),
        bytes
    );
}

#[test]
fn one_valid_of_two_required_fails_with_counts() {
    let [a, b, c] = three_keys();
    let sigs = sign_manifest(MANIFEST, std::slice::from_ref(&a));
    let err = verify_manifest(MANIFEST, &sigs, &publics(&[&a, &b, &c]), 2).expect_err("1 of 2");
    match &err {
        TrustError::NotEnoughSignatures {
            valid: 1,
            required: 2,
            trusted: 3,
        } => {}
        other => panic!("{other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("only 1") && msg.contains("2 required") && msg.contains('3'),
        "{msg}"
    );
}

#[test]
fn edited_manifest_fails_naming_the_key() {
    let [a, b, _] = three_keys();
    let sigs = sign_manifest(MANIFEST, &[a.clone(), b.clone()]);
    let mut edited = MANIFEST.to_vec();
    edited[2] ^= 0x20;
    let err = verify_manifest(&edited, &sigs, &publics(&[&a, &b]), 1).expect_err("edited");
    match &err {
        TrustError::BadSignature { key_id, .. } => {
            assert!(*key_id == *a.key_id() || *key_id == *b.key_id());
            assert!(err.to_string().contains(key_id.as_str()));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn signature_by_untrusted_key_is_ignored() {
    let [a, b, stranger] = three_keys();
    let sigs = sign_manifest(MANIFEST, &[a.clone(), stranger.clone()]);
    // The stranger's signature neither counts nor breaks anything...
    let signers = verify_manifest(MANIFEST, &sigs, &publics(&[&a, &b]), 1).expect("1 of 2");
    assert_eq!(signers.len(), 1);
    assert_eq!(&signers[0].key_id, a.key_id());
    // ...not even when it is garbage.
    let mut raw: serde_json::Value = serde_json::from_slice(&sigs.to_vec()).expect("json");
    for entry in raw["signatures"].as_array_mut().expect("array") {
        if entry["keyid"] == stranger.key_id().as_str() {
            entry["sig"] = B64.encode(b"not a signature").into();
        }
    }
    let tampered = SigFile::from_slice(&serde_json::to_vec(&raw).expect("json")).expect("parse");
    verify_manifest(MANIFEST, &tampered, &publics(&[&a, &b]), 1).expect("still 1 of 2");
    // And it cannot be passed off as a trusted key's: only b is trusted, nobody valid signed.
    assert!(matches!(
        verify_manifest(MANIFEST, &sigs, &publics(&[&b]), 1),
        Err(TrustError::NotEnoughSignatures { valid: 0, .. })
    ));
}

#[test]
fn same_trusted_key_twice_counts_once() {
    let [a, b, _] = three_keys();
    let sigs = sign_manifest(MANIFEST, &[a.clone(), a.clone()]);
    assert_eq!(sigs.signatures().len(), 1);
    let trusted = publics(&[&a, &a, &b]);
    assert!(matches!(
        verify_manifest(MANIFEST, &sigs, &trusted, 2),
        Err(TrustError::NotEnoughSignatures {
            valid: 1,
            required: 2,
            trusted: 2
        })
    ));
    assert!(matches!(
        verify_manifest(MANIFEST, &sigs, &publics(&[&a, &a]), 2),
        Err(TrustError::InvalidThreshold {
            required: 2,
            trusted: 1
        })
    ));
    assert!(matches!(
        verify_manifest(MANIFEST, &sigs, &publics(&[&a]), 0),
        Err(TrustError::InvalidThreshold { required: 0, .. })
    ));
}

#[test]
fn flipping_any_signature_byte_is_caught() {
    let [a, _, _] = three_keys();
    let sigs = sign_manifest(MANIFEST, std::slice::from_ref(&a));
    let good = sigs.signatures()[0].signature.clone();
    for i in 0..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0x01;
        let raw = format!(
            r#"{{"signatures":[{{"keyid":"{}","sig":"{}"}}]}}"#,
            a.key_id(),
            B64.encode(&bad)
        );
        let file = SigFile::from_slice(raw.as_bytes()).expect("parses");
        match verify_manifest(MANIFEST, &file, &publics(&[&a]), 1) {
            Err(TrustError::BadSignature { key_id, .. }) => assert_eq!(&key_id, a.key_id()),
            other => panic!("byte {i}: {other:?}"),
        }
    }
}

#[test]
fn malformed_sig_files_give_clear_errors() {
    let [a, _, _] = three_keys();
    let id = a.key_id().to_string();
    let sig = B64.encode(a.sign(MANIFEST));
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "Json"),
        ("{}".into(), "Json"),
        (r#"{"signatures":[]}"#.into(), "Empty"),
        (
            format!(r#"{{"signatures":[{{"keyid":"{id}","sig":"@@@"}}]}}"#),
            "Base64",
        ),
        (
            format!(
                r#"{{"signatures":[{{"keyid":"{}","sig":"{sig}"}}]}}"#,
                id.to_uppercase()
            ),
            "Json",
        ),
        (
            format!(r#"{{"signatures":[{{"keyid":"{id}","sig":"{sig}","extra":1}}]}}"#),
            "Json",
        ),
        (
            format!(r#"{{"signatures":[{{"keyid":"{id}","sig":"{sig}"}}],"v":2}}"#),
            "Json",
        ),
        (
            format!(
                r#"{{"signatures":[{{"keyid":"{id}","sig":"{sig}"}},{{"keyid":"{id}","sig":"{sig}"}}]}}"#
            ),
            "DuplicateKeyId",
        ),
        (
            format!(r#"{{"signatures":[{{"keyid":"{id}","sig":"{sig}"}}]}} trailing"#),
            "Json",
        ),
    ];
    for (text, want) in cases {
        let err = SigFile::from_slice(text.as_bytes()).expect_err(&text);
        let got = format!("{err:?}");
        assert!(got.starts_with(want), "{text}: {got}");
        assert!(err.to_string().contains("airlock.json.sig"), "{err}");
    }
    // Base64 errors name the key.
    let err = SigFile::from_slice(
        format!(r#"{{"signatures":[{{"keyid":"{id}","sig":"@@@"}}]}}"#).as_bytes(),
    )
    .expect_err("base64");
    assert!(err.to_string().contains(&id), "{err}");

    // Too large is refused before parsing; too many entries too.
    let big = vec![b' '; MAX_SIG_FILE_BYTES + 1];
    assert!(matches!(
        SigFile::from_slice(&big),
        Err(SigFileError::TooLarge { .. })
    ));
    let many: Vec<SigningKey> = (0..65)
        .map(|_| SigningKey::generate().expect("key"))
        .collect();
    let bytes = sign_manifest(MANIFEST, &many).to_vec();
    assert!(matches!(
        SigFile::from_slice(&bytes),
        Err(SigFileError::TooMany { count: 65, .. })
    ));
}

#[test]
fn every_truncation_of_a_sig_file_is_refused() {
    let [a, b, _] = three_keys();
    let bytes = sign_manifest(MANIFEST, &[a, b]).to_vec();
    let whole = bytes.trim_ascii_end().len();
    for cut in 0..whole {
        assert!(
            SigFile::from_slice(&bytes[..cut]).is_err(),
            "truncated at {cut} of {} accepted",
            bytes.len()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// airlock key generate
// ---------------------------------------------------------------------------------------------

const TEST_PASSWORD: &str = "correct horse battery staple";

fn airlock(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_airlock"));
    cmd.args(args)
        .current_dir(dir)
        .env_remove("AIRLOCK_PASSWORD")
        .env_remove("COSIGN_PASSWORD")
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run airlock");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !all.contains(TEST_PASSWORD),
        "the password leaked into the output: {all}"
    );
    out
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = walk(dir)
        .into_iter()
        .map(|p| {
            p.strip_prefix(dir)
                .expect("prefix")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs_err::read_dir(dir).expect("ls") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn cli_generate_with_password_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs_err::write(dir.path().join("pw"), format!("{TEST_PASSWORD}\n")).expect("write");
    let out = airlock(
        dir.path(),
        &[
            "key",
            "generate",
            "--output",
            "keys/release",
            "--password-file",
            "pw",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        listing(dir.path()),
        ["keys/release.key", "keys/release.pub", "pw"]
    );
    #[cfg(unix)]
    assert_eq!(mode(&dir.path().join("keys/release.key")), 0o600);

    let key = SigningKey::load(
        &dir.path().join("keys/release.key"),
        TEST_PASSWORD.as_bytes(),
    )
    .expect("loads with the file's password minus the newline");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(key.key_id().as_str()), "{stdout}");
    assert!(stdout.contains("keys/release.pub"), "{stdout}");
    // Wrong password for the key we just made.
    assert!(matches!(
        SigningKey::load(&dir.path().join("keys/release.key"), b"wrong"),
        Err(TrustError::PrivateKey {
            source: KeyError::Sealed(SealError::WrongPassword),
            ..
        })
    ));
}

#[test]
fn cli_generate_json_with_env_passwords() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = airlock(
        dir.path(),
        &["key", "generate", "--output", "a", "--format", "json"],
        &[("AIRLOCK_PASSWORD", TEST_PASSWORD)],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json on stdout");
    let key = SigningKey::load(&dir.path().join("a.key"), TEST_PASSWORD.as_bytes()).expect("load");
    assert_eq!(report["key_id"], key.key_id().as_str());
    assert_eq!(report["private_key"], "a.key");
    assert_eq!(report["public_key"], "a.pub");

    // COSIGN_PASSWORD works as a fallback, as in cosign.
    let out = airlock(
        dir.path(),
        &["key", "generate", "--output", "b", "--quiet"],
        &[("COSIGN_PASSWORD", TEST_PASSWORD)],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    SigningKey::load(&dir.path().join("b.key"), TEST_PASSWORD.as_bytes()).expect("load");
}

#[test]
fn cli_missing_password_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = airlock(dir.path(), &["key", "generate", "--output", "keys/x"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    for needle in [
        "no password",
        "--password-file",
        "AIRLOCK_PASSWORD",
        "keys/x.key",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in: {err}");
    }
    assert!(listing(dir.path()).is_empty(), "{:?}", listing(dir.path()));

    // A password file that does not exist: named, and still nothing written.
    let out = airlock(
        dir.path(),
        &[
            "key",
            "generate",
            "--output",
            "x",
            "--password-file",
            "nope",
        ],
        &[("AIRLOCK_PASSWORD", TEST_PASSWORD)],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("`nope`"), "{}", stderr(&out));
    assert!(listing(dir.path()).is_empty(), "{:?}", listing(dir.path()));
}

#[test]
fn cli_refuses_to_overwrite_without_force() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = [("AIRLOCK_PASSWORD", TEST_PASSWORD)];
    let out = airlock(dir.path(), &["key", "generate", "--output", "k"], &env);
    assert!(out.status.success(), "{}", stderr(&out));
    let before = fs_err::read(dir.path().join("k.key")).expect("read");

    let out = airlock(dir.path(), &["key", "generate", "--output", "k"], &env);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(
        fs_err::read(dir.path().join("k.key")).expect("read"),
        before
    );

    // The existence check comes before the password: no password needed to be told.
    let out = airlock(dir.path(), &["key", "generate", "--output", "k"], &[]);
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));

    let out = airlock(
        dir.path(),
        &["key", "generate", "--output", "k", "--force"],
        &env,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_ne!(
        fs_err::read(dir.path().join("k.key")).expect("read"),
        before
    );
    assert_eq!(listing(dir.path()), ["k.key", "k.pub"]);
}
