//! Mounting a data directory through lazyfs the way targets do (`distest::nodes::lazyfs`),
//! on this machine (root and /dev/fuse only): files the target put there before the first
//! mount show through it, idempotent mounts, recovery from a killed lazyfs, clean stops,
//! and the teardown that finds mounts left behind. Run under the
//! shared lock (`flock -o /work/locks/netns.lock cargo test --test lazyfs_mount`).

mod common;

use distest::nodes::lazyfs::{lazyfs_mounts, release_under, LazyfsMount};
use distest::nodes::{ExecOutput, NodeError, NodeShell, Remote};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A node that is this machine: commands run with `sh -c`, files stay where they are.
struct Host {
    data: PathBuf,
    logs: PathBuf,
}

impl NodeShell for Host {
    fn name(&self) -> &str {
        "host"
    }
    fn address(&self) -> IpAddr {
        IpAddr::from([127, 0, 0, 1])
    }
    fn exec(&self, command: &str, timeout: Duration) -> Result<ExecOutput, NodeError> {
        distest::nodes::exec::exec_for_node("host", &["sh", "-c", command], command, timeout)
    }
    fn is_local(&self) -> bool {
        true
    }
}

impl Remote for Host {
    fn data_dir(&self) -> &Path {
        &self.data
    }
    fn log_dir(&self) -> &Path {
        &self.logs
    }
    fn upload(&self, local: &Path, remote: &Path) -> Result<(), NodeError> {
        std::fs::copy(local, remote)
            .map(drop)
            .map_err(|e| NodeError::Unsupported(e.to_string()))
    }
    fn download(&self, remote: &Path, local: &Path) -> Result<(), NodeError> {
        self.upload(remote, local)
    }
    fn machine_id(&self) -> String {
        "localhost".into()
    }
    fn exec_machine(&self, command: &str, timeout: Duration) -> Result<ExecOutput, NodeError> {
        self.exec(command, timeout)
    }
}

fn mounted() -> Vec<PathBuf> {
    lazyfs_mounts(&std::fs::read_to_string("/proc/self/mountinfo").unwrap())
}

/// Releases whatever is still mounted under the test's directory, then removes it.
struct Cleanup(PathBuf);
impl Drop for Cleanup {
    fn drop(&mut self) {
        release_under(&self.0);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn lazyfs_pid(m: &LazyfsMount) -> String {
    std::fs::read_to_string(&m.pid_file)
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn a_data_directory_is_mounted_once_recovered_after_a_kill_and_released() {
    if !common::is_root() || !Path::new("/dev/fuse").exists() {
        eprintln!("skipped: needs root and /dev/fuse");
        return;
    }
    let root = std::env::temp_dir().join(format!("dt-test-lzmount-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let _cleanup = Cleanup(root.clone());
    let host = Host {
        data: root.join("data"),
        logs: root.join("logs"),
    };
    let bin = root.join("data/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_distest"), bin.join("lazyfs")).unwrap();
    let m = LazyfsMount::for_data_dir(&host.data.join("toy"), &host.logs, &bin);
    // What the target wrote before its first start (postgres' initdb) is adopted.
    std::fs::create_dir_all(m.mountpoint.join("base")).unwrap();
    std::fs::write(m.mountpoint.join("base/conf"), b"initialised").unwrap();
    let mode =
        |p: &Path| std::os::unix::fs::PermissionsExt::mode(&p.metadata().unwrap().permissions());
    std::fs::set_permissions(
        &m.mountpoint,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();

    m.ensure_mounted(&host).unwrap();
    assert!(mounted().contains(&m.mountpoint));
    assert_eq!(
        std::fs::read(m.mountpoint.join("base/conf")).unwrap(),
        b"initialised"
    );
    assert_eq!(
        std::fs::read(m.backing.join("base/conf")).unwrap(),
        b"initialised"
    );
    assert_eq!(
        mode(&m.mountpoint) & 0o777,
        0o700,
        "the directory's mode is kept"
    );
    let pid = lazyfs_pid(&m);
    m.ensure_mounted(&host).unwrap();
    assert_eq!(lazyfs_pid(&m), pid, "a live mount is kept");
    std::fs::write(m.mountpoint.join("f"), b"unsynced").unwrap();
    assert!(!m.backing.join("f").exists(), "not yet durable");

    // A killed lazyfs leaves a dead mount; the next ensure clears it and mounts afresh
    // (what was unsynced is lost, as in a power failure).
    std::process::Command::new("kill")
        .args(["-9", &pid])
        .status()
        .unwrap();
    m.ensure_mounted(&host).unwrap();
    assert_ne!(lazyfs_pid(&m), pid);
    assert!(!m.mountpoint.join("f").exists());

    // A clean stop writes back and unmounts.
    std::fs::write(m.mountpoint.join("g"), b"written back").unwrap();
    m.stop(&host).unwrap();
    assert!(!mounted().contains(&m.mountpoint));
    assert_eq!(std::fs::read(m.backing.join("g")).unwrap(), b"written back");
    assert!(!m.socket.exists());

    // Teardown after a killed run finds the mount by itself.
    m.ensure_mounted(&host).unwrap();
    let pid = lazyfs_pid(&m);
    assert_eq!(release_under(&root), vec![m.mountpoint.clone()]);
    assert!(!mounted().contains(&m.mountpoint));
    let still_lazyfs =
        std::fs::read_to_string(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.contains("lazyfs"));
    assert!(!still_lazyfs, "the lazyfs process is gone");
}
