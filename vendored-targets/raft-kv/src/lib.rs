//! raft-kv: a Raft-replicated KV store, the system under test bundled with distest.
//!
//! `raft` is the pure consensus core; the rest is the shell that gives it a disk, a
//! network, timers and an HTTP client API.

pub mod raft;
