//! Installing the OS packages a target or nemesis needs, once per machine per run.
//!
//! Debian/Ubuntu nodes (apt) are supported: `dpkg-query` says what is installed; the rest
//! is installed with `apt-get update` then `apt-get install -y` (non-interactive, and
//! packages may not start their own services: distest starts what it needs itself), as
//! root only: without root the error names the missing packages and the one command that
//! installs them. Local namespace nodes share this machine ([`ThisMachine`]), so the check
//! runs once for all of them, outside the namespaces (which have no route to a mirror).

use super::{shell_quote, ExecOutput, NodeError, NodeShell, Remote};
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

/// Exit status of the install script when it does not run as root.
const NOT_ROOT_STATUS: i32 = 77;

/// The machine distest runs on, as a node for [`ensure_packages`]: what a local cluster
/// needs (`ip`, `iptables`) must be there before its first namespace exists. It shares
/// local namespace nodes' machine id, so their packages are checked once for both.
#[derive(Debug, Default)]
pub struct ThisMachine;

impl NodeShell for ThisMachine {
    fn name(&self) -> &str {
        "this machine"
    }
    fn address(&self) -> std::net::IpAddr {
        std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
    }
    fn exec(&self, command: &str, timeout: Duration) -> Result<ExecOutput, NodeError> {
        super::exec::exec_for_node("localhost", &["sh", "-c", command], command, timeout)
    }
    fn is_local(&self) -> bool {
        true
    }
}

impl Remote for ThisMachine {
    fn data_dir(&self) -> &std::path::Path {
        std::path::Path::new("/")
    }
    fn log_dir(&self) -> &std::path::Path {
        std::path::Path::new("/")
    }
    fn upload(&self, _: &std::path::Path, _: &std::path::Path) -> Result<(), NodeError> {
        Err(NodeError::Unsupported(
            "this machine is not a node to upload to".into(),
        ))
    }
    fn download(&self, _: &std::path::Path, _: &std::path::Path) -> Result<(), NodeError> {
        Err(NodeError::Unsupported(
            "this machine is not a node to download from".into(),
        ))
    }
    fn machine_id(&self) -> String {
        "localhost".to_string()
    }
    fn exec_machine(&self, command: &str, timeout: Duration) -> Result<ExecOutput, NodeError> {
        self.exec(command, timeout)
    }
}

/// Makes sure `packages` are installed on `node`'s machine; a no-op for those already seen
/// installed there during this run.
pub fn ensure_packages(node: &dyn Remote, packages: &[&str]) -> Result<(), NodeError> {
    ensure_packages_saying(node, packages, &|_: &str| {})
}

/// [`ensure_packages`], telling `say` in one line what it installs where, before it does.
pub fn ensure_packages_saying(
    node: &dyn Remote,
    packages: &[&str],
    say: &(dyn Fn(&str) + Sync),
) -> Result<(), NodeError> {
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
        let place = if node.machine_id() == "localhost" {
            "this machine".to_string()
        } else {
            node.name().to_string()
        };
        say(&format!(
            "installing {} on {place} with apt-get (what this run's nodes, target and faults need)",
            missing.join(" ")
        ));
        install(node, &missing, &place)?;
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

fn install(node: &dyn Remote, packages: &[String], place: &str) -> Result<(), NodeError> {
    let words: Vec<String> = packages.iter().map(|p| shell_quote(p)).collect();
    // Packages must not start their own services (postgresql, etcd): a policy-rc.d that
    // says no, unless the machine has its own.
    let command = format!(
        "[ \"$(id -u)\" -eq 0 ] || exit {NOT_ROOT_STATUS}\n\
         made=; if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && made=1; fi\n\
         export DEBIAN_FRONTEND=noninteractive\n\
         apt-get update -q -o DPkg::Lock::Timeout=300 && apt-get install -y -q -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold --no-install-recommends {} ; rc=$?\n\
         [ -z \"$made\" ] || rm -f /usr/sbin/policy-rc.d\n\
         exit $rc",
        words.join(" ")
    );
    tracing::info!(node = node.name(), packages = %packages.join(" "), "installing packages");
    let out = node.exec_machine(&command, INSTALL_TIMEOUT)?;
    if out.success() {
        return Ok(());
    }
    if out.status == NOT_ROOT_STATUS {
        return Err(NodeError::Unsupported(format!(
            "{place} lacks {}, which distest installs only when it runs as root; install them with `sudo apt-get install -y {}` or run distest as root",
            packages.join(", "),
            packages.join(" ")
        )));
    }
    Err(NodeError::Failed {
        node: node.name().to_string(),
        command: format!("apt-get install {}", packages.join(" ")),
        status: out.status,
        stderr: last_lines(&out.stderr, 5),
    })
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
        /// apt-get would run as a user other than root.
        not_root: bool,
    }

    impl FakeDebian {
        fn new(machine: &str, installed: &[&str], available: &[&str]) -> Self {
            FakeDebian {
                machine: machine.to_string(),
                installed: Mutex::new(installed.iter().map(|s| s.to_string()).collect()),
                available: available.iter().map(|s| s.to_string()).collect(),
                commands: Mutex::new(Vec::new()),
                not_root: false,
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
                .take_while(|a| **a != ";")
                .copied()
                .collect();
            if self.not_root {
                return Ok(ExecOutput {
                    status: NOT_ROOT_STATUS,
                    stdout: String::new(),
                    stderr: String::new(),
                });
            }
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
    fn installs_say_what_they_install_and_update_the_lists_first() {
        let node = FakeDebian::new("pkg-test-e", &[], &["iptables", "iproute2"]);
        let said = Mutex::new(Vec::new());
        ensure_packages_saying(&node, &["iptables", "iproute2"], &|line: &str| {
            said.lock().unwrap().push(line.to_string())
        })
        .unwrap();
        let said = said.into_inner().unwrap();
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(
            said[0].contains("installing iptables iproute2 on fake"),
            "{said:?}"
        );
        let commands = node.commands.lock().unwrap();
        let install = commands
            .iter()
            .find(|c| c.contains("apt-get install"))
            .unwrap();
        assert!(
            install.find("apt-get update").unwrap() < install.find("apt-get install").unwrap(),
            "{install}"
        );
        assert!(
            install.contains("policy-rc.d"),
            "services stay off: {install}"
        );
    }

    #[test]
    fn without_root_the_error_names_the_packages_and_the_command() {
        let mut node = FakeDebian::new("localhost", &[], &["iptables"]);
        node.not_root = true;
        let err = ensure_packages(&node, &["iptables"])
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "this machine lacks iptables, which distest installs only when it runs as root; install them with `sudo apt-get install -y iptables` or run distest as root"
        );
    }

    #[test]
    fn shell_metacharacters_are_not_package_names() {
        let node = FakeDebian::new("pkg-test-d", &[], &[]);
        assert!(ensure_packages(&node, &["vim; rm -rf /"]).is_err());
        assert_eq!(node.count(""), 0);
    }
}
