//! The client protocol: a [`Client`] that drives a user's program over JSON lines.
//!
//! One program runs per worker, started with `sh -c COMMAND` in the target file's folder,
//! in a process group of its own. distest writes one JSON object per line to its stdin and
//! reads one per line from its stdout; its stderr goes to the run's client log.
//!
//! ```text
//! → {"type":"open","node":"n2","ip":"10.77.0.12","nodes":{"n1":"10.77.0.11",...},"settings":{...},"workload":"set"}
//! ← {"type":"ok"}
//! → {"type":"invoke","f":"read","key":"3","value":null}
//! ← {"type":"ok","value":4} | {"type":"fail","error":"..."} | {"type":"info","error":"..."}
//! ```
//!
//! Honesty rules. Whatever goes wrong while an op is with the program — no answer within
//! the op timeout, the program exits, a line that is not JSON or not an answer to that op —
//! the op is recorded `info`: it was handed over and may have taken effect. Never `fail`
//! (that would claim it did not happen) and never `ok`. A note naming the offending line
//! goes to the log, the program is killed (its whole process group) and the next op gets a
//! fresh one, opened again. Only an op that was never handed to any program is `fail`.
//! Before each op the pipe is checked for output nobody asked for: a second answer to the
//! previous op would otherwise be taken as the answer to the next one.
//!
//! When the client is dropped its program's stdin is closed, which tells it to exit; one
//! that is still there after [`EXIT_GRACE`] is killed.

use distest_checkers::OpType;
use distest_workloads::{Client, Completion, OpRequest};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};

/// Longest line accepted from a program: a set's read of a long run is a few MB.
pub const MAX_LINE_BYTES: usize = 64 << 20;
/// How long a dropped client's program has to exit after its stdin closed.
pub const EXIT_GRACE: Duration = Duration::from_secs(2);
/// Lines of a program's stderr kept to quote when it fails to open or exits.
const STDERR_TAIL_LINES: usize = 8;
/// How much of an offending line a note quotes.
const QUOTE_BYTES: usize = 200;

/// Where programs' stderr and distest's notes about them go: one file per run, each line
/// prefixed with the program it is about. Notes also go to the tracing log.
#[derive(Clone, Default)]
pub struct ClientLog {
    file: Option<Arc<Mutex<LogFile>>>,
}

/// The log's file: opened at the first line once the run directory exists.
enum LogFile {
    Pending(crate::targets::registry::RunDirSlot),
    Open(std::fs::File),
    Failed,
}

fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

impl ClientLog {
    /// A log appending to `path` (created if missing).
    pub fn to_file(path: &Path) -> std::io::Result<ClientLog> {
        Ok(ClientLog {
            file: Some(Arc::new(Mutex::new(LogFile::Open(open_append(path)?)))),
        })
    }

    /// `clients.log` in the run's directory, opened at the first line (the directory is
    /// created after the target is built, before any client starts). Lines written before
    /// it exists only go to the tracing log.
    pub fn in_run_dir(dir: crate::targets::registry::RunDirSlot) -> ClientLog {
        ClientLog {
            file: Some(Arc::new(Mutex::new(LogFile::Pending(dir)))),
        }
    }

    /// A log that only traces (tests, benches).
    pub fn discard() -> ClientLog {
        ClientLog::default()
    }

    fn write(&self, who: &str, kind: &str, text: &str) {
        if let Some(file) = &self.file {
            let stamp = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
            // One write per line, so lines of concurrent clients never interleave.
            let line = format!("{stamp} [{who}] {kind}: {text}\n");
            let mut f = file.lock().unwrap_or_else(|e| e.into_inner());
            if let LogFile::Pending(dir) = &*f {
                let Some(dir) = dir.get() else { return };
                let path = dir.join(distest_rundir::files::CLIENTS_LOG);
                *f = match open_append(&path) {
                    Ok(file) => LogFile::Open(file),
                    Err(e) => {
                        tracing::warn!("could not open {}: {e}", path.display());
                        LogFile::Failed
                    }
                };
            }
            if let LogFile::Open(f) = &mut *f {
                let _ = f.write_all(line.as_bytes());
            }
        }
    }

    fn stderr(&self, who: &str, text: &str) {
        self.write(who, "stderr", text);
    }

    /// distest's own remark about a program (a timeout, a crash, a bad line).
    fn note(&self, who: &str, text: &str) {
        tracing::warn!("client {who}: {text}");
        self.write(who, "distest", text);
    }
}

/// What every program of a run is started with and told when it opens.
#[derive(Clone)]
pub struct ClientSpec {
    /// The `[client] command`, templates expanded; run with `sh -c`.
    pub command: String,
    /// The program's working directory: the target file's folder.
    pub cwd: PathBuf,
    /// Every node's name and address, in node order.
    pub nodes: Vec<(String, String)>,
    /// `--set` settings, passed through.
    pub settings: BTreeMap<String, String>,
    pub workload: String,
    /// How long an op may wait for its answer before it is recorded `info`.
    pub op_timeout: Duration,
    /// How long a fresh program may take to answer `open`.
    pub open_timeout: Duration,
    pub log: ClientLog,
}

/// Why a program could not be opened; one sentence.
#[derive(Debug, thiserror::Error)]
#[error("client `{command}` for {node}: {message}")]
pub struct OpenError {
    pub command: String,
    pub node: String,
    pub message: String,
}

/// The `open` message. `nodes` keeps node order (n1, n2, ..., n10), which a map would not.
#[derive(Serialize)]
struct Open<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    node: &'a str,
    ip: &'a str,
    nodes: OrderedNodes<'a>,
    settings: &'a BTreeMap<String, String>,
    workload: &'a str,
}

struct OrderedNodes<'a>(&'a [(String, String)]);

impl Serialize for OrderedNodes<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (name, ip) in self.0 {
            map.serialize_entry(name, ip)?;
        }
        map.end()
    }
}

#[derive(Serialize)]
struct Invoke<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    f: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<std::borrow::Cow<'a, str>>,
    value: &'a Value,
}

/// The wire form of a key: a string (numbers as their decimal text).
fn wire_key(key: &Value) -> std::borrow::Cow<'_, str> {
    match key {
        Value::String(s) => std::borrow::Cow::Borrowed(s),
        other => std::borrow::Cow::Owned(other.to_string()),
    }
}

/// A running program.
struct Session {
    child: Child,
    pid: u32,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    /// The task forwarding stderr; it ends when the program closes stderr.
    stderr_task: Option<tokio::task::JoinHandle<()>>,
    /// `n2 pid 1234`, for log lines.
    who: String,
}

/// How reading one line ended.
enum Line {
    Complete,
    Eof,
    TooLong,
}

impl Session {
    async fn read_line(&mut self, buf: &mut Vec<u8>) -> std::io::Result<Line> {
        buf.clear();
        loop {
            let available = self.stdout.fill_buf().await?;
            if available.is_empty() {
                return Ok(Line::Eof);
            }
            if let Some(i) = available.iter().position(|&b| b == b'\n') {
                buf.extend_from_slice(&available[..i]);
                self.stdout.consume(i + 1);
                if buf.last() == Some(&b'\r') {
                    buf.pop();
                }
                return Ok(Line::Complete);
            }
            let n = available.len();
            buf.extend_from_slice(available);
            self.stdout.consume(n);
            if buf.len() > MAX_LINE_BYTES {
                return Ok(Line::TooLong);
            }
        }
    }

    /// True when the program wrote something (or closed stdout) while no op was waiting:
    /// checked without blocking.
    async fn spoke_out_of_turn(&mut self) -> bool {
        tokio::select! {
            biased;
            _ = self.stdout.fill_buf() => true,
            _ = std::future::ready(()) => false,
        }
    }

    /// The exit status if the program has exited within `wait`, as words.
    async fn exit_status(&mut self, wait: Duration) -> String {
        match tokio::time::timeout(wait, self.child.wait()).await {
            Ok(Ok(status)) => describe_status(status),
            Ok(Err(e)) => format!("its exit status is unknown ({e})"),
            Err(_) => "it closed its stdout but is still running".to_string(),
        }
    }

    /// The program's last stderr lines, once what it wrote before exiting is forwarded.
    async fn stderr_tail(&mut self) -> String {
        if let Some(task) = self.stderr_task.take() {
            let _ = tokio::time::timeout(Duration::from_millis(500), task).await;
        }
        let tail = self.stderr_tail.lock().unwrap_or_else(|e| e.into_inner());
        if tail.is_empty() {
            String::new()
        } else {
            format!(
                "; its last stderr lines: {}",
                tail.iter().cloned().collect::<Vec<_>>().join(" / ")
            )
        }
    }

    /// SIGKILLs the program's whole process group (a shell wrapper's children too).
    fn kill(&mut self) {
        kill_group(self.pid);
        let _ = self.child.start_kill();
    }
}

fn kill_group(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        if pid > 1 {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

fn describe_status(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("it exited with status {code}"),
        (None, Some(sig)) => format!("it was killed by signal {sig}"),
        _ => "it exited".to_string(),
    }
}

/// Quotes at most [`QUOTE_BYTES`] of a line, as JSON string syntax (so control bytes show).
fn quote(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(&line[..line.len().min(QUOTE_BYTES)]);
    let mut q = serde_json::to_string(&text).unwrap_or_default();
    if line.len() > QUOTE_BYTES {
        let _ = write!(q, " (first {QUOTE_BYTES} of {} bytes)", line.len());
    }
    q
}

/// A short description of an op for notes: `read key 3`, `txn`.
fn describe(op: &OpRequest) -> String {
    match &op.key {
        Some(k) => format!("{} (key {})", op.f, wire_key(k)),
        None => op.f.clone(),
    }
}

/// One worker's client: its program and what it needs to start a fresh one.
pub struct ProcessClient {
    spec: Arc<ClientSpec>,
    node: usize,
    session: Option<Session>,
    out: Vec<u8>,
    line: Vec<u8>,
    /// The op handed to the program and not yet answered, with when it was sent: if the
    /// client is dropped meanwhile (the run's own timeout fired first), the note says so.
    in_flight: Option<(String, Instant)>,
}

impl ProcessClient {
    /// Starts the program for node number `node` (an index into `spec.nodes`) and opens
    /// it; fails when the program does not answer `open` with `ok`.
    pub async fn open(spec: Arc<ClientSpec>, node: usize) -> Result<ProcessClient, OpenError> {
        let mut client = ProcessClient {
            spec,
            node,
            session: None,
            out: Vec::with_capacity(256),
            line: Vec::with_capacity(256),
            in_flight: None,
        };
        client.session = Some(client.start_session().await?);
        Ok(client)
    }

    /// The pid of the running program, if one runs.
    pub fn pid(&self) -> Option<u32> {
        self.session.as_ref().map(|s| s.pid)
    }

    fn open_error(&self, message: String) -> OpenError {
        OpenError {
            command: self.spec.command.clone(),
            node: self
                .spec
                .nodes
                .get(self.node)
                .map_or_else(|| format!("node #{}", self.node + 1), |n| n.0.clone()),
            message,
        }
    }

    async fn start_session(&mut self) -> Result<Session, OpenError> {
        let spec = self.spec.clone();
        let Some((node, ip)) = spec.nodes.get(self.node) else {
            return Err(self.open_error(format!("there is no node #{} in this run", self.node + 1)));
        };
        let mut command = tokio::process::Command::new("sh");
        command
            .arg("-c")
            .arg(&spec.command)
            .current_dir(&spec.cwd)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|e| {
            self.open_error(format!("could not start it in {}: {e}", spec.cwd.display()))
        })?;
        let pid = child.id().unwrap_or(0);
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            kill_group(pid);
            return Err(self.open_error("its standard streams could not be piped".into()));
        };
        let who = format!("{node} pid {pid}");
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        let stderr_task = tokio::spawn(forward_stderr(
            stderr,
            spec.log.clone(),
            who.clone(),
            stderr_tail.clone(),
        ));
        let mut session = Session {
            child,
            pid,
            stdin,
            stdout: BufReader::with_capacity(64 << 10, stdout),
            stderr_tail,
            stderr_task: Some(stderr_task),
            who,
        };
        let open = Open {
            kind: "open",
            node,
            ip,
            nodes: OrderedNodes(&spec.nodes),
            settings: &spec.settings,
            workload: &spec.workload,
        };
        self.out.clear();
        serde_json::to_writer(&mut self.out, &open).expect("serializing to memory works");
        self.out.push(b'\n');
        let answer = tokio::time::timeout(spec.open_timeout, async {
            session.stdin.write_all(&self.out).await?;
            session.stdin.flush().await?;
            session.read_line(&mut self.line).await
        })
        .await;
        let problem = match answer {
            Err(_) => format!(
                "it did not answer open within {:.1} s",
                spec.open_timeout.as_secs_f64()
            ),
            Ok(Err(e)) => format!(
                "it could not be sent open ({e}); {}",
                session.exit_status(Duration::from_millis(500)).await
            ),
            Ok(Ok(Line::Eof)) => format!(
                "it closed its stdout before answering open; {}",
                session.exit_status(Duration::from_millis(500)).await
            ),
            Ok(Ok(Line::TooLong)) => {
                format!("its answer to open is longer than {MAX_LINE_BYTES} bytes")
            }
            Ok(Ok(Line::Complete)) => match serde_json::from_slice::<Value>(&self.line) {
                Ok(v) if v.get("type").and_then(Value::as_str) == Some("ok") => {
                    return Ok(session);
                }
                Ok(v) => match v.get("type").and_then(Value::as_str) {
                    Some("fail" | "info") => format!(
                        "it refused open: {}",
                        v.get("error")
                            .map_or("no error given".into(), Value::to_string)
                    ),
                    _ => format!(
                        "it answered open with {}, not {{\"type\":\"ok\"}}",
                        quote(&self.line)
                    ),
                },
                Err(e) => format!(
                    "it answered open with a line that is not JSON ({e}): {}",
                    quote(&self.line)
                ),
            },
        };
        let tail = session.stderr_tail().await;
        session.kill();
        Err(self.open_error(format!("{problem}{tail}")))
    }

    /// Kills the program after a note saying why.
    fn discard_session(&mut self, why: &str) {
        if let Some(mut s) = self.session.take() {
            self.spec.log.note(
                &s.who,
                &format!("{why}; killing it, a fresh client replaces it"),
            );
            s.kill();
        }
    }

    /// The op's `info` completion, with a note naming what happened, and the program
    /// replaced.
    fn indeterminate(&mut self, op: &OpRequest, error: Value, note: String) -> Completion {
        self.in_flight = None;
        self.discard_session(&format!(
            "{note}; op {} recorded as info (it may or may not have taken effect)",
            describe(op)
        ));
        Completion::info(op.value.clone(), error)
    }

    async fn exchange(&mut self, op: &OpRequest) -> Completion {
        // A live program that spoke out of turn (a second answer, a stray print) or died
        // between ops is replaced before the op is handed over.
        if let Some(session) = self.session.as_mut() {
            if session.spoke_out_of_turn().await {
                let what = match session.read_line(&mut self.line).await {
                    Ok(Line::Complete) | Ok(Line::TooLong) => {
                        format!("it wrote {} while no op was waiting", quote(&self.line))
                    }
                    Ok(Line::Eof) => format!(
                        "it closed its stdout between ops; {}{}",
                        session.exit_status(Duration::from_millis(200)).await,
                        session.stderr_tail().await
                    ),
                    Err(e) => format!("its stdout failed between ops ({e})"),
                };
                self.discard_session(&what);
            }
        }
        if self.session.is_none() {
            match self.start_session().await {
                Ok(s) => self.session = Some(s),
                Err(e) => {
                    // Never handed to a program: it certainly did not happen.
                    return Completion::fail(op.value.clone(), format!("client unavailable: {e}"));
                }
            }
        }
        self.out.clear();
        let invoke = Invoke {
            kind: "invoke",
            f: &op.f,
            key: op.key.as_ref().map(wire_key),
            value: &op.value,
        };
        serde_json::to_writer(&mut self.out, &invoke).expect("serializing to memory works");
        self.out.push(b'\n');
        self.in_flight = Some((describe(op), Instant::now()));
        let timeout = self.spec.op_timeout;
        let session = self.session.as_mut().expect("started above");
        let answer = tokio::time::timeout(timeout, async {
            session.stdin.write_all(&self.out).await?;
            session.stdin.flush().await?;
            session.read_line(&mut self.line).await
        })
        .await;
        match answer {
            Err(_) => self.indeterminate(
                op,
                json!("timeout"),
                format!(
                    "it did not answer within the op timeout ({:.1} s)",
                    timeout.as_secs_f64()
                ),
            ),
            Ok(Err(e)) => {
                let status = session.exit_status(Duration::from_millis(200)).await;
                let tail = session.stderr_tail().await;
                self.indeterminate(
                    op,
                    json!(format!("client pipe: {e}")),
                    format!("its pipe failed mid-op ({e}); {status}{tail}"),
                )
            }
            Ok(Ok(Line::Eof)) => {
                let status = session.exit_status(Duration::from_millis(500)).await;
                let tail = session.stderr_tail().await;
                self.indeterminate(
                    op,
                    json!(format!("client exited: {status}")),
                    format!("it closed its stdout mid-op; {status}{tail}"),
                )
            }
            Ok(Ok(Line::TooLong)) => self.indeterminate(
                op,
                json!("client answer too long"),
                format!("its answer is longer than {MAX_LINE_BYTES} bytes"),
            ),
            Ok(Ok(Line::Complete)) => match interpret(&self.spec.workload, op, &self.line) {
                Ok(completion) => {
                    self.in_flight = None;
                    completion
                }
                Err(violation) => {
                    let line = quote(&self.line);
                    self.indeterminate(
                        op,
                        json!(format!("client protocol: {violation}")),
                        format!("it answered with {line}: {violation}"),
                    )
                }
            },
        }
    }
}

/// Ops whose `ok` carries what was read; every other op's `ok` completes with the value
/// it was invoked with.
fn returns_a_value(op: &OpRequest) -> bool {
    op.f == "read" || op.f == "txn"
}

/// Turns an answer line into the op's completion, or says why it is no answer to `op`.
pub fn interpret(workload: &str, op: &OpRequest, line: &[u8]) -> Result<Completion, String> {
    let answer: Value =
        serde_json::from_slice(line).map_err(|e| format!("this line is not JSON ({e})"))?;
    let Some(object) = answer.as_object() else {
        return Err("an answer must be a JSON object".into());
    };
    let error = || {
        object
            .get("error")
            .cloned()
            .unwrap_or_else(|| json!("the client gave no error"))
    };
    match object.get("type").and_then(Value::as_str) {
        Some("ok") => {
            if !returns_a_value(op) {
                return Ok(Completion::ok(op.value.clone()));
            }
            let value = object.get("value").ok_or_else(|| {
                format!(
                    "an ok answer to {} must carry the value read in \"value\"",
                    op.f
                )
            })?;
            check_read(workload, op, value)?;
            Ok(Completion::ok(value.clone()))
        }
        Some("fail") => Ok(Completion::fail(op.value.clone(), error())),
        Some("info") => Ok(Completion::info(op.value.clone(), error())),
        Some(other) => Err(format!(
            "\"type\" is {other:?}; an answer's type is \"ok\", \"fail\" or \"info\""
        )),
        None => Err("an answer needs \"type\": \"ok\", \"fail\" or \"info\"".into()),
    }
}

/// Checks that an `ok` value has the shape its op asks for, so a confused client shows
/// as a protocol error rather than as an anomaly of the system under test.
fn check_read(workload: &str, op: &OpRequest, value: &Value) -> Result<(), String> {
    if op.f == "txn" {
        return check_txn(op, value);
    }
    match workload {
        "set" | "or-set" if !value.is_array() => Err(format!(
            "a {workload} read returns the whole set as a list, not {value}"
        )),
        "counter" | "pn-counter" | "g-counter" if !(value.is_i64() || value.is_u64()) => Err(
            format!("a {workload} read returns the counter as an integer, not {value}"),
        ),
        _ => Ok(()),
    }
}

/// A txn's answer is its micro-ops as sent, with only the reads' values filled in.
fn check_txn(op: &OpRequest, value: &Value) -> Result<(), String> {
    let (Some(invoked), Some(done)) = (op.value.as_array(), value.as_array()) else {
        return Err("a txn's value must be the list of its micro-ops, reads filled in".into());
    };
    if invoked.len() != done.len() {
        return Err(format!(
            "the txn had {} micro-ops, the answer has {}",
            invoked.len(),
            done.len()
        ));
    }
    for (i, (inv, got)) in invoked.iter().zip(done).enumerate() {
        let same_head =
            got.as_array().is_some_and(|g| g.len() == 3) && got[0] == inv[0] && got[1] == inv[1];
        let writes_as_asked = inv[0] == "r" || got[2] == inv[2];
        if !same_head || !writes_as_asked {
            return Err(format!(
                "micro-op {i} was {inv} but the answer has {got}; answer each micro-op as sent, with only reads filled in"
            ));
        }
    }
    Ok(())
}

/// Forwards a program's stderr, line by line, into the log; keeps the last lines for
/// error messages. Ends when the program closes stderr.
async fn forward_stderr(
    stderr: tokio::process::ChildStderr,
    log: ClientLog,
    who: String,
    tail: Arc<Mutex<VecDeque<String>>>,
) {
    let mut reader = BufReader::new(stderr);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        // Bounded: a line longer than this is logged in pieces.
        match (&mut reader)
            .take(64 << 10)
            .read_until(b'\n', &mut buf)
            .await
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&buf);
                let text = text.trim_end_matches(['\n', '\r']);
                log.stderr(&who, text);
                let mut t = tail.lock().unwrap_or_else(|e| e.into_inner());
                if t.len() == STDERR_TAIL_LINES {
                    t.pop_front();
                }
                t.push_back(text.chars().take(QUOTE_BYTES).collect());
            }
        }
    }
}

#[async_trait::async_trait]
impl Client for ProcessClient {
    async fn invoke(&mut self, op: &OpRequest) -> Completion {
        let completion = self.exchange(op).await;
        debug_assert!(completion.kind != OpType::Invoke);
        completion
    }
}

impl Drop for ProcessClient {
    fn drop(&mut self) {
        let Some(mut session) = self.session.take() else {
            return;
        };
        if let Some((op, sent)) = self.in_flight.take() {
            self.spec.log.note(
                &session.who,
                &format!(
                    "op {op} was still unanswered after {:.1} s when distest stopped waiting (the op timeout); killing it",
                    sent.elapsed().as_secs_f64()
                ),
            );
            session.kill();
            return;
        }
        // Closing stdin asks the program to exit; give it a moment, then kill it.
        let Session {
            mut child,
            pid,
            stdin,
            ..
        } = session;
        drop(stdin);
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    if tokio::time::timeout(EXIT_GRACE, child.wait())
                        .await
                        .is_err()
                    {
                        kill_group(pid);
                        let _ = child.wait().await;
                    }
                });
            }
            Err(_) => kill_group(pid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A temp directory for one test's marker and log, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Scratch {
            let dir = std::env::temp_dir().join(format!("dt-client-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }
        fn log(&self) -> String {
            std::fs::read_to_string(self.0.join("clients.log")).unwrap_or_default()
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn the_run_directory_log_opens_once_the_run_directory_exists() {
        let scratch = Scratch::new("slot");
        let slot = crate::targets::registry::RunDirSlot::default();
        let log = ClientLog::in_run_dir(slot.clone());
        log.note("n1 pid 1", "before the run directory");
        assert!(!scratch.0.join("clients.log").exists());
        slot.set(scratch.0.clone()).unwrap();
        log.clone().note("n2 pid 2", "after");
        log.note("n3 pid 3", "and again");
        let written = scratch.log();
        assert!(!written.contains("before the run directory"), "{written}");
        assert!(written.contains("[n2 pid 2] distest: after\n"), "{written}");
        assert!(
            written.contains("[n3 pid 3] distest: and again\n"),
            "{written}"
        );
    }

    /// The scripted client (tests/fixtures/clients/scripted.py) in `mode`, misbehaving only
    /// in its first process when `once`.
    fn spec(scratch: &Scratch, mode: &str, once: bool, workload: &str) -> Arc<ClientSpec> {
        let marker = if once {
            format!(" {}", scratch.0.join("marker").display())
        } else {
            String::new()
        };
        Arc::new(ClientSpec {
            command: format!("exec python3 scripted.py {mode}{marker}"),
            cwd: Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/clients"),
            nodes: (1..=3)
                .map(|i| (format!("n{i}"), format!("10.77.232.{}", 10 + i)))
                .collect(),
            settings: BTreeMap::from([("isolation".to_string(), "serializable".to_string())]),
            workload: workload.to_string(),
            op_timeout: Duration::from_millis(1500),
            open_timeout: Duration::from_secs(20),
            log: ClientLog::to_file(&scratch.0.join("clients.log")).unwrap(),
        })
    }

    fn read(key: u64) -> OpRequest {
        OpRequest::keyed("read", json!(key), Value::Null)
    }

    fn alive(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_echo_client_answers_every_workload_op() {
        let scratch = Scratch::new("echo");
        let mut c = ProcessClient::open(spec(&scratch, "echo", false, "register"), 1)
            .await
            .unwrap();
        let pid = c.pid().unwrap();
        assert_eq!(c.invoke(&read(3)).await, Completion::ok(Value::Null));
        let write = OpRequest::keyed("write", json!(3), json!(4));
        assert_eq!(c.invoke(&write).await, Completion::ok(json!(4)));
        let cas = OpRequest::keyed("cas", json!(3), json!([4, 1]));
        assert_eq!(c.invoke(&cas).await, Completion::ok(json!([4, 1])));
        let txn = OpRequest::new("txn", json!([["append", 1, 2], ["r", 1, null]]));
        assert_eq!(
            c.invoke(&txn).await,
            Completion::ok(json!([["append", 1, 2], ["r", 1, null]]))
        );
        assert_eq!(c.pid(), Some(pid), "a well-behaved client is kept");
        assert!(scratch
            .log()
            .contains(&format!("[n2 pid {pid}] stderr: scripted: opened n2")));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_client_sees_the_open_message_and_the_wire_form_of_ops() {
        // A client that echoes what it receives on stderr, to see the exact lines.
        let scratch = Scratch::new("wire");
        let mut s = (*spec(&scratch, "echo", false, "set")).clone();
        s.command = r#"exec python3 -c '
import sys
for line in sys.stdin:
    sys.stderr.write("got " + line); sys.stderr.flush()
    print("{\"type\":\"ok\",\"value\":[]}", flush=True)
'"#
        .into();
        let mut c = ProcessClient::open(Arc::new(s), 1).await.unwrap();
        c.invoke(&OpRequest::new("add", json!(7))).await;
        c.invoke(&OpRequest::keyed("read", json!(3), Value::Null))
            .await;
        drop(c);
        // stderr is forwarded by a task of its own: give it a moment to catch up.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !scratch.log().contains(r#""f":"read""#) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let log = scratch.log();
        assert!(log.contains(r#"got {"type":"open","node":"n2","ip":"10.77.232.12","nodes":{"n1":"10.77.232.11","n2":"10.77.232.12","n3":"10.77.232.13"},"settings":{"isolation":"serializable"},"workload":"set"}"#), "{log}");
        assert!(
            log.contains(r#"got {"type":"invoke","f":"add","value":7}"#),
            "{log}"
        );
        assert!(
            log.contains(r#"got {"type":"invoke","f":"read","key":"3","value":null}"#),
            "{log}"
        );
    }

    /// Runs `mode` misbehaving once: the first op must be `info` with a note naming
    /// `expect_note`, the program replaced, and the next op answered by the fresh one.
    async fn misbehaves_once(mode: &str, op: OpRequest, expect_note: &str) {
        let scratch = Scratch::new(mode);
        let workload = if op.f == "txn" {
            "list-append"
        } else {
            "register"
        };
        let mut c = ProcessClient::open(spec(&scratch, mode, true, workload), 0)
            .await
            .unwrap();
        let first = c.pid().unwrap();
        let done = c.invoke(&op).await;
        assert_eq!(done.kind, OpType::Info, "{mode}: {done:?}");
        assert_eq!(done.value, op.value, "{mode}: info keeps the invoked value");
        assert!(c.pid().is_none(), "{mode}: the program is discarded");
        let log = scratch.log();
        assert!(log.contains(expect_note), "{mode}: {log}");
        assert!(log.contains("recorded as info"), "{mode}: {log}");
        let next = c.invoke(&op).await;
        assert_eq!(next.kind, OpType::Ok, "{mode}: the run goes on: {next:?}");
        assert_ne!(c.pid(), Some(first), "{mode}: a fresh program answered");
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive(first) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!alive(first), "{mode}: the old program is gone");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_that_hangs_makes_its_op_info_and_is_replaced() {
        misbehaves_once(
            "hang",
            read(1),
            "did not answer within the op timeout (1.5 s)",
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_that_crashes_mid_op_makes_its_op_info_and_is_replaced() {
        misbehaves_once(
            "crash",
            OpRequest::keyed("write", json!(1), json!(2)),
            "it closed its stdout mid-op; it exited with status 3; its last stderr lines: scripted: opened n1 / scripted: crashing mid-op",
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_that_prints_garbage_makes_its_op_info_and_is_replaced() {
        misbehaves_once(
            "garbage",
            OpRequest::keyed("cas", json!(1), json!([1, 2])),
            "it answered with \"this is not json\": this line is not JSON",
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_txn_answered_with_other_micro_ops_is_info() {
        misbehaves_once(
            "badtxn",
            OpRequest::new("txn", json!([["append", 1, 2], ["r", 1, null]])),
            "micro-op 0 was [\"append\",1,2] but the answer has [\"w\",999,999]",
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_that_answers_info_is_recorded_as_info_and_kept() {
        let scratch = Scratch::new("info");
        let mut c = ProcessClient::open(spec(&scratch, "info", false, "register"), 0)
            .await
            .unwrap();
        let pid = c.pid();
        for op in [read(1), OpRequest::keyed("write", json!(1), json!(3))] {
            let done = c.invoke(&op).await;
            assert_eq!(done, Completion::info(op.value.clone(), json!("unsure")));
        }
        assert_eq!(
            c.pid(),
            pid,
            "an honest info is an answer, not a protocol error"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_second_answer_is_caught_before_the_next_op() {
        let scratch = Scratch::new("double");
        let mut c = ProcessClient::open(spec(&scratch, "double", true, "register"), 0)
            .await
            .unwrap();
        let first = c.pid();
        assert_eq!(c.invoke(&read(1)).await.kind, OpType::Ok);
        // The stray second answer arrives meanwhile; the next op must not take it.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let next = c
            .invoke(&OpRequest::keyed("write", json!(1), json!(5)))
            .await;
        assert_eq!(next, Completion::ok(json!(5)));
        assert_ne!(c.pid(), first);
        let log = scratch.log();
        assert!(log.contains("while no op was waiting"), "{log}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn open_failures_are_one_sentence_with_the_reason() {
        let scratch = Scratch::new("open");
        let err = ProcessClient::open(spec(&scratch, "refuse", false, "register"), 2)
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("for n3: it refused open: \"cannot reach 10.77.232.13\""),
            "{err}"
        );
        let err = ProcessClient::open(spec(&scratch, "noopen", false, "register"), 0)
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("closed its stdout before answering open; it exited with status 2"),
            "{err}"
        );
        assert!(err.contains("giving up before open"), "{err}");
        let mut s = (*spec(&scratch, "silent", false, "register")).clone();
        s.open_timeout = Duration::from_millis(500);
        let err = ProcessClient::open(Arc::new(s), 0)
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("did not answer open within 0.5 s"), "{err}");
        let mut s = (*spec(&scratch, "echo", false, "register")).clone();
        s.command = "exec ./no-such-client".into();
        let err = ProcessClient::open(Arc::new(s), 0)
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("status 127"), "{err}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropping_a_client_closes_its_stdin_and_it_exits() {
        let scratch = Scratch::new("drop");
        let c = ProcessClient::open(spec(&scratch, "echo", false, "register"), 0)
            .await
            .unwrap();
        let pid = c.pid().unwrap();
        drop(c);
        let deadline = Instant::now() + EXIT_GRACE + Duration::from_secs(3);
        while alive(pid) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!alive(pid));
    }

    #[test]
    fn answers_map_to_honest_completions() {
        let write = OpRequest::keyed("write", json!(1), json!(9));
        let ok = |w: &str, op: &OpRequest, line: &str| interpret(w, op, line.as_bytes());
        assert_eq!(
            ok("register", &write, r#"{"type":"ok"}"#),
            Ok(Completion::ok(json!(9)))
        );
        assert_eq!(
            ok("register", &write, r#"{"type":"ok","value":3}"#),
            Ok(Completion::ok(json!(9))),
            "a write completes with what it wrote"
        );
        assert_eq!(
            ok("register", &read(1), r#"{"type":"ok","value":null}"#),
            Ok(Completion::ok(Value::Null))
        );
        assert!(ok("register", &read(1), r#"{"type":"ok"}"#)
            .unwrap_err()
            .contains("must carry the value"));
        assert_eq!(
            ok("register", &write, r#"{"type":"fail","error":"no leader"}"#),
            Ok(Completion::fail(json!(9), json!("no leader")))
        );
        assert_eq!(
            ok("register", &write, r#"{"type":"info"}"#),
            Ok(Completion::info(
                json!(9),
                json!("the client gave no error")
            ))
        );
        for bad in [
            "",
            "nope",
            "[1]",
            r#"{"type":"invoke"}"#,
            r#"{"value":1}"#,
            "{\"type\":\"ok\"} x",
        ] {
            assert!(ok("register", &write, bad).is_err(), "{bad:?}");
        }
        let set_read = OpRequest::new("read", Value::Null);
        assert!(ok("set", &set_read, r#"{"type":"ok","value":[1,2]}"#).is_ok());
        assert!(ok("set", &set_read, r#"{"type":"ok","value":null}"#).is_err());
        assert!(ok("counter", &set_read, r#"{"type":"ok","value":-4}"#).is_ok());
        assert!(ok("counter", &set_read, r#"{"type":"ok","value":"4"}"#).is_err());
        let txn = OpRequest::new("txn", json!([["w", 1, 2], ["r", 2, null]]));
        assert!(ok(
            "rw-register",
            &txn,
            r#"{"type":"ok","value":[["w",1,2],["r",2,5]]}"#
        )
        .is_ok());
        assert!(ok("rw-register", &txn, r#"{"type":"ok","value":[["w",1,2]]}"#).is_err());
        assert!(ok(
            "rw-register",
            &txn,
            r#"{"type":"ok","value":[["w",1,3],["r",2,5]]}"#
        )
        .is_err());
        assert!(ok(
            "rw-register",
            &txn,
            r#"{"type":"ok","value":[["w",1,2],["r",3,5]]}"#
        )
        .is_err());
    }

    #[test]
    fn long_lines_are_quoted_short() {
        let q = quote(&[b'x'; 1000]);
        assert!(q.ends_with("(first 200 of 1000 bytes)"), "{q}");
        assert_eq!(quote(b"a\tb"), "\"a\\tb\"");
    }
}
