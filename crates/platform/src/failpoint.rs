//! Test hooks that crash the process at a named point, as `kill -9` would there.
//!
//! Armed by the hidden `--failpoint NAME` flag, and compiled only into debug builds (the
//! ones tests run): a release binary ignores them.

use std::sync::OnceLock;

static ARMED: OnceLock<Vec<String>> = OnceLock::new();

/// Arms the named failpoints for this process (once, at start).
pub fn arm(names: Vec<String>) {
    if cfg!(debug_assertions) && !names.is_empty() {
        tracing::warn!(?names, "failpoints armed: this process will crash on purpose");
        let _ = ARMED.set(names);
    }
}

/// Aborts the process here if `name` is armed.
#[inline]
pub fn hit(name: &str) {
    #[cfg(debug_assertions)]
    if ARMED.get().is_some_and(|a| a.iter().any(|n| n == name)) {
        eprintln!("failpoint {name}: aborting");
        std::process::abort();
    }
    #[cfg(not(debug_assertions))]
    let _ = name;
}
