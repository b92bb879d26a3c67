//! sshd inside a local node's network namespace, so the tests of distest's real SSH path
//! (`nodes_remote.rs`, `run_ssh.rs`) need no second machine: unencrypted client and host
//! keys, an sshd config, sshd started as a node daemon with a wait until it listens, and
//! the names a client uses to reach it.
//!
//! Nothing here picks a port, cluster id, subnet or directory: each test file keeps its own,
//! so that the files can run in parallel.

use distest::nodes::ssh::SshOptions;
use distest::nodes::{DaemonSpec, Remote};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// How long sshd may take to listen after it was started.
pub const LISTEN_TIMEOUT: Duration = Duration::from_secs(5);
/// How often [`start`] tries to connect while it waits for sshd to listen.
const LISTEN_POLL: Duration = Duration::from_millis(20);
/// The OpenSSH programs the harness runs, at their Debian paths (scripts/setup.sh installs them).
const OPENSSH_TOOLS: [&str; 2] = ["/usr/sbin/sshd", "/usr/bin/ssh-keygen"];

/// Returns true, after saying why on stderr, unless this process runs as root: the tests
/// build network namespaces, which needs CAP_NET_ADMIN.
pub fn skip_unless_root(test: &str) -> bool {
    skip(test, not_root())
}

/// Like [`skip_unless_root`], and also skips where sshd or ssh-keygen is not installed.
pub fn skip_unless_root_with_openssh(test: &str) -> bool {
    skip(test, not_root().or_else(missing_openssh))
}

fn skip(test: &str, why: Option<String>) -> bool {
    let Some(why) = why else { return false };
    eprintln!("SKIPPED {test}: {why}");
    true
}

fn not_root() -> Option<String> {
    (!nix::unistd::geteuid().is_root()).then(|| {
        "it creates network namespaces, which needs root (CAP_NET_ADMIN); run `cargo test` as root to include it".to_string()
    })
}

fn missing_openssh() -> Option<String> {
    OPENSSH_TOOLS
        .iter()
        .find(|tool| !Path::new(tool).exists())
        .map(|tool| {
            format!(
            "{tool} is missing; install openssh-server and openssh-client (scripts/setup.sh does)"
        )
        })
}

/// Generates an ed25519 key pair at `path` with an empty passphrase, so that distest can
/// load it without an ssh-agent. Returns the public key as `type base64`, the form
/// known_hosts and authorized_keys take (the comment dropped).
pub fn keygen(path: &Path) -> String {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "distest-test", "-f"])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success(), "ssh-keygen failed for {}", path.display());
    let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    public
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A directory of the test machine mounted over another path in the mount namespace of
/// one sshd and the sessions it forks. Namespaces of one machine share its filesystem; with
/// this each such "host" has a disk of its own at the same path, as real hosts do.
pub struct Disk<'a> {
    /// The host's own directory on the test machine.
    pub own: &'a Path,
    /// Where the host's sessions see it.
    pub mounted_at: &'a Path,
}

/// An sshd that [`start`] left listening.
pub struct Sshd {
    /// The host key as `type base64`, for known_hosts.
    pub host_pub: String,
    /// The daemon's pid file. The shell it starts execs sshd, so this names the listener,
    /// not one of the per-connection processes.
    pub pid_file: PathBuf,
}

/// Starts sshd in `node`'s namespace, listening on its address at `port`, with a fresh host
/// key, `client_pub` authorized for root, and `disk` mounted if given. Its keys, config, pid
/// file and log (`sshd.log`) go to `dir`. Returns once sshd accepts connections.
pub fn start(
    node: &dyn Remote,
    dir: &Path,
    port: u16,
    client_pub: &str,
    disk: Option<Disk>,
) -> Sshd {
    let host_key = dir.join("host_key");
    let host_pub = keygen(&host_key);
    std::fs::write(dir.join("authorized_keys"), format!("{client_pub}\n")).unwrap();
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "ListenAddress {addr}\nPort {port}\nHostKey {hk}\nPidFile {d}/sshd.pid\nAuthorizedKeysFile {d}/authorized_keys\n\
             PermitRootLogin yes\nStrictModes no\nUsePAM no\nPrintMotd no\nPrintLastLog no\nUseDNS no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n",
            addr = node.address(),
            hk = host_key.display(),
            d = dir.display()
        ),
    )
    .unwrap();
    // The namespace's commands run in a mount namespace of their own (`ip netns exec`
    // unshares one, with propagation to the host turned off), so these mounts are private to
    // this sshd and its sessions: a /run of its own holds the privilege-separation directory
    // sshd insists on, without touching the host's, and the disk, if any, is this host's.
    let mut mounts = String::from(
        "mount -t tmpfs -o mode=0755,size=1m distest-sshd /run && mkdir -m 0755 /run/sshd",
    );
    if let Some(disk) = disk {
        std::fs::create_dir_all(disk.own).unwrap();
        std::fs::create_dir_all(disk.mounted_at).unwrap();
        mounts.push_str(&format!(
            " && mount --bind {} {}",
            disk.own.display(),
            disk.mounted_at.display()
        ));
    }
    let pid_file = dir.join("daemon.pid");
    let log_file = dir.join("sshd.log");
    let mut spec = DaemonSpec::new("sh", pid_file.clone(), log_file.clone());
    spec.args = vec![
        "-c".into(),
        format!(
            "{mounts} && exec /usr/sbin/sshd -D -e -f {}",
            config.display()
        ),
    ];
    node.start_daemon(&spec).unwrap();
    let addr = SocketAddr::new(node.address(), port);
    let deadline = Instant::now() + LISTEN_TIMEOUT;
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "sshd did not listen on {addr} within {LISTEN_TIMEOUT:?}; see {}",
            log_file.display()
        );
        std::thread::sleep(LISTEN_POLL);
    }
    Sshd { host_pub, pid_file }
}

/// `[address]:port`, as OpenSSH names a host on a non-default port in known_hosts.
pub fn host_entry(address: IpAddr, port: u16) -> String {
    format!("[{address}]:{port}")
}

/// `root@address:port`, as a nodes file or `--node` names an SSH node.
pub fn login(address: IpAddr, port: u16) -> String {
    format!("root@{address}:{port}")
}

/// Client options that log in with `key_file` alone and trust only the hosts in
/// `known_hosts`, as a careful user would run distest.
pub fn client_options(key_file: &Path, known_hosts: &Path, base_dir: PathBuf) -> SshOptions {
    SshOptions {
        key_file: Some(key_file.to_path_buf()),
        known_hosts: Some(known_hosts.to_path_buf()),
        base_dir,
        // The host is a namespace of this machine: a slow connect means sshd is not there.
        connect_timeout: Duration::from_secs(5),
        ..SshOptions::default()
    }
}
