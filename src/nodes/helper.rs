//! The distest binary on nodes: what bundled targets run as (`raft-kv`, `crdt-store`) and
//! what faults run node-side helpers with (`distest latency-delayer`).
//!
//! Local namespace nodes share this machine's files, so the helper is this very binary;
//! SSH nodes get a copy uploaded once per run to `<base>/bin/distest` and are checked to
//! run it (same CPU architecture and glibc). Each node's helper state (pid and stats files
//! of helper processes) lives in a directory of its own: `<base>/<id>/nK/run` locally,
//! `<base>/run` over SSH.

use super::{shell_quote_path, NodeError, Remote};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long the uploaded binary has to answer `--help`.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// The `distest` executable to put on nodes: `$DISTEST_BIN` when set, this process when
/// it is `distest`, else a `distest` next to it or one level up (benchmarks and tests run
/// from `target/<profile>/deps/`).
pub fn distest_binary() -> Result<PathBuf, NodeError> {
    if let Some(bin) = std::env::var_os("DISTEST_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let exe = std::env::current_exe().map_err(|e| {
        NodeError::Unsupported(format!(
            "cannot find the distest binary: {e}; set DISTEST_BIN"
        ))
    })?;
    if exe.file_name().is_some_and(|n| n == "distest") {
        return Ok(exe);
    }
    exe.ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join("distest"))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            NodeError::Unsupported(format!(
                "{} is not the distest binary and none was found next to it; build it (cargo build) or set DISTEST_BIN",
                exe.display()
            ))
        })
}

/// Uploads this binary to `remote` on `node` and checks that it runs there.
pub fn upload_self(node: &dyn Remote, remote: &Path) -> Result<(), NodeError> {
    let exe = distest_binary()?;
    let started = std::time::Instant::now();
    node.upload(&exe, remote)?;
    tracing::debug!(
        node = node.name(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "uploaded {} to {}",
        exe.display(),
        remote.display()
    );
    // The copy is this machine's build: on a host of another CPU architecture or with an
    // older glibc it cannot start. Say so now rather than when a fault or target needs it.
    let quoted = shell_quote_path(remote);
    let probe = node.exec(
        &format!("chmod 755 {quoted} && {quoted} --help >/dev/null"),
        PROBE_TIMEOUT,
    )?;
    if !probe.success() {
        return Err(NodeError::Unsupported(format!(
            "the distest binary uploaded to {} as {} does not run there ({}); build distest for that host (same CPU architecture and glibc, or a static musl build) and pass it as DISTEST_BIN",
            node.name(),
            remote.display(),
            probe.stderr.trim()
        )));
    }
    Ok(())
}
