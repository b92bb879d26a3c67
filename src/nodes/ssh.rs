//! SSH nodes: real machines reached with ssh2, as root (or through `sudo -n`).
//!
//! Host keys are checked against known_hosts by default; an unknown or changed key is an
//! error unless `accept_any_host_key` was asked for. Each node keeps a small pool of
//! sessions so that concurrent commands (a nemesis while a client waits) do not queue behind
//! each other; a session that broke is dropped and, when the command had not started yet,
//! the command is retried once on a fresh connection. A command that did start is never
//! re-sent: it may not be idempotent.
//!
//! Timeouts are enforced on the node too (`timeout -k 1 N sh -c ...`, which signals the
//! command's whole process group), so a timed-out command does not keep running there.

use super::{shell_quote, shell_quote_path, ExecOutput, Helper, NodeError, NodeShell, Remote};
use ssh2::{CheckResult, HashType, KnownHostFileKind, Session};
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Idle sessions kept per node; more concurrent commands open extra, short-lived ones.
const MAX_IDLE_SESSIONS: usize = 4;
/// Output kept per stream of a command (the rest is read and dropped).
const MAX_EXEC_CAPTURE_BYTES: usize = super::exec::MAX_CAPTURE_BYTES;
/// Largest file `download` accepts.
const MAX_DOWNLOAD_BYTES: usize = 1 << 30;
/// Budget for one upload or download.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(600);
/// Bytes read from a local file per channel write while uploading: uploads stream, so a
/// 200 MB binary never sits in memory whole.
const UPLOAD_CHUNK_BYTES: usize = 1 << 20;
/// Time allowed past a command's own timeout for the network round trips.
const NETWORK_SLACK: Duration = Duration::from_secs(3);
/// Default directory for node data and logs on SSH hosts.
pub const DEFAULT_REMOTE_BASE_DIR: &str = "/var/lib/distest";

/// Why an SSH node could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("node {0:?} is not of the form [user@]host[:port]")]
    BadTarget(String),
    #[error("could not resolve {host}:{port}: {message}")]
    Resolve {
        host: String,
        port: u16,
        message: String,
    },
    #[error(
        "could not connect to {host}:{port}: {message}; check that sshd runs and the port is open"
    )]
    Connect {
        host: String,
        port: u16,
        message: String,
    },
    #[error("SSH handshake with {host}:{port} failed: {message}")]
    Handshake {
        host: String,
        port: u16,
        message: String,
    },
    #[error("the host key of {host}:{port} ({fingerprint}) is not in {known_hosts}; verify it and add it (e.g. `ssh-keyscan -p {port} {host} >> {known_hosts}`), or pass --ssh-insecure-accept-host-keys")]
    UnknownHostKey {
        host: String,
        port: u16,
        fingerprint: String,
        known_hosts: String,
    },
    #[error("the host key of {host}:{port} ({fingerprint}) does not match the one in {known_hosts}: the host was reinstalled or someone is intercepting the connection; fix the entry if the change is expected")]
    HostKeyMismatch {
        host: String,
        port: u16,
        fingerprint: String,
        known_hosts: String,
    },
    #[error("could not read known hosts file {path}: {message}")]
    KnownHosts { path: String, message: String },
    #[error("SSH authentication as {user} on {host}:{port} failed (tried {tried}); pass --ssh-key or load the key into ssh-agent")]
    Auth {
        user: String,
        host: String,
        port: u16,
        tried: String,
    },
}

/// How to reach SSH nodes: the flags shared by all of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshOptions {
    /// Login user when a node does not name one; commands use `sudo -n` unless it is root.
    pub user: String,
    /// Port when a node does not name one.
    pub port: u16,
    /// Private key; without it ssh-agent, then `~/.ssh/id_{ed25519,ecdsa,rsa}` are tried.
    pub key_file: Option<PathBuf>,
    /// known_hosts file; `~/.ssh/known_hosts` when `None`.
    pub known_hosts: Option<PathBuf>,
    /// Accept unknown and changed host keys (insecure; must be asked for).
    pub accept_any_host_key: bool,
    pub connect_timeout: Duration,
    /// Node data and logs go to `<base_dir>/data` and `<base_dir>/logs` on the host.
    pub base_dir: PathBuf,
}

impl Default for SshOptions {
    fn default() -> Self {
        SshOptions {
            user: "root".to_string(),
            port: 22,
            key_file: None,
            known_hosts: None,
            accept_any_host_key: false,
            connect_timeout: Duration::from_secs(10),
            base_dir: PathBuf::from(DEFAULT_REMOTE_BASE_DIR),
        }
    }
}

/// `[user@]host[:port]` (IPv6 as `[addr]:port`), as in a nodes file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshTarget {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

impl std::str::FromStr for SshTarget {
    type Err = SshError;

    fn from_str(s: &str) -> Result<Self, SshError> {
        let bad = || SshError::BadTarget(s.to_string());
        let s = s.trim();
        let (user, rest) = match s.rsplit_once('@') {
            Some((u, r)) if !u.is_empty() => (Some(u.to_string()), r),
            Some(_) => return Err(bad()),
            None => (None, s),
        };
        let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
            let (host, after) = inner.split_once(']').ok_or_else(bad)?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p.parse().map_err(|_| bad())?),
                None if after.is_empty() => None,
                None => return Err(bad()),
            };
            (host.to_string(), port)
        } else if rest.matches(':').count() > 1 {
            (rest.to_string(), None) // a bare IPv6 address
        } else {
            match rest.split_once(':') {
                Some((h, p)) => (h.to_string(), Some(p.parse().map_err(|_| bad())?)),
                None => (rest.to_string(), None),
            }
        };
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(bad());
        }
        Ok(SshTarget { user, host, port })
    }
}

impl std::fmt::Display for SshTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(user) = &self.user {
            write!(f, "{user}@")?;
        }
        match (self.host.contains(':'), self.port) {
            (true, Some(port)) => write!(f, "[{}]:{port}", self.host),
            (false, Some(port)) => write!(f, "{}:{port}", self.host),
            (_, None) => write!(f, "{}", self.host),
        }
    }
}

/// Reads a nodes file: one `[user@]host[:port]` per line; `#` starts a comment.
pub fn parse_nodes_file(text: &str) -> Result<Vec<SshTarget>, SshError> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::parse)
        .collect()
}

/// A host reached over SSH.
pub struct SshNode {
    name: String,
    host: String,
    port: u16,
    user: String,
    address: IpAddr,
    options: SshOptions,
    data_dir: PathBuf,
    log_dir: PathBuf,
    idle: Mutex<Vec<Session>>,
    /// Set once this run uploaded distest as the node's helper (and saw it run).
    helper_installed: Mutex<bool>,
}

impl std::fmt::Debug for SshNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshNode")
            .field("name", &self.name)
            .field("user", &self.user)
            .field("port", &self.port)
            .finish()
    }
}

/// A command that failed on the way, and whether it may have started on the node.
enum ChannelError {
    /// Opening the channel or sending the command failed: it did not run; retry is safe.
    NotStarted(String),
    /// The connection broke or stalled after the command was sent.
    Broken(String),
    /// The local deadline passed.
    Deadline,
    /// Reading the local data to send failed (after the command started).
    Input(String),
}

impl SshNode {
    /// Connects to `target` (checking its host key and authenticating) and creates the
    /// node's data and log directories. The node is named after its host.
    pub fn connect(target: &SshTarget, options: &SshOptions) -> Result<SshNode, NodeError> {
        let port = target.port.unwrap_or(options.port);
        let unreachable = |e: SshError| NodeError::Unreachable {
            node: target.host.clone(),
            message: e.to_string(),
        };
        let address = resolve(&target.host, port).map_err(unreachable)?.ip();
        let node = SshNode {
            name: target.host.clone(),
            host: target.host.clone(),
            port,
            user: target.user.clone().unwrap_or_else(|| options.user.clone()),
            address,
            data_dir: options.base_dir.join("data"),
            log_dir: options.base_dir.join("logs"),
            options: options.clone(),
            idle: Mutex::new(Vec::new()),
            helper_installed: Mutex::new(false),
        };
        let session = node.open_session().map_err(unreachable)?;
        node.checkin(session);
        let dirs = format!(
            "mkdir -p {} {}",
            shell_quote_path(&node.data_dir),
            shell_quote_path(&node.log_dir)
        );
        node.exec_ok(&dirs, Duration::from_secs(30))?;
        Ok(node)
    }

    fn known_hosts_path(&self) -> PathBuf {
        self.options.known_hosts.clone().unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/root"))
                .join(".ssh/known_hosts")
        })
    }

    fn open_session(&self) -> Result<Session, SshError> {
        let (host, port) = (self.host.clone(), self.port);
        let addr = resolve(&host, port)?;
        let tcp = TcpStream::connect_timeout(&addr, self.options.connect_timeout).map_err(|e| {
            SshError::Connect {
                host: host.clone(),
                port,
                message: e.to_string(),
            }
        })?;
        let handshake = |e: ssh2::Error| SshError::Handshake {
            host: host.clone(),
            port,
            message: e.message().to_string(),
        };
        let mut session = Session::new().map_err(handshake)?;
        session.set_tcp_stream(tcp);
        session.set_timeout(
            self.options
                .connect_timeout
                .as_millis()
                .min(u32::MAX as u128) as u32,
        );
        session.handshake().map_err(handshake)?;
        self.check_host_key(&session)?;
        self.authenticate(&session)?;
        Ok(session)
    }

    fn check_host_key(&self, session: &Session) -> Result<(), SshError> {
        let path = self.known_hosts_path();
        let shown = path.display().to_string();
        let fingerprint = session
            .host_key_hash(HashType::Sha256)
            .map(|h| format!("SHA256:{}", base64_unpadded(h)))
            .unwrap_or_else(|| "unknown fingerprint".to_string());
        let (key, _) = session.host_key().ok_or_else(|| SshError::Handshake {
            host: self.host.clone(),
            port: self.port,
            message: "the server sent no host key".to_string(),
        })?;
        let mut known = session.known_hosts().map_err(|e| SshError::KnownHosts {
            path: shown.clone(),
            message: e.message().to_string(),
        })?;
        let result = if path.exists() {
            known
                .read_file(&path, KnownHostFileKind::OpenSSH)
                .map_err(|e| SshError::KnownHosts {
                    path: shown.clone(),
                    message: e.message().to_string(),
                })?;
            known.check_port(&self.host, self.port, key)
        } else {
            CheckResult::NotFound
        };
        let refusal = match result {
            CheckResult::Match => return Ok(()),
            CheckResult::NotFound | CheckResult::Failure => SshError::UnknownHostKey {
                host: self.host.clone(),
                port: self.port,
                fingerprint,
                known_hosts: shown,
            },
            CheckResult::Mismatch => SshError::HostKeyMismatch {
                host: self.host.clone(),
                port: self.port,
                fingerprint,
                known_hosts: shown,
            },
        };
        if self.options.accept_any_host_key {
            tracing::warn!("accepting an unverified host key as asked: {refusal}");
            return Ok(());
        }
        Err(refusal)
    }

    fn authenticate(&self, session: &Session) -> Result<(), SshError> {
        let mut tried = Vec::new();
        let keys: Vec<PathBuf> = match &self.options.key_file {
            Some(key) => vec![key.clone()],
            None => {
                tried.push("ssh-agent".to_string());
                if session.userauth_agent(&self.user).is_ok() && session.authenticated() {
                    return Ok(());
                }
                let home = std::env::var_os("HOME")
                    .map(PathBuf::from)
                    .unwrap_or_default();
                ["id_ed25519", "id_ecdsa", "id_rsa"]
                    .iter()
                    .map(|k| home.join(".ssh").join(k))
                    .filter(|p| p.exists())
                    .collect()
            }
        };
        for key in keys {
            tried.push(key.display().to_string());
            if session
                .userauth_pubkey_file(&self.user, None, &key, None)
                .is_ok()
                && session.authenticated()
            {
                return Ok(());
            }
        }
        Err(SshError::Auth {
            user: self.user.clone(),
            host: self.host.clone(),
            port: self.port,
            tried: tried.join(", "),
        })
    }

    fn checkout(&self) -> Result<(Session, bool), SshError> {
        let pooled = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match pooled {
            Some(s) => Ok((s, true)),
            None => Ok((self.open_session()?, false)),
        }
    }

    fn checkin(&self, session: Session) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE_SESSIONS {
            idle.push(session);
        }
    }

    /// Runs `command` as root with `timeout` (enforced on the node and, with slack for the
    /// network, here), feeding `stdin`. Retries once on a fresh session when a pooled one
    /// turned out dead before the command started.
    fn run(
        &self,
        command: &str,
        timeout: Duration,
        mut stdin: Option<&mut (dyn Read + '_)>,
        stdout_cap: usize,
    ) -> Result<(i32, Vec<u8>, Vec<u8>), NodeError> {
        let remote = wrap_command(&self.user, command, timeout);
        let deadline = super::exec::deadline_after(timeout.saturating_add(NETWORK_SLACK));
        let unreachable = |message: String| NodeError::Unreachable {
            node: self.name.clone(),
            message,
        };
        for attempt in 0..2 {
            let (session, pooled) = self.checkout().map_err(|e| unreachable(e.to_string()))?;
            // `NotStarted` is only reported before any stdin was read, so a retry sends it all.
            match run_channel(&session, &remote, stdin.as_deref_mut(), stdout_cap, deadline) {
                Ok(out) => {
                    self.checkin(session);
                    return Ok(out);
                }
                Err(ChannelError::NotStarted(m)) if pooled && attempt == 0 => {
                    tracing::debug!(node = %self.name, "pooled SSH session is dead ({m}); reconnecting");
                }
                Err(ChannelError::NotStarted(m)) => {
                    return Err(unreachable(format!("could not start the command: {m}")))
                }
                Err(ChannelError::Broken(m)) => {
                    return Err(unreachable(format!("the SSH connection broke while the command ran (it may or may not have taken effect): {m}")))
                }
                Err(ChannelError::Input(m)) => {
                    return Err(unreachable(format!("could not read the data to send: {m}")))
                }
                Err(ChannelError::Deadline) => {
                    return Err(NodeError::Timeout {
                        node: self.name.clone(),
                        command: command.to_string(),
                        timeout_ms: timeout.as_millis() as u64,
                    })
                }
            }
        }
        Err(unreachable(
            "could not start the command after reconnecting".to_string(),
        ))
    }
}

/// The command line sent over SSH: `command` under `sh -c`, killed with its process group
/// by `timeout` on the node, through `sudo -n` unless the login user is root.
fn wrap_command(user: &str, command: &str, timeout: Duration) -> String {
    let secs = timeout.as_secs_f64().ceil().max(1.0) as u64;
    let inner = format!("timeout -k 1 {secs} sh -c {}", shell_quote(command));
    if user == "root" {
        inner
    } else {
        format!("sudo -n {inner}")
    }
}

/// The node-side half of an upload: stdin into `tmp` beside `remote`, then rename. Writing
/// beside and renaming replaces a running binary instead of overwriting it in place. The
/// size check matters because a dropped connection ends `cat` with a plain EOF: without it a
/// truncated file would be renamed into place.
fn upload_script(dir: &Path, tmp: &Path, remote: &Path, size_bytes: u64, mode: u32) -> String {
    format!(
        "mkdir -p {d} && cat > {t} && got=$(wc -c < {t}) \
         && {{ [ \"$got\" -eq {size_bytes} ] || {{ echo \"only $got of {size_bytes} bytes arrived\" >&2; false; }}; }} \
         && chmod {mode:o} {t} && mv -f {t} {r} || {{ rm -f {t}; exit 1; }}",
        d = shell_quote_path(dir),
        t = shell_quote_path(tmp),
        r = shell_quote_path(remote),
    )
}

/// Runs one command on `session`; reads stdout and stderr without blocking on either so
/// neither can fill up and stall the other.
fn run_channel(
    session: &Session,
    command: &str,
    stdin: Option<&mut (dyn Read + '_)>,
    stdout_cap: usize,
    deadline: Instant,
) -> Result<(i32, Vec<u8>, Vec<u8>), ChannelError> {
    let msg = |e: ssh2::Error| e.message().to_string();
    session.set_blocking(true);
    let mut channel = session
        .channel_session()
        .map_err(|e| ChannelError::NotStarted(msg(e)))?;
    channel
        .exec(command)
        .map_err(|e| ChannelError::NotStarted(msg(e)))?;
    if let Some(input) = stdin {
        let mut chunk = vec![0u8; UPLOAD_CHUNK_BYTES];
        loop {
            let n = match input.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(ChannelError::Input(e.to_string())),
            };
            channel
                .write_all(&chunk[..n])
                .map_err(|e| ChannelError::Broken(e.to_string()))?;
            if Instant::now() >= deadline {
                return Err(ChannelError::Deadline);
            }
        }
    }
    channel
        .send_eof()
        .map_err(|e| ChannelError::Broken(msg(e)))?;

    session.set_blocking(false);
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let mut buf = [0u8; 32 * 1024];
    let mut result = Ok(());
    loop {
        let mut progressed = false;
        for (which, cap) in [(0, stdout_cap), (1, MAX_EXEC_CAPTURE_BYTES)] {
            let read = if which == 0 {
                channel.read(&mut buf)
            } else {
                channel.stderr().read(&mut buf)
            };
            match read {
                Ok(0) => {}
                Ok(n) => {
                    progressed = true;
                    let sink = if which == 0 { &mut stdout } else { &mut stderr };
                    let room = cap.saturating_sub(sink.len());
                    sink.extend_from_slice(&buf[..n.min(room)]);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => {
                    result = Err(ChannelError::Broken(e.to_string()));
                    break;
                }
            }
        }
        if result.is_err() || (!progressed && channel.eof()) {
            break;
        }
        if Instant::now() >= deadline {
            result = Err(ChannelError::Deadline);
            break;
        }
        if !progressed {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    session.set_blocking(true);
    result?;
    channel
        .wait_close()
        .map_err(|e| ChannelError::Broken(msg(e)))?;
    let status = channel
        .exit_status()
        .map_err(|e| ChannelError::Broken(msg(e)))?;
    Ok((status, stdout, stderr))
}

fn resolve(host: &str, port: u16) -> Result<SocketAddr, SshError> {
    let err = |message: String| SshError::Resolve {
        host: host.to_string(),
        port,
        message,
    };
    (host, port)
        .to_socket_addrs()
        .map_err(|e| err(e.to_string()))?
        .next()
        .ok_or_else(|| err("no address found".to_string()))
}

/// Base64 without padding, as `ssh-keygen -l` prints SHA256 fingerprints.
fn base64_unpadded(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

impl NodeShell for SshNode {
    fn name(&self) -> &str {
        &self.name
    }

    fn address(&self) -> IpAddr {
        self.address
    }

    fn exec(&self, command: &str, timeout: Duration) -> Result<ExecOutput, NodeError> {
        let started = Instant::now();
        let (status, stdout, stderr) = self.run(command, timeout, None, MAX_EXEC_CAPTURE_BYTES)?;
        // `timeout` exits 124 (TERM worked) or 137 (needed KILL) when it fired.
        if matches!(status, 124 | 137) && started.elapsed() >= timeout {
            return Err(NodeError::Timeout {
                node: self.name.clone(),
                command: command.to_string(),
                timeout_ms: timeout.as_millis() as u64,
            });
        }
        Ok(ExecOutput {
            status,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        })
    }

    fn is_local(&self) -> bool {
        false
    }

    /// `<base>/bin/distest`, state in `<base>/run`.
    fn helper(&self) -> Option<Helper> {
        Some(Helper {
            program: self
                .options
                .base_dir
                .join("bin/distest")
                .to_string_lossy()
                .into_owned(),
            state_dir: self.options.base_dir.join("run"),
        })
    }

    /// Uploads this binary once per run (a later run uploads again: the control node's
    /// build may have changed since).
    fn install_helper(&self) -> Result<Helper, NodeError> {
        let helper = self.helper().expect("SSH nodes always have a helper path");
        // Held while uploading: concurrent callers wait rather than upload twice.
        let mut installed = self
            .helper_installed
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if !*installed {
            super::helper::upload_self(self, Path::new(&helper.program))?;
            *installed = true;
        }
        Ok(helper)
    }
}

impl Remote for SshNode {
    fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    fn upload(&self, local: &Path, remote: &Path) -> Result<(), NodeError> {
        use std::os::unix::fs::PermissionsExt;
        let fail = |message: String| NodeError::Unreachable {
            node: self.name.clone(),
            message: format!(
                "could not upload {} to {}: {message}",
                local.display(),
                remote.display()
            ),
        };
        let file = std::fs::File::open(local).map_err(|e| fail(e.to_string()))?;
        let metadata = file.metadata().map_err(|e| fail(e.to_string()))?;
        let size_bytes = metadata.len();
        let mode = metadata.permissions().mode() & 0o7777;
        let dir = remote
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let file_name = remote
            .file_name()
            .ok_or_else(|| fail("the destination names no file".into()))?;
        let tmp = dir.join(format!(".{}.dt-upload", file_name.to_string_lossy()));
        let script = upload_script(dir, &tmp, remote, size_bytes, mode);
        // Exactly the size announced, even if the file grows meanwhile.
        let mut input = file.take(size_bytes);
        let (status, _, stderr) = self.run(&script, TRANSFER_TIMEOUT, Some(&mut input), 0)?;
        if status != 0 {
            return Err(fail(String::from_utf8_lossy(&stderr).trim().to_string()));
        }
        Ok(())
    }

    fn download(&self, remote: &Path, local: &Path) -> Result<(), NodeError> {
        let fail = |message: String| NodeError::Unreachable {
            node: self.name.clone(),
            message: format!(
                "could not download {} to {}: {message}",
                remote.display(),
                local.display()
            ),
        };
        let script = format!(
            "size=$(wc -c < {r}) || exit 1; [ \"$size\" -le {MAX_DOWNLOAD_BYTES} ] || {{ echo \"the file has $size bytes, more than the {MAX_DOWNLOAD_BYTES} a download takes\" >&2; exit 1; }}; cat {r}",
            r = shell_quote_path(remote)
        );
        let (status, data, stderr) =
            self.run(&script, TRANSFER_TIMEOUT, None, MAX_DOWNLOAD_BYTES)?;
        if status != 0 {
            return Err(fail(String::from_utf8_lossy(&stderr).trim().to_string()));
        }
        if let Some(dir) = local.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
        }
        std::fs::write(local, data).map_err(|e| fail(e.to_string()))
    }

    fn machine_id(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    fn exec_machine(&self, command: &str, timeout: Duration) -> Result<ExecOutput, NodeError> {
        self.exec(command, timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_user_host_and_port() {
        let t: SshTarget = "admin@db1:2222".parse().unwrap();
        assert_eq!(
            (t.user.as_deref(), t.host.as_str(), t.port),
            (Some("admin"), "db1", Some(2222))
        );
        let t: SshTarget = "10.0.0.5".parse().unwrap();
        assert_eq!((t.user, t.host.as_str(), t.port), (None, "10.0.0.5", None));
        let t: SshTarget = "[::1]:22".parse().unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", Some(22)));
        let t: SshTarget = "fe80::1".parse().unwrap();
        assert_eq!((t.host.as_str(), t.port), ("fe80::1", None));
        for text in ["admin@db1:2222", "db1", "[::1]:22", "fe80::1"] {
            assert_eq!(text.parse::<SshTarget>().unwrap().to_string(), text);
        }
        for bad in ["", "@host", "host:port", "host:99999", "a b", "[::1"] {
            assert!(bad.parse::<SshTarget>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn nodes_file_skips_comments_and_blank_lines() {
        let text = "# cluster\nn1\n\n  root@n2:2200  # second\n#n3\n";
        let targets = parse_nodes_file(text).unwrap();
        assert_eq!(targets.len(), 2);
        assert_eq!(targets[1].port, Some(2200));
        assert!(parse_nodes_file("n1\nbad host\n").is_err());
    }

    #[test]
    fn commands_run_under_a_node_side_timeout_and_sudo_for_non_root() {
        let root = wrap_command("root", "echo 'a b'", Duration::from_millis(1500));
        assert_eq!(root, r#"timeout -k 1 2 sh -c 'echo '\''a b'\'''"#);
        let ops = wrap_command("ops", "true", Duration::from_secs(5));
        assert_eq!(ops, "sudo -n timeout -k 1 5 sh -c true");
    }

    /// Runs the upload script locally with `sent` on stdin, announcing `announced` bytes.
    fn run_upload_script(dir: &Path, sent: &[u8], announced: u64) -> std::process::Output {
        let remote = dir.join("sub/file.bin");
        let tmp = dir.join("sub/.file.bin.dt-upload");
        let script = upload_script(&dir.join("sub"), &tmp, &remote, announced, 0o640);
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(sent).unwrap();
        child.wait_with_output().unwrap()
    }

    #[test]
    fn upload_script_installs_complete_files_and_refuses_truncated_ones() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("dt-upload-script-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let remote = dir.join("sub/file.bin");

        let out = run_upload_script(&dir, b"0123456789", 10);
        assert!(out.status.success(), "{out:?}");
        assert_eq!(std::fs::read(&remote).unwrap(), b"0123456789");
        let mode = std::fs::metadata(&remote).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o640);

        // A transfer cut short (the connection dropped: cat saw EOF early) keeps the old
        // file and leaves no temporary one.
        let out = run_upload_script(&dir, b"abc", 10);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("only 3 of 10 bytes arrived"), "{stderr}");
        assert_eq!(std::fs::read(&remote).unwrap(), b"0123456789");
        assert!(!dir.join("sub/.file.bin.dt-upload").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn base64_matches_known_vectors() {
        assert_eq!(base64_unpadded(b""), "");
        assert_eq!(base64_unpadded(b"f"), "Zg");
        assert_eq!(base64_unpadded(b"fo"), "Zm8");
        assert_eq!(base64_unpadded(b"foo"), "Zm9v");
        assert_eq!(base64_unpadded(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn unreachable_host_is_a_clear_error_not_a_hang() {
        let options = SshOptions {
            connect_timeout: Duration::from_millis(500),
            ..SshOptions::default()
        };
        // Port 1 on loopback: nothing listens, the connection is refused at once.
        let target: SshTarget = "127.0.0.1:1".parse().unwrap();
        let err = SshNode::connect(&target, &options).unwrap_err().to_string();
        assert!(err.contains("could not connect to 127.0.0.1:1"), "{err}");
    }
}
