//! `hint:` lines: what to do next after a failure, printed under the `error:` line. The facts
//! come from the library's error types (never from message text); the advice is worded here.

use airlock::registry::RegistryError;

/// Hints for an error chain, most specific first; empty when there is nothing to add.
pub fn for_error(err: &anyhow::Error) -> Vec<String> {
    let mut out = Vec::new();
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<RegistryError>() {
            out.extend(registry(e));
        }
    }
    out.dedup();
    out
}

fn registry(e: &RegistryError) -> Vec<String> {
    match e {
        RegistryError::CaFile { .. } => {
            vec!["--ca-file takes a PEM file of one or more CA certificates".into()]
        }
        _ => Vec::new(),
    }
}
