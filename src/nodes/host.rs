//! Commands on this machine (the control node) that build and remove local clusters:
//! `ip`, `iptables`, run directly (no shell) with a deadline.

use super::exec::{run_local, RawOutput};
use super::NodesError;
use std::time::Duration;

/// Budget for one `ip` / `iptables` invocation; they normally take milliseconds.
pub const HOST_COMMAND_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs `argv` on this machine; a non-zero exit is returned, not an error.
pub fn run(argv: &[&str]) -> Result<RawOutput, NodesError> {
    run_local(argv, None, HOST_COMMAND_TIMEOUT).map_err(|e| NodesError::HostExec {
        command: argv.join(" "),
        message: e.to_string(),
    })
}

/// Runs `argv` on this machine; a non-zero exit is a [`NodesError::Host`]. Returns stdout.
pub fn ok(argv: &[&str]) -> Result<String, NodesError> {
    let out = run(argv)?;
    if out.status != 0 {
        return Err(NodesError::Host {
            command: argv.join(" "),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Fails with [`NodesError::NotRoot`] unless this process runs as root.
pub fn require_root() -> Result<(), NodesError> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(NodesError::NotRoot)
    }
}

/// How long `up` or `down` waits for another distest process working on clusters under
/// the same base directory.
pub const BASE_DIR_LOCK_WAIT: Duration = Duration::from_secs(60);

/// An exclusive `flock` on a clusters' base directory, held while a cluster is built or
/// removed so two distest processes never build and tear down the same cluster at once.
/// The kernel drops it when the holder dies, even by SIGKILL; it leaves no file behind.
#[derive(Debug)]
pub struct BaseDirLock {
    _lock: nix::fcntl::Flock<std::fs::File>,
}

/// Creates `base_dir` if needed and locks it (bounded wait).
pub fn lock_base_dir(base_dir: &std::path::Path) -> Result<BaseDirLock, NodesError> {
    use nix::errno::Errno;
    use nix::fcntl::{Flock, FlockArg};
    let io = |source| NodesError::Io {
        what: "could not open the clusters' base directory".into(),
        path: base_dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(base_dir).map_err(io)?;
    let deadline = std::time::Instant::now() + BASE_DIR_LOCK_WAIT;
    let mut file = std::fs::File::open(base_dir).map_err(io)?;
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(BaseDirLock { _lock: lock }),
            Err((f, Errno::EWOULDBLOCK | Errno::EINTR)) if std::time::Instant::now() < deadline => {
                file = f;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err((_, Errno::EWOULDBLOCK)) => {
                return Err(NodesError::Stuck(format!(
                    "another distest process has held {} for {} s while building or removing a cluster; wait for it or stop it",
                    base_dir.display(),
                    BASE_DIR_LOCK_WAIT.as_secs()
                )))
            }
            Err((_, errno)) => return Err(io(std::io::Error::from(errno))),
        }
    }
}

/// Names of all network namespaces (`ip netns list` prints `name (id: N)`).
pub fn list_namespaces() -> Result<Vec<String>, NodesError> {
    Ok(ok(&["ip", "netns", "list"])?
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect())
}

/// Names of all links in the host's namespace (`ip -o link` prints `5: name@peer: <...>`).
pub fn list_links() -> Result<Vec<String>, NodesError> {
    Ok(ok(&["ip", "-o", "link", "show"])?
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|name| name.split('@').next().unwrap_or(name).to_string())
        .collect())
}

/// Pids of the processes in namespace `ns` (empty when it does not exist).
pub fn namespace_pids(ns: &str) -> Result<Vec<u32>, NodesError> {
    let out = run(&["ip", "netns", "pids", ns])?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect())
}

/// IPv4 addresses on this machine's interfaces: (interface, address, prefix length).
pub fn ipv4_addresses() -> Result<Vec<(String, std::net::Ipv4Addr, u8)>, NodesError> {
    // `ip -o -4 addr show` prints `2: eth0    inet 10.0.0.5/24 brd ... scope global eth0`.
    Ok(ok(&["ip", "-o", "-4", "addr", "show"])?
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let iface = words.nth(1)?.to_string();
            let cidr = words.skip_while(|w| *w != "inet").nth(1)?;
            let (addr, len) = cidr.split_once('/')?;
            Some((iface, addr.parse().ok()?, len.parse().ok()?))
        })
        .collect())
}

/// Splits a line of `iptables -S` into arguments, honouring the double quotes it puts
/// around comments.
pub fn split_iptables_rule(line: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut in_quotes = false;
    let mut has_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                in_quotes = !in_quotes;
                has_word = true;
            }
            '\\' if in_quotes => {
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            }
            c if c.is_whitespace() && !in_quotes => {
                if has_word {
                    args.push(std::mem::take(&mut current));
                    has_word = false;
                }
            }
            c => {
                current.push(c);
                has_word = true;
            }
        }
    }
    if has_word {
        args.push(current);
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iptables_rules_split_like_a_shell() {
        let line = r#"-A FORWARD -i dtx-br -m comment --comment "distest:x \"q\"" -j ACCEPT"#;
        assert_eq!(
            split_iptables_rule(line),
            vec![
                "-A",
                "FORWARD",
                "-i",
                "dtx-br",
                "-m",
                "comment",
                "--comment",
                "distest:x \"q\"",
                "-j",
                "ACCEPT"
            ]
        );
        assert_eq!(
            split_iptables_rule(r#"--comment """#),
            vec!["--comment", ""]
        );
    }
}
