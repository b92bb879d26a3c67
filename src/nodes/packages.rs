//! Installing the OS packages a target or nemesis needs, once per machine per run.
//!
//! Debian/Ubuntu nodes (apt) are supported: `dpkg-query` says what is installed, `apt-get
//! install -y` (non-interactive) adds the rest, refreshing the package lists first only when
//! the install fails without them. Local namespace nodes share this machine, so the check
//! runs once for all of them, outside the namespaces (which have no route to a mirror).

use super::{shell_quote, NodeError, Remote};
use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Budget for `dpkg-query`.
const QUERY_TIMEOUT: Duration = Duration::from_secs(60);
/// Budget for `apt-get update` plus `apt-get install`; mirrors can be slow.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(900);

/// One lock per machine: nodes of one machine (local namespaces) install at the same
/// time, and two `apt-get`s on one machine fail on dpkg's lock.
fn machine_lock(machine: &str) -> std::sync::Arc<Mutex<()>> {
    static LOCKS: OnceLock<Mutex<std::collections::HashMap<String, std::sync::Arc<Mutex<()>>>>> =
        OnceLock::new();
    let mut locks = LOCKS
        .get_or_init(|| Mutex::new(std::collections::HashMap::new()))
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    locks.entry(machine.to_string()).or_default().clone()
}

/// `(machine, package)` pairs known to be installed during this run.
fn installed() -> &'static Mutex<HashSet<(String, String)>> {
    static INSTALLED: OnceLock<Mutex<HashSet<(String, String)>>> = OnceLock::new();
    INSTALLED.get_or_init(|| Mutex::new(HashSet::new()))
}

fn valid_package_name(name: &str) -> bool {
    // Debian policy: lowercase letters, digits, + - . ; at least two characters, starting
    // alphanumeric. Anything else would be shell input, not a package.
    name.len() >= 2
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b))
}

/// Makes sure `packages` are installed on `node`'s machine; a no-op for those already seen
/// installed there during this run.
pub fn ensure_packages(node: &dyn Remote, packages: &[&str]) -> Result<(), NodeError> {
    if let Some(bad) = packages.iter().find(|p| !valid_package_name(p)) {
        return Err(NodeError::Unsupported(format!(
            "{bad:?} is not a valid Debian package name"
        )));
    }
    let machine = node.machine_id();
    let lock = machine_lock(&machine);
    let _installing = lock.lock().unwrap_or_else(|e| e.into_inner());
    let wanted: Vec<&str> = {
        let known = installed().lock().unwrap_or_else(|e| e.into_inner());
        packages
            .iter()
            .copied()
            .filter(|p| !known.contains(&(machine.clone(), p.to_string())))
            .collect()
    };
    if wanted.is_empty() {
        return Ok(());
    }
    let missing = missing_packages(node, &wanted)?;
    if !missing.is_empty() {
        install(node, &missing)?;
        let missing_refs: Vec<&str> = missing.iter().map(String::as_str).collect();
        let still = missing_packages(node, &missing_refs)?;
        if !still.is_empty() {
            return Err(NodeError::Failed {
                node: node.name().to_string(),
                command: format!("apt-get install {}", still.join(" ")),
                status: 0,
                stderr: "apt-get reported success but dpkg-query still lists them as missing"
                    .into(),
            });
        }
    }
    let mut known = installed().lock().unwrap_or_else(|e| e.into_inner());
    known.extend(wanted.iter().map(|p| (machine.clone(), p.to_string())));
    Ok(())
}

/// The subset of `packages` dpkg does not report as installed.
fn missing_packages(node: &dyn Remote, packages: &[&str]) -> Result<Vec<String>, NodeError> {
    let words: Vec<String> = packages.iter().map(|p| shell_quote(p)).collect();
    // One line per package; unknown packages print nothing, so compare against the list.
    let command = format!(
        "command -v dpkg-query >/dev/null || {{ echo 'this node has no dpkg-query: only Debian/Ubuntu (apt) nodes can get packages installed; install them by hand' >&2; exit 3; }}\n\
         dpkg-query -W -f='${{Package}} ${{db:Status-Status}}\\n' {} 2>/dev/null; exit 0",
        words.join(" ")
    );
    let out = node.exec_machine(&command, QUERY_TIMEOUT)?;
    if !out.success() {
        return Err(NodeError::Unsupported(format!(
            "on {}: {}",
            node.name(),
            out.stderr.trim()
        )));
    }
    let installed: HashSet<&str> = out
        .stdout
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(_, status)| status.trim() == "installed")
        .map(|(name, _)| name.split(':').next().unwrap_or(name))
        .collect();
    Ok(packages
        .iter()
        .filter(|p| !installed.contains(*p))
        .map(|p| p.to_string())
        .collect())
}

fn install(node: &dyn Remote, packages: &[String]) -> Result<(), NodeError> {
    let words: Vec<String> = packages.iter().map(|p| shell_quote(p)).collect();
    let install = format!(
        "DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold --no-install-recommends {}",
        words.join(" ")
    );
    // Stale or absent package lists are the usual cause of "Unable to locate package".
    let command =
        format!("{install} || {{ apt-get update -q -o DPkg::Lock::Timeout=300 && {install}; }}");
    tracing::info!(node = node.name(), packages = %packages.join(" "), "installing packages");
    node.exec_machine(&command, INSTALL_TIMEOUT)
        .and_then(|out| {
            if out.success() {
                Ok(out)
            } else {
                Err(NodeError::Failed {
                    node: node.name().to_string(),
                    command: format!("apt-get install {}", packages.join(" ")),
                    status: out.status,
                    stderr: last_lines(&out.stderr, 5),
                })
            }
        })
        .map(drop)
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.trim().lines().collect();
    lines[lines.len().saturating_sub(n)..].join(" / ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodes::{ExecOutput, NodeShell};
    use std::net::{IpAddr, Ipv4Addr};
    use std::path::Path;

    /// A Debian machine whose dpkg knows `installed` and whose apt can install `available`.
    struct FakeDebian {
        machine: String,
        installed: Mutex<HashSet<String>>,
        available: HashSet<String>,
        commands: Mutex<Vec<String>>,
    }

    impl FakeDebian {
        fn new(machine: &str, installed: &[&str], available: &[&str]) -> Self {
            FakeDebian {
                machine: machine.to_string(),
                installed: Mutex::new(installed.iter().map(|s| s.to_string()).collect()),
                available: available.iter().map(|s| s.to_string()).collect(),
                commands: Mutex::new(Vec::new()),
            }
        }
        fn count(&self, needle: &str) -> usize {
            self.commands
                .lock()
                .unwrap()
                .iter()
                .filter(|c| c.contains(needle))
                .count()
        }
    }

    impl NodeShell for FakeDebian {
        fn name(&self) -> &str {
            "fake"
        }
        fn address(&self) -> IpAddr {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        }
        fn exec(&self, _: &str, _: Duration) -> Result<ExecOutput, NodeError> {
            unreachable!("package work must run on the machine, not in the node")
        }
        fn is_local(&self) -> bool {
            true
        }
    }

    impl Remote for FakeDebian {
        fn data_dir(&self) -> &Path {
            Path::new("/")
        }
        fn log_dir(&self) -> &Path {
            Path::new("/")
        }
        fn upload(&self, _: &Path, _: &Path) -> Result<(), NodeError> {
            Ok(())
        }
        fn download(&self, _: &Path, _: &Path) -> Result<(), NodeError> {
            Ok(())
        }
        fn machine_id(&self) -> String {
            self.machine.clone()
        }
        fn exec_machine(&self, command: &str, _: Duration) -> Result<ExecOutput, NodeError> {
            self.commands.lock().unwrap().push(command.to_string());
            let args: Vec<&str> = command.split_whitespace().collect();
            let mut installed = self.installed.lock().unwrap();
            if command.contains("dpkg-query") {
                let stdout = args
                    .iter()
                    .filter(|a| installed.contains(**a))
                    .map(|a| format!("{a} installed\n"))
                    .collect();
                return Ok(ExecOutput {
                    status: 0,
                    stdout,
                    stderr: String::new(),
                });
            }
            let pkgs: Vec<&str> = args
                .iter()
                .skip_while(|a| **a != "--no-install-recommends")
                .skip(1)
                .take_while(|a| **a != "||")
                .copied()
                .collect();
            if let Some(bad) = pkgs.iter().find(|p| !self.available.contains(**p)) {
                return Ok(ExecOutput {
                    status: 100,
                    stdout: String::new(),
                    stderr: format!("E: Unable to locate package {bad}"),
                });
            }
            installed.extend(pkgs.iter().map(|p| p.to_string()));
            Ok(ExecOutput::default())
        }
    }

    #[test]
    fn installs_only_missing_packages_and_only_once_per_machine() {
        let node = FakeDebian::new("pkg-test-a", &["iproute2"], &["iptables"]);
        ensure_packages(&node, &["iproute2", "iptables"]).unwrap();
        assert_eq!(node.count("apt-get install"), 1);
        assert!(node.installed.lock().unwrap().contains("iptables"));
        ensure_packages(&node, &["iproute2", "iptables"]).unwrap();
        assert_eq!(
            node.count("dpkg-query"),
            2,
            "the second call must not query again"
        );
    }

    #[test]
    fn nothing_is_installed_when_everything_is_present() {
        let node = FakeDebian::new("pkg-test-b", &["iptables"], &[]);
        ensure_packages(&node, &["iptables"]).unwrap();
        assert_eq!(node.count("apt-get"), 0);
    }

    #[test]
    fn an_unavailable_package_is_a_clear_error() {
        let node = FakeDebian::new("pkg-test-c", &[], &[]);
        let err = ensure_packages(&node, &["dt-no-such-package"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("Unable to locate package dt-no-such-package"),
            "{err}"
        );
    }

    #[test]
    fn shell_metacharacters_are_not_package_names() {
        let node = FakeDebian::new("pkg-test-d", &[], &[]);
        assert!(ensure_packages(&node, &["vim; rm -rf /"]).is_err());
        assert_eq!(node.count(""), 0);
    }
}
