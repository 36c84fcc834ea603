//! Where key passwords come from, in order:
//!
//! 1. `--password-file FILE`: the file's contents, one trailing `\n` or `\r\n` removed. An explicit
//!    flag beats the environment, as with every other airlock flag, so a stale exported variable
//!    cannot silently override the file the user just named.
//! 2. `AIRLOCK_PASSWORD`, then `COSIGN_PASSWORD` (so scripts written for cosign keep working). A
//!    variable that is set but empty means the empty password, as in cosign.
//! 3. A prompt on the terminal (input hidden), asked twice when a new key is being made, but only
//!    when stdin is a terminal: a pipeline or CI job gets a clear error instead of a hang.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

/// Environment variable airlock reads the key password from.
pub const ENV_PASSWORD: &str = "AIRLOCK_PASSWORD";
/// cosign's variable, read when [`ENV_PASSWORD`] is not set.
pub const ENV_COSIGN_PASSWORD: &str = "COSIGN_PASSWORD";
/// Largest password file we read; a password is not a document.
pub const MAX_PASSWORD_FILE_BYTES: u64 = 64 * 1024;

/// Why no password could be obtained.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    /// The password file could not be read.
    #[error("cannot read password file `{}`", path.display())]
    ReadFile {
        /// The file named by `--password-file`.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The password file is larger than [`MAX_PASSWORD_FILE_BYTES`].
    #[error("password file `{}` is larger than {max} bytes", path.display())]
    FileTooLarge {
        /// The file.
        path: PathBuf,
        /// The cap.
        max: u64,
    },
    /// The password (from `source`) is not UTF-8.
    #[error("the password from {source_name} is not valid UTF-8")]
    NotUtf8 {
        /// Where it came from: a file path in backticks or an environment variable name.
        source_name: String,
    },
    /// Reading from the terminal failed.
    #[error("cannot read the password from the terminal")]
    Prompt(#[source] std::io::Error),
    /// The two passwords typed for a new key differ.
    #[error("the passwords do not match")]
    Mismatch,
    /// There is no file, no variable and no terminal.
    #[error(
        "no password for {purpose}: pass --password-file FILE, set {ENV_PASSWORD} \
         (or {ENV_COSIGN_PASSWORD}), or run in a terminal to be prompted"
    )]
    Unavailable {
        /// What the password was for, e.g. "the new private key `keys/release.key`".
        purpose: String,
    },
}

/// Reads the password for `purpose` (shown in the prompt and in errors) from the first source that
/// has one: `password_file`, then [`ENV_PASSWORD`] / [`ENV_COSIGN_PASSWORD`], then a terminal
/// prompt. With `confirm`, a prompted password is asked twice (use it when creating a key, where a
/// typo would lock the key forever).
pub fn read_password(
    password_file: Option<&Path>,
    purpose: &str,
    confirm: bool,
) -> Result<Zeroizing<String>, PasswordError> {
    read_password_with(
        password_file,
        purpose,
        confirm,
        |name| std::env::var_os(name),
        &TerminalPrompt,
    )
}

/// A source of typed passwords; the terminal in production, a script in tests.
trait Prompt {
    fn available(&self) -> bool;
    fn ask(&self, prompt: &str) -> std::io::Result<Zeroizing<String>>;
}

struct TerminalPrompt;

impl Prompt for TerminalPrompt {
    fn available(&self) -> bool {
        std::io::stdin().is_terminal()
    }

    fn ask(&self, prompt: &str) -> std::io::Result<Zeroizing<String>> {
        rpassword::prompt_password(prompt).map(Zeroizing::new)
    }
}

fn read_password_with(
    password_file: Option<&Path>,
    purpose: &str,
    confirm: bool,
    env: impl Fn(&str) -> Option<std::ffi::OsString>,
    prompt: &dyn Prompt,
) -> Result<Zeroizing<String>, PasswordError> {
    if let Some(path) = password_file {
        return read_file(path);
    }
    for name in [ENV_PASSWORD, ENV_COSIGN_PASSWORD] {
        if let Some(value) = env(name) {
            // The value also lives in the process environment, so wiping our copy is all we can do.
            return match value.into_string() {
                Ok(s) => Ok(Zeroizing::new(s)),
                Err(_) => Err(PasswordError::NotUtf8 {
                    source_name: name.to_owned(),
                }),
            };
        }
    }
    if !prompt.available() {
        return Err(PasswordError::Unavailable {
            purpose: purpose.to_owned(),
        });
    }
    let first = prompt
        .ask(&format!("Enter password for {purpose}: "))
        .map_err(PasswordError::Prompt)?;
    if confirm {
        let second = prompt
            .ask(&format!("Enter password for {purpose} again: "))
            .map_err(PasswordError::Prompt)?;
        if first != second {
            return Err(PasswordError::Mismatch);
        }
    }
    Ok(first)
}

fn read_file(path: &Path) -> Result<Zeroizing<String>, PasswordError> {
    let read_err = |source| PasswordError::ReadFile {
        path: path.to_owned(),
        source,
    };
    let bytes = Zeroizing::new(
        crate::io::read_capped(path, MAX_PASSWORD_FILE_BYTES, "password file").map_err(
            |e| match e {
                crate::io::ReadError::Io { source, .. } => read_err(source),
                _ => PasswordError::FileTooLarge {
                    path: path.to_owned(),
                    max: MAX_PASSWORD_FILE_BYTES,
                },
            },
        )?,
    );
    let text = std::str::from_utf8(&bytes).map_err(|_| PasswordError::NotUtf8 {
        source_name: format!("`{}`", path.display()),
    })?;
    let text = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(text);
    Ok(Zeroizing::new(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::ffi::OsString;

    struct Scripted {
        answers: RefCell<Vec<&'static str>>,
        tty: bool,
    }

    impl Prompt for Scripted {
        fn available(&self) -> bool {
            self.tty
        }
        fn ask(&self, _prompt: &str) -> std::io::Result<Zeroizing<String>> {
            let mut answers = self.answers.borrow_mut();
            if answers.is_empty() {
                return Err(std::io::Error::other("no more answers"));
            }
            Ok(Zeroizing::new(answers.remove(0).to_owned()))
        }
    }

    fn tty(answers: &[&'static str]) -> Scripted {
        Scripted {
            answers: RefCell::new(answers.to_vec()),
            tty: true,
        }
    }

    fn no_env(_: &str) -> Option<OsString> {
        None
    }

    #[test]
    fn file_wins_and_loses_one_trailing_newline() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (content, want) in [
            ("pw\n", "pw"),
            ("pw\r\n", "pw"),
            ("pw\n\n", "pw\n"),
            ("pw", "pw"),
            ("", ""),
        ] {
            let path = dir.path().join("pw");
            fs_err::write(&path, content).expect("write");
            let env = |_: &str| Some(OsString::from("from-env"));
            let got = read_password_with(Some(&path), "k", false, env, &tty(&[])).expect("file");
            assert_eq!(got.as_str(), want);
        }
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = read_password_with(
            Some(Path::new("/nonexistent/pw")),
            "k",
            false,
            no_env,
            &tty(&[]),
        )
        .expect_err("missing");
        assert!(err.to_string().contains("/nonexistent/pw"), "{err}");
    }

    #[test]
    fn refuses_oversized_and_non_utf8_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let big = dir.path().join("big");
        fs_err::write(&big, vec![b'a'; MAX_PASSWORD_FILE_BYTES as usize + 1]).expect("write");
        assert!(matches!(
            read_password_with(Some(&big), "k", false, no_env, &tty(&[])),
            Err(PasswordError::FileTooLarge { .. })
        ));
        let bin = dir.path().join("bin");
        fs_err::write(&bin, [0xff, 0xfe]).expect("write");
        assert!(matches!(
            read_password_with(Some(&bin), "k", false, no_env, &tty(&[])),
            Err(PasswordError::NotUtf8 { .. })
        ));
    }

    #[test]
    fn env_airlock_before_cosign_and_empty_is_a_password() {
        let both = |name: &str| match name {
            ENV_PASSWORD => Some(OsString::from("a")),
            ENV_COSIGN_PASSWORD => Some(OsString::from("c")),
            _ => None,
        };
        let got = read_password_with(None, "k", true, both, &tty(&[])).expect("env");
        assert_eq!(got.as_str(), "a");
        let cosign = |name: &str| (name == ENV_COSIGN_PASSWORD).then(|| OsString::from(""));
        let got = read_password_with(None, "k", true, cosign, &tty(&[])).expect("env");
        assert_eq!(got.as_str(), "");
    }

    #[test]
    fn prompts_and_confirms() {
        let got = read_password_with(None, "k", true, no_env, &tty(&["x", "x"])).expect("tty");
        assert_eq!(got.as_str(), "x");
        assert!(matches!(
            read_password_with(None, "k", true, no_env, &tty(&["x", "y"])),
            Err(PasswordError::Mismatch)
        ));
        let got = read_password_with(None, "k", false, no_env, &tty(&["x", "y"])).expect("tty");
        assert_eq!(got.as_str(), "x");
    }

    #[test]
    fn without_any_source_says_how_to_give_one() {
        let none = Scripted {
            answers: RefCell::new(vec![]),
            tty: false,
        };
        let err = read_password_with(None, "the new key", true, no_env, &none).expect_err("none");
        let msg = err.to_string();
        for needle in ["the new key", "--password-file", ENV_PASSWORD, "terminal"] {
            assert!(msg.contains(needle), "{msg}");
        }
    }
}
