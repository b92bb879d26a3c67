//! Serving a daemon's data directory through lazyfs, the filesystem of the disk nemesis
//! (`distest_lazyfs`; this binary runs it when invoked as `lazyfs`).
//!
//! The daemon keeps its data directory path; lazyfs is mounted there, over a backing
//! directory next to it, before the daemon starts:
//!
//! ```text
//! <data_root>/<name>                  mount point = the daemon's --data-dir
//! <data_root>/<name>.lazyfs-backing   what survives a power failure
//! <data_root>/<name>.lazyfs.sock      control socket (discard, status)
//! <data_root>/<name>.lazyfs.pid       the lazyfs process
//! <log_dir>/<name>.lazyfs.log         its log
//! ```
//!
//! A data directory the target filled before its first start (postgres' initdb) is
//! renamed to be the backing directory, so its files show through the mount.
//!
//! lazyfs runs on the machine, outside any network namespace: `ip netns exec` gives each
//! command its own mount namespace, so a mount made inside one is seen by nobody else,
//! while a mount made on the host before a daemon starts is copied into the daemon's.
//! (Mounts made on the host *after* a daemon started do not reach it when the host's `/`
//! is a private mount, as here; so lazyfs is mounted first and stays mounted across
//! daemon restarts.) The control socket is a file, reachable from inside the namespaces.

use super::daemon::{self, DaemonSpec};
use super::exec::exec_for_node;
use super::{shell_quote_path, ExecOutput, NodeError, NodeShell, Remote};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long lazyfs may take to answer on its socket after starting.
const MOUNT_DEADLINE: Duration = Duration::from_secs(15);
/// How long lazyfs may take to write back and unmount after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(10);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// One data directory served through lazyfs on one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LazyfsMount {
    /// The daemon's data directory.
    pub mountpoint: PathBuf,
    pub backing: PathBuf,
    pub socket: PathBuf,
    pub pid_file: PathBuf,
    pub log_file: PathBuf,
    /// The `lazyfs` program on the node (a link to, or copy of, this binary).
    pub program: PathBuf,
}

/// A node's commands run on its machine (`Remote::exec_machine`): outside the network
/// namespace of a local node, plain `exec` over SSH.
struct OnMachine<'a>(&'a dyn Remote);

impl NodeShell for OnMachine<'_> {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn address(&self) -> IpAddr {
        self.0.address()
    }
    fn exec(&self, command: &str, timeout: Duration) -> Result<ExecOutput, NodeError> {
        self.0.exec_machine(command, timeout)
    }
    fn is_local(&self) -> bool {
        self.0.is_local()
    }
}

/// This machine, for cleanups that have no node at hand.
struct ThisMachine;

impl NodeShell for ThisMachine {
    fn name(&self) -> &str {
        "localhost"
    }
    fn address(&self) -> IpAddr {
        IpAddr::from([127, 0, 0, 1])
    }
    fn exec(&self, command: &str, timeout: Duration) -> Result<ExecOutput, NodeError> {
        exec_for_node("localhost", &["sh", "-c", command], command, timeout)
    }
    fn is_local(&self) -> bool {
        true
    }
}

impl LazyfsMount {
    /// The layout for the data directory `data` (see the module docs).
    pub fn for_data_dir(data: &Path, log_dir: &Path, bin_dir: &Path) -> LazyfsMount {
        let name = data
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "data".to_string());
        let beside = |suffix: &str| data.with_file_name(format!("{name}{suffix}"));
        LazyfsMount {
            mountpoint: data.to_path_buf(),
            backing: beside(".lazyfs-backing"),
            socket: beside(".lazyfs.sock"),
            pid_file: beside(".lazyfs.pid"),
            log_file: log_dir.join(format!("{name}.lazyfs.log")),
            program: bin_dir.join(distest_lazyfs::PROGRAM),
        }
    }

    /// The `lazyfs ctl` command for `request` (`status`, `discard --torn`, ...).
    pub fn ctl_command(&self, request: &str) -> String {
        format!(
            "{} ctl --socket {} {request}",
            shell_quote_path(&self.program),
            shell_quote_path(&self.socket)
        )
    }

    fn answers(&self, node: &dyn Remote) -> bool {
        OnMachine(node)
            .exec(&self.ctl_command("status"), COMMAND_TIMEOUT)
            .is_ok_and(|o| o.success())
    }

    /// Mounts lazyfs unless a live one already serves the directory. The `lazyfs`
    /// program must be installed at [`program`](Self::program).
    pub fn ensure_mounted(&self, node: &dyn Remote) -> Result<(), NodeError> {
        let machine = OnMachine(node);
        if daemon::live_pid(&machine, &self.pid_file)?.is_some() && self.answers(node) {
            return Ok(());
        }
        // A lazyfs that died leaves a dead mount ("transport endpoint is not connected").
        self.stop(node)?;
        machine.exec_ok(&self.adopt_script(), COMMAND_TIMEOUT)?;
        let mut spec = DaemonSpec::new(
            self.program.to_string_lossy(),
            self.pid_file.clone(),
            self.log_file.clone(),
        );
        spec.args = vec![
            "mount".into(),
            "--backing".into(),
            self.backing.to_string_lossy().into_owned(),
            "--mountpoint".into(),
            self.mountpoint.to_string_lossy().into_owned(),
            "--socket".into(),
            self.socket.to_string_lossy().into_owned(),
        ];
        daemon::start(&machine, &spec)?;
        let deadline = Instant::now() + MOUNT_DEADLINE;
        while !self.answers(node) {
            if Instant::now() >= deadline {
                let log = machine
                    .exec(
                        &format!("tail -n 5 {}", shell_quote_path(&self.log_file)),
                        COMMAND_TIMEOUT,
                    )
                    .map(|o| o.stdout.trim().replace('\n', " / "))
                    .unwrap_or_default();
                let _ = self.stop(node);
                return Err(NodeError::Failed {
                    node: node.name().to_string(),
                    command: format!("lazyfs mount at {}", self.mountpoint.display()),
                    status: -1,
                    stderr: format!(
                        "lazyfs did not answer on {} within {} s (is /dev/fuse there? its log: {log})",
                        self.socket.display(),
                        MOUNT_DEADLINE.as_secs()
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// Creates the mount point and the backing directory. The first time, what the target
    /// already put into its data directory (postgres' initdb, before its first start)
    /// becomes the backing directory, owner and mode included (renamed, so it is as
    /// durable as it was), and the mount point is made afresh: the data is then seen
    /// through the mount, not hidden under it.
    fn adopt_script(&self) -> String {
        let mnt = shell_quote_path(&self.mountpoint);
        let backing = shell_quote_path(&self.backing);
        format!(
            "if [ ! -e {backing} ] && [ -d {mnt} ]; then mv {mnt} {backing}; fi; mkdir -p {mnt} {backing}"
        )
    }

    /// Stops lazyfs (SIGTERM: it writes back and unmounts) and removes what a killed one
    /// leaves: a dead mount and the socket. The daemon using the mount must be stopped
    /// first. Nothing running is fine.
    pub fn stop(&self, node: &dyn Remote) -> Result<(), NodeError> {
        let machine = OnMachine(node);
        daemon::stop(&machine, &self.pid_file, STOP_GRACE)?;
        machine.exec_ok(
            &release_script(&self.mountpoint, &self.socket),
            COMMAND_TIMEOUT,
        )?;
        Ok(())
    }
}

/// Lazily unmounts `mountpoint` if it is a lazyfs mount, and removes the socket. (The
/// path is compared with mountinfo's field as is: paths with spaces are not matched.)
fn release_script(mountpoint: &Path, socket: &Path) -> String {
    let mnt = shell_quote_path(mountpoint);
    format!(
        "if awk -v m={mnt} '$5 == m && $0 ~ / - fuse(\\.[a-z]+)? {fsname} /' /proc/self/mountinfo | grep -q .; then umount -l {mnt}; fi; rm -f {sock}",
        fsname = distest_lazyfs::FSNAME,
        sock = shell_quote_path(socket),
    )
}

/// The lazyfs mount points listed in `mountinfo` (the text of /proc/self/mountinfo).
pub fn lazyfs_mounts(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let dash = fields.iter().position(|f| *f == "-")?;
            let source = fields.get(dash + 2)?;
            let mountpoint = fields.get(4)?;
            (*source == distest_lazyfs::FSNAME)
                .then(|| PathBuf::from(unescape_mountinfo(mountpoint)))
        })
        .collect()
}

/// mountinfo writes space, tab, newline and backslash in paths as `\ooo` octal.
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal.and_then(|d| u8::from_str_radix(std::str::from_utf8(d).ok()?, 8).ok()) {
            Some(b) => {
                out.push(b);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Stops every lazyfs mounted under `dir` on this machine and unmounts it; returns the
/// mount points. For cluster teardown after a killed run: lazyfs runs outside the
/// namespaces, so killing their processes does not reach it, and the cluster's
/// directories must not be removed through a live mount.
pub fn release_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut released = Vec::new();
    for mountpoint in lazyfs_mounts(&info)
        .into_iter()
        .filter(|m| m.starts_with(dir))
    {
        let name = mountpoint
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let pid_file = mountpoint.with_file_name(format!("{name}.lazyfs.pid"));
        let socket = mountpoint.with_file_name(format!("{name}.lazyfs.sock"));
        // No grace: the data is about to be wiped, nothing needs writing back.
        if let Err(e) = daemon::stop(&ThisMachine, &pid_file, Duration::ZERO) {
            tracing::warn!("could not stop lazyfs at {}: {e}", mountpoint.display());
        }
        match ThisMachine.exec_ok(&release_script(&mountpoint, &socket), COMMAND_TIMEOUT) {
            Ok(_) => released.push(mountpoint),
            Err(e) => tracing::warn!("could not unmount {}: {e}", mountpoint.display()),
        }
    }
    released
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_sits_beside_the_data_directory() {
        let m = LazyfsMount::for_data_dir(
            Path::new("/b/c/n1/data/raft-kv"),
            Path::new("/b/c/n1/logs"),
            Path::new("/b/c/n1/data/bin"),
        );
        assert_eq!(
            m.backing,
            PathBuf::from("/b/c/n1/data/raft-kv.lazyfs-backing")
        );
        assert_eq!(m.socket, PathBuf::from("/b/c/n1/data/raft-kv.lazyfs.sock"));
        assert_eq!(m.pid_file, PathBuf::from("/b/c/n1/data/raft-kv.lazyfs.pid"));
        assert_eq!(m.log_file, PathBuf::from("/b/c/n1/logs/raft-kv.lazyfs.log"));
        assert_eq!(m.program, PathBuf::from("/b/c/n1/data/bin/lazyfs"));
        assert_eq!(
            m.ctl_command("discard --torn"),
            "/b/c/n1/data/bin/lazyfs ctl --socket /b/c/n1/data/raft-kv.lazyfs.sock discard --torn"
        );
    }

    #[test]
    fn lazyfs_mounts_are_found_in_mountinfo_and_others_are_not() {
        let info = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
46 27 0:40 / /tmp/x/n1/data/raft-kv rw,nosuid,nodev,relatime - fuse distest-lazyfs rw,user_id=0
47 27 0:41 / /tmp/with\\040space/etcd rw - fuse distest-lazyfs rw
48 27 0:42 / /mnt/other rw - fuse sshfs rw
49 27 0:43 / /opt/a rw shared:5 - fuse.lazyfs distest-lazyfs rw";
        assert_eq!(
            lazyfs_mounts(info),
            vec![
                PathBuf::from("/tmp/x/n1/data/raft-kv"),
                PathBuf::from("/tmp/with space/etcd"),
                PathBuf::from("/opt/a"),
            ]
        );
    }
}
