//! Targets described in a file: a user's own system, run from a `target.toml` and driven
//! by a client program in any language that speaks JSON lines on stdin/stdout.
//!
//! - [`spec`]: the file format, parsed and checked before anything is provisioned.
//! - [`template`]: `{node}`, `{ip}`, `{set.KEY}`... in the file's commands.
//! - [`client`]: the client protocol, as a [`distest_workloads::Client`] over a child
//!   process.
//!
//! The format and the protocol are documented for users in `docs/targets.md`.

pub mod client;
pub mod spec;
pub mod target;
pub mod template;

pub use spec::{load, FileError, TargetFile};
pub use target::FileTarget;

use std::path::{Path, PathBuf};

/// True when `--target` names a file (or a folder holding `target.toml`) rather than a
/// built-in target: it has a `/`, ends in `.toml`, or exists.
pub fn is_file_target(target: &str) -> bool {
    target.contains('/') || target.ends_with(".toml") || Path::new(target).exists()
}

/// The target file `--target` names: the path itself, or `target.toml` in that folder.
pub fn file_path(target: &str) -> PathBuf {
    let path = PathBuf::from(target);
    if path.is_dir() {
        path.join("target.toml")
    } else {
        path
    }
}
