//! What an earlier run left on a remote node, found without knowing which target or
//! fault left it, and removed: a run on SSH nodes, and `distest env down` for them.
//!
//! Every daemon a run starts has a pid file under the node's base directory (targets,
//! fault helpers, a target described in a file alike), every fault rule is one of our
//! `DISTEST-*` chains, and a run's data lives in the node's data directory; so sweeping
//! pid files, our chains (with a latency delayer), mounts and the data directory removes
//! everything of an earlier run. Each run also leaves a record on every node
//! (`<base>/distest-run.json`: host, pid, start time of its control process) until it
//! ends: a record naming a live process on this machine is a run still going.
//! (A live run from another control machine cannot be told apart from a dead one.)

use super::{shell_quote, shell_quote_path, NodeError, NodeShell, Remote};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Budget for each cleaning command on a node.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);
/// The record a run leaves on each remote node it uses, in the node's base directory.
pub const RECORD_FILE: &str = "distest-run.json";

/// The node's base directory: the parent of its data and log directories.
pub fn base_dir(node: &dyn Remote) -> PathBuf {
    node.data_dir()
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(|| node.data_dir().to_path_buf())
}

/// The control process of a run, as a node's record names it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Owner {
    pub host: String,
    pub pid: u32,
    /// Start time of the pid (clock ticks since boot): tells pid reuse apart.
    #[serde(default)]
    pub pid_start: Option<String>,
    #[serde(default)]
    pub started_at: String,
}

impl Owner {
    /// This process, now.
    pub fn this_process() -> Owner {
        Owner {
            host: this_host(),
            pid: std::process::id(),
            pid_start: process_start(std::process::id()),
            started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }
    }

    /// True when this names a live process on this machine other than this one.
    pub fn is_alive_elsewhere_here(&self) -> bool {
        self.host == this_host()
            && self.pid > 1
            && self.pid != std::process::id()
            && self.pid_start.is_some()
            && process_start(self.pid) == self.pid_start
    }

    /// `pid 1234 on ctl1, started 2024-05-01T13:02:11Z`.
    pub fn describe(&self) -> String {
        format!(
            "pid {} on {}, started {}",
            self.pid, self.host, self.started_at
        )
    }
}

fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// Field 22 of `/proc/PID/stat` (its start time in clock ticks).
fn process_start(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?
        .1
        .split(' ')
        .nth(19)
        .map(str::to_string)
}

/// The record on `node`, if one is there. `Ok(Some(None))`: a record that cannot be read
/// (still a run that did not finish).
pub fn read_record(node: &dyn Remote) -> Result<Option<Option<Owner>>, NodeError> {
    let path = shell_quote_path(&base_dir(node).join(RECORD_FILE));
    let out = node.exec_ok(
        &format!("if [ -e {path} ]; then echo present; cat {path}; fi"),
        STEP_TIMEOUT,
    )?;
    let Some(text) = out.stdout.strip_prefix("present\n") else {
        return Ok(None);
    };
    Ok(Some(serde_json::from_str(text.trim()).ok()))
}

/// Writes `owner` as `node`'s record.
pub fn write_record(node: &dyn Remote, owner: &Owner) -> Result<(), NodeError> {
    let base = base_dir(node);
    let text = serde_json::to_string(owner).unwrap_or_default();
    node.exec_ok(
        &format!(
            "mkdir -p {} && printf '%s\\n' {} > {}",
            shell_quote_path(&base),
            shell_quote(&text),
            shell_quote_path(&base.join(RECORD_FILE))
        ),
        STEP_TIMEOUT,
    )
    .map(drop)
}

/// Removes `node`'s record: the run that wrote it is over and left nothing.
pub fn remove_record(node: &dyn Remote) -> Result<(), NodeError> {
    let path = shell_quote_path(&base_dir(node).join(RECORD_FILE));
    node.exec_ok(&format!("rm -f {path}"), STEP_TIMEOUT)
        .map(drop)
}

/// Removes everything an earlier run left on `node`: fault chains and a latency delayer,
/// daemons found by pid file (with their process trees), mounts below the base
/// directory, the data and log directories' contents. Returns one phrase per kind of
/// thing it found (empty: the node was clean).
pub fn clean(node: &Arc<dyn Remote>) -> Result<Vec<String>, NodeError> {
    let base = base_dir(node.as_ref());
    let mut found = Vec::new();
    let chains = node.exec_ok(
        "{ iptables-save 2>/dev/null; ip6tables-save 2>/dev/null; } | grep -c '^:DISTEST-' || true",
        STEP_TIMEOUT,
    )?;
    // Rules first: once nothing is queued to it, a delayer can go.
    let shell: Arc<dyn NodeShell> = node.clone();
    for (_, result) in distest_nemeses::clear_leftovers(&[shell]) {
        result.map_err(|e| NodeError::Unreachable {
            node: node.name().to_string(),
            message: format!("could not clear fault rules: {e}"),
        })?;
    }
    match chains.stdout.trim().parse::<usize>() {
        Ok(0) | Err(_) => {}
        Ok(n) => found.push(format!("{n} fault rule chains")),
    }
    let swept = node.exec_ok(&super::daemon::sweep_script(&base, true), STEP_TIMEOUT)?;
    let daemons: Vec<String> = swept
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("killed "))
        .map(|l| {
            let (pid, file) = l.split_once(' ').unwrap_or((l, ""));
            let name = std::path::Path::new(file)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            format!("{name} (pid {pid})")
        })
        .collect();
    if !daemons.is_empty() {
        found.push(format!("daemons {}", daemons.join(", ")));
    }
    let unmounted = node.exec_ok(&super::daemon::unmount_script(&base), STEP_TIMEOUT)?;
    let mounts = unmounted.stdout.lines().count();
    if mounts > 0 {
        found.push(format!("{mounts} mounts"));
    }
    let data = node.exec_ok(
        &format!(
            "find {} -mindepth 1 -maxdepth 1 2>/dev/null | head -1",
            shell_quote_path(node.data_dir())
        ),
        STEP_TIMEOUT,
    )?;
    if !data.stdout.trim().is_empty() {
        found.push("data".into());
    }
    empty_dirs(node.as_ref())?;
    Ok(found)
}

/// Empties the node's data and log directories (creating them when missing): a run's
/// target starts on nothing but what the run puts there, and its logs hold only its own.
pub fn empty_dirs(node: &dyn Remote) -> Result<(), NodeError> {
    let dirs = [node.data_dir(), node.log_dir()]
        .map(shell_quote_path)
        .join(" ");
    node.exec_machine(
        &format!(
            "for d in {dirs}; do mkdir -p \"$d\" && find \"$d\" -mindepth 1 -maxdepth 1 -exec rm -rf {{}} + || exit 1; done"
        ),
        STEP_TIMEOUT,
    )
    .and_then(|out| {
        if out.success() {
            Ok(())
        } else {
            Err(NodeError::Failed {
                node: node.name().to_string(),
                command: "empty the data and log directories".into(),
                status: out.status,
                stderr: out.stderr.trim().to_string(),
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_owner_is_alive_only_as_the_same_process_on_this_machine() {
        let me = Owner::this_process();
        assert!(
            !me.is_alive_elsewhere_here(),
            "this process is not another run"
        );
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let other = Owner {
            pid: child.id(),
            pid_start: process_start(child.id()),
            ..me.clone()
        };
        assert!(other.is_alive_elsewhere_here());
        let reused = Owner {
            pid_start: Some("1".into()),
            ..other.clone()
        };
        assert!(
            !reused.is_alive_elsewhere_here(),
            "a reused pid is not the run"
        );
        let elsewhere = Owner {
            host: "another-machine".into(),
            ..other.clone()
        };
        assert!(!elsewhere.is_alive_elsewhere_here());
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!other.is_alive_elsewhere_here(), "a dead run");
        let back: Owner = serde_json::from_str(&serde_json::to_string(&me).unwrap()).unwrap();
        assert_eq!(back, me);
    }
}
