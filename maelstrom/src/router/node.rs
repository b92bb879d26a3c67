//! The node program under a router: started, killed, paused and resumed on command,
//! fed through its stdin pipe ([`super::stdin`]), read line by line from stdout.
//!
//! Each start is a new *generation* with its own stdin writer, stdout reader and exit
//! waiter threads; a thread of an old generation never touches the new one. The program
//! runs in its own process group (so pause and kill reach any children it forks) and is
//! spawned from one long-lived thread with `PR_SET_PDEATHSIG`, so it dies with the router
//! even when the router is SIGKILLed (the signal follows the thread that forked).

use super::stdin::{Queued, StdinPipe};
use super::{Shared, ROUTER_CLIENT};
use crate::protocol::{self, Head};
use crossbeam_channel::{Receiver, Sender};
use distest_checkers::net::NetEventKind;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::BufReader;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Garbage lines logged in full before the log only counts them.
const GARBAGE_LOGGED: u64 = 20;
/// How long a killed program may take to be reaped.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// A program for the spawner thread to start, and where to send the result.
type SpawnRequest = Box<(Command, Sender<std::io::Result<Child>>)>;

struct Running {
    generation: u64,
    pid: i32,
    stdin: Arc<StdinPipe>,
}

#[derive(Default)]
struct State {
    running: Option<Running>,
    generation: u64,
    /// Set while the control node kills the program, so its exit is not reported as a crash.
    killing: bool,
    paused: bool,
    /// How each generation ended, newest last.
    exits: Vec<String>,
}

/// The node program's slot in the router.
#[derive(Default)]
pub(crate) struct NodeSlot {
    state: Mutex<State>,
    changed: Condvar,
    /// Serialises start and kill.
    lifecycle: Mutex<()>,
    /// Router RPCs (init, topology) waiting for the node's answer: msg_id → its receiver.
    pending: Mutex<HashMap<u64, Sender<Vec<u8>>>>,
    next_msg_id: AtomicU64,
    spawner: Mutex<Option<Sender<SpawnRequest>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl NodeSlot {
    /// Writes a message from the network or a client to the node's stdin queue, or
    /// drops it when the node is down or its queue is full.
    pub fn deliver(&self, shared: &Shared, id: u64, json: &[u8], head: &Head<'_>) {
        let stdin = lock(&self.state).running.as_ref().map(|r| r.stdin.clone());
        let Some(stdin) = stdin else {
            shared.record(
                NetEventKind::Drop,
                id,
                &shared.cfg.node,
                head,
                Some("node-down"),
            );
            return;
        };
        stdin.send(shared, Queued::new(id, json, head));
    }

    /// Hands the node's reply to a router RPC to whoever waits for it; false when nobody
    /// does (it timed out, or the node answered something never asked).
    pub fn answer(&self, in_reply_to: Option<u64>, json: &[u8]) -> bool {
        let waiter = in_reply_to.and_then(|m| lock(&self.pending).remove(&m));
        waiter.is_some_and(|w| w.send(json.to_vec()).is_ok())
    }

    pub fn pid(&self) -> Option<i32> {
        lock(&self.state).running.as_ref().map(|r| r.pid)
    }

    /// What the control node's `status` reports.
    pub fn status(&self) -> Value {
        let s = lock(&self.state);
        json!({
            "running": s.running.is_some(),
            "pid": s.running.as_ref().map(|r| r.pid),
            "paused": s.paused,
            "generation": s.generation,
            "exits": s.exits,
        })
    }

    /// Starts the node program (no-op when it runs), sends `init` and, when configured,
    /// `topology`, and waits for both answers. Returns the pid and whether it already ran.
    pub fn start(&self, shared: &std::sync::Arc<Shared>) -> Result<(i32, bool), String> {
        let _lifecycle = lock(&self.lifecycle);
        if let Some(pid) = self.pid() {
            return Ok((pid, true));
        }
        let cfg = &shared.cfg;
        let mut cmd = Command::new(&cfg.program);
        cmd.args(&cfg.args)
            .envs(cfg.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(
                shared
                    .log
                    .file()
                    .map(Stdio::from)
                    .unwrap_or_else(|_| Stdio::null()),
            )
            .process_group(0);
        let mut child = self.spawn(cmd).map_err(|e| {
            format!(
                "could not start the node program {} on {}: {e}",
                cfg.program.display(),
                cfg.node
            )
        })?;
        let pid = child.id() as i32;
        let stdin = Arc::new(
            StdinPipe::new(child.stdin.take().expect("stdin is piped"))
                .map_err(|e| format!("could not set up the stdin of {}: {e}", cfg.node))?,
        );
        let generation = {
            let mut s = lock(&self.state);
            s.generation += 1;
            s.paused = false;
            s.generation
        };
        // `init` goes first into the queue, before the slot is published: nothing else can
        // reach the program ahead of it.
        let init_id = self.next_msg_id.fetch_add(1, Ordering::Relaxed) + 1;
        let init = json!({"type": "init", "msg_id": init_id, "node_id": cfg.node, "node_ids": cfg.node_ids});
        let init_answer = self.queue_rpc(shared, &stdin, init_id, &init);
        let stdout = child.stdout.take().expect("stdout is piped");
        let threads = [
            spawn_named("dt-node-stdin", {
                let (s, pipe) = (shared.clone(), stdin.clone());
                move || {
                    super::raise_priority();
                    pipe.drain(&s)
                }
            }),
            spawn_named("dt-node-stdout", {
                let s = shared.clone();
                move || read_stdout(&s, stdout)
            }),
            spawn_named("dt-node-wait", {
                let (s, pipe) = (shared.clone(), stdin.clone());
                move || {
                    s.node.wait(&s, generation, child);
                    pipe.close(&s);
                }
            }),
        ];
        if let Some(e) = threads.into_iter().find_map(Result::err) {
            return Err(format!("could not start the threads for {}: {e}", cfg.node));
        }
        lock(&self.state).running = Some(Running {
            generation,
            pid,
            stdin: stdin.clone(),
        });
        shared.log.line(&format!(
            "started the node program (pid {pid}, start #{generation}): {} {}",
            cfg.program.display(),
            cfg.args.join(" ")
        ));
        self.expect(shared, init_answer, "init", "init_ok")?;
        if let Some(topology) = &cfg.topology {
            let id = self.next_msg_id.fetch_add(1, Ordering::Relaxed) + 1;
            let body = json!({"type": "topology", "msg_id": id, "topology": topology});
            let answer = self.queue_rpc(shared, &stdin, id, &body);
            self.expect(shared, answer, "topology", "topology_ok")?;
        }
        Ok((pid, false))
    }

    /// Starts the spawner thread (see the module docs). Called once, by the thread that
    /// starts the router: the spawner keeps that thread's (normal) priority, and the node
    /// programs inherit it, whatever the priority of the thread asking for a start.
    pub fn start_spawner(&self) -> std::io::Result<()> {
        let (tx, rx) = crossbeam_channel::unbounded::<SpawnRequest>();
        spawn_named("dt-node-spawn", move || {
            for request in rx {
                let (mut cmd, reply) = *request;
                let _ = reply.send(cmd.spawn());
            }
        })?;
        *lock(&self.spawner) = Some(tx);
        Ok(())
    }

    /// Spawns `cmd` on the spawner thread.
    fn spawn(&self, mut cmd: Command) -> std::io::Result<Child> {
        // SAFETY: prctl is async-signal-safe; it only asks the kernel to SIGKILL the child
        // when the thread that forked it (the long-lived spawner) dies.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let spawner = lock(&self.spawner);
        let (reply, result) = crossbeam_channel::bounded(1);
        let sent = spawner
            .as_ref()
            .is_some_and(|s| s.send(Box::new((cmd, reply))).is_ok());
        drop(spawner);
        if !sent {
            return Err(std::io::Error::other("the spawner thread is gone"));
        }
        result
            .recv()
            .unwrap_or_else(|_| Err(std::io::Error::other("the spawner thread is gone")))
    }

    /// Queues a router RPC (from [`ROUTER_CLIENT`]) for the node and returns where its
    /// answer will arrive.
    fn queue_rpc(
        &self,
        shared: &Shared,
        stdin: &StdinPipe,
        msg_id: u64,
        body: &Value,
    ) -> Receiver<Vec<u8>> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        lock(&self.pending).insert(msg_id, tx);
        let line = protocol::line(ROUTER_CLIENT, &shared.cfg.node, body);
        let head = protocol::head(line.as_bytes()).expect("our own message has a head");
        let id = shared.next_id();
        shared.record(NetEventKind::Send, id, ROUTER_CLIENT, &head, None);
        stdin.send(shared, Queued::new(id, line.as_bytes(), &head));
        rx
    }

    /// Waits for the answer to a router RPC and checks its type.
    fn expect(
        &self,
        shared: &Shared,
        answer: Receiver<Vec<u8>>,
        what: &str,
        ok: &str,
    ) -> Result<(), String> {
        let node = &shared.cfg.node;
        let timeout = shared.cfg.init_timeout;
        let reply = answer.recv_timeout(timeout).map_err(|_| {
            let why = if self.pid().is_none() {
                "it exited first (see its log)"
            } else {
                "it did not answer"
            };
            let text = format!(
                "node {node} did not answer {what} with {ok} within {} ms: {why}",
                timeout.as_millis()
            );
            shared.log.line(&text);
            text
        })?;
        let reply: Value = serde_json::from_slice(&reply).unwrap_or(Value::Null);
        match reply["body"]["type"].as_str() {
            Some(t) if t == ok => Ok(()),
            _ => {
                let text = format!(
                    "node {node} answered {what} with {} instead of {ok}",
                    reply["body"]
                );
                shared.log.line(&text);
                Err(text)
            }
        }
    }

    /// SIGKILLs the node program (its process group) and waits until it is reaped.
    /// Returns whether it was running.
    pub fn kill(&self, shared: &Shared, why: &str) -> Result<bool, String> {
        let _lifecycle = lock(&self.lifecycle);
        let mut s = lock(&self.state);
        let Some(pid) = s.running.as_ref().map(|r| r.pid) else {
            return Ok(false);
        };
        s.killing = true;
        shared
            .log
            .line(&format!("killing the node program (pid {pid}): {why}"));
        signal_group(pid, libc::SIGKILL);
        let deadline = Instant::now() + KILL_WAIT;
        while s.running.is_some() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "the node program of {} (pid {pid}) was still not gone {} s after SIGKILL",
                    shared.cfg.node,
                    KILL_WAIT.as_secs()
                ));
            }
            s = self
                .changed
                .wait_timeout(s, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        Ok(true)
    }

    /// SIGSTOP (`pause`) or SIGCONT (resume) to the node program; false when it is down.
    pub fn pause(&self, shared: &Shared, pause: bool) -> bool {
        let mut s = lock(&self.state);
        let Some(pid) = s.running.as_ref().map(|r| r.pid) else {
            return false;
        };
        signal_group(pid, if pause { libc::SIGSTOP } else { libc::SIGCONT });
        s.paused = pause;
        shared.log.line(&format!(
            "{} the node program (pid {pid})",
            if pause { "paused" } else { "resumed" }
        ));
        true
    }

    /// Reaps generation `generation` when it exits and clears its slot.
    fn wait(&self, shared: &Shared, generation: u64, mut child: Child) {
        let status = child.wait();
        let mut s = lock(&self.state);
        let how = match &status {
            Ok(st) => match (st.code(), st.signal()) {
                (Some(code), _) => format!("exited with status {code}"),
                (_, Some(sig)) => format!("was killed by signal {sig}"),
                _ => format!("ended ({st})"),
            },
            Err(e) => format!("could not be waited for ({e})"),
        };
        if s.running
            .as_ref()
            .is_some_and(|r| r.generation == generation)
        {
            s.running = None;
            s.paused = false;
        }
        let text = if s.killing {
            s.killing = false;
            format!("the node program (start #{generation}) {how}: killed on purpose")
        } else {
            format!(
                "the node program (start #{generation}) {how} on its own; it stays down until the kill nemesis starts it again, and messages to {} are dropped meanwhile",
                shared.cfg.node
            )
        };
        shared.log.line(&text);
        s.exits.push(text);
        drop(s);
        self.changed.notify_all();
    }
}

fn spawn_named(name: &str, f: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map(|_| ())
}

fn signal_group(pid: i32, signal: libc::c_int) {
    // SAFETY: sending a signal has no memory effects; the group is the one we created for
    // the program (`process_group(0)` makes its pgid its pid).
    unsafe {
        if libc::kill(-pid, signal) != 0 {
            libc::kill(pid, signal);
        }
    }
}

/// Reads the program's stdout: each line a message to route, or garbage to reject.
fn read_stdout(shared: &Shared, stdout: std::process::ChildStdout) {
    super::raise_priority();
    let mut reader = BufReader::with_capacity(1 << 16, stdout);
    let mut line = Vec::with_capacity(4096);
    let mut buf = Vec::with_capacity(65_536);
    while super::next_line(&mut reader, &mut line) {
        match protocol::head(&line) {
            Ok(head) => shared.route(shared.next_id(), &shared.cfg.node, &line, &head, &mut buf),
            Err(why) => reject(shared, &line, &why),
        }
    }
}

fn reject(shared: &Shared, line: &[u8], why: &str) {
    let mut g = lock(&shared.garbage);
    g.count += 1;
    let text: String = String::from_utf8_lossy(line).chars().take(200).collect();
    if g.first.is_none() {
        g.first = Some(text.clone());
    }
    let count = g.count;
    drop(g);
    if count <= GARBAGE_LOGGED || count.is_power_of_two() {
        shared.log.line(&format!(
            "node {} wrote a line to stdout that is not a Maelstrom message ({why}); rejected (stdout is for messages only; log to stderr): {text:?} [{count} such line(s) so far]",
            shared.cfg.node
        ));
    }
}
