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
pub mod template;

pub use spec::{load, FileError, TargetFile};
