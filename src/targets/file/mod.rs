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

use super::registry::{Setting, TargetEntry};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The registry entry of the target file at `path`: read and checked now, before
/// anything is provisioned. It takes every `--set` (all go to the client; the ones its
/// templates name must be given).
pub fn entry(path: &Path) -> anyhow::Result<TargetEntry> {
    let file = Arc::new(load(path)?);
    let about = format!("the target described in {}", path.display());
    let build_file = file.clone();
    let mut entry = TargetEntry::new(&file.name, &about, move |ctx| {
        let log = client::ClientLog::in_run_dir(ctx.run_dir.clone());
        Ok(Arc::new(FileTarget::new(
            build_file.clone(),
            ctx.nodes,
            &ctx.options,
            log,
        )?))
    });
    entry.workloads = file.workloads.clone();
    entry.packages = file.packages.clone();
    entry.daemons = file.daemons.iter().map(|d| d.name.clone()).collect();
    for key in file.setting_keys() {
        entry = entry.setting(Setting::text(
            key,
            &format!("{{set.{key}}} in {}", path.display()),
        ));
    }
    let check_file = file.clone();
    Ok(entry.any_settings().check_with(move |settings, _| {
        check_file
            .check_settings(settings)
            .map_err(|e| e.to_string())
    }))
}

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
