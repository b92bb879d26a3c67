//! The router's TCP side: client connections and control commands.
//!
//! Every connection starts with one JSON line saying what it is:
//!
//! - `{"client": "c7"}`: a client of the control node. Then each line it sends is a
//!   message for the node; messages the node addresses to `c7` come back on it. A client
//!   id lives as long as its connection.
//! - `{"control": "start"}` (or `kill`, `pause`, `resume`, `status`, `clock`, `flush`):
//!   a command, answered with one JSON line; more command lines may follow.
//!
//! Answers: `start` → `{"ok": true, "pid": N, "already": bool}`, `kill` →
//! `{"ok": true, "was_running": bool}`, `pause`/`resume` → `{"ok": true, "running":
//! bool}`, `status` → the node's state and the garbage lines it wrote, `clock` →
//! `{"mono_ns": N}` (this machine's monotonic clock, to align journals), `flush` →
//! `{"ok": true}` once the journal is on disk. A failure is `{"ok": false, "error": "..."}`.

use super::Shared;
use crate::journal::mono_ns;
use crate::protocol;
use distest_checkers::net::NetEventKind;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a write to a client may block before the client is dropped as gone.
const CLIENT_WRITE_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) fn accept_loop(shared: &Arc<Shared>, listener: TcpListener) {
    for conn in listener.incoming() {
        if shared.stopping.load(Ordering::Relaxed) {
            return;
        }
        let Ok(stream) = conn else { continue };
        let _ = stream.set_nodelay(true);
        let s = shared.clone();
        let _ = std::thread::Builder::new()
            .name("dt-router-conn".into())
            .spawn(move || connection(&s, stream));
    }
}

fn connection(shared: &Arc<Shared>, stream: TcpStream) {
    super::raise_priority();
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut first = String::new();
    if reader.read_line(&mut first).unwrap_or(0) == 0 {
        return;
    }
    let hello: Value = serde_json::from_str(&first).unwrap_or(Value::Null);
    if let Some(client) = hello["client"].as_str() {
        client_session(shared, client, stream, reader);
    } else if hello["control"].is_string() {
        control_session(shared, hello, stream, reader);
    } else {
        let mut stream = stream;
        let _ = writeln!(
            stream,
            "{}",
            json!({"ok": false, "error": "a connection must open with {\"client\": \"cN\"} or {\"control\": COMMAND}"})
        );
    }
}

fn client_session(
    shared: &Arc<Shared>,
    client: &str,
    stream: TcpStream,
    mut reader: BufReader<TcpStream>,
) {
    let _ = stream.set_write_timeout(Some(CLIENT_WRITE_TIMEOUT));
    let conn = Arc::new(Mutex::new(stream));
    shared
        .clients
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(client.to_string(), conn.clone());
    let mut line = Vec::with_capacity(4096);
    let mut buf = Vec::with_capacity(4096);
    while super::next_line(&mut reader, &mut line) {
        let Ok(head) = protocol::head(&line) else {
            shared.log.line(&format!(
                "client {client} sent a line that is not a message; ignored"
            ));
            continue;
        };
        let id = shared.next_id();
        if head.dest == shared.cfg.node {
            shared.record(NetEventKind::Send, id, &head.src, &head, None);
            shared.node.deliver(shared, id, &line, &head);
        } else {
            shared.route(id, &head.src, &line, &head, &mut buf);
        }
    }
    // Forget the client, unless a newer connection took its id over.
    let mut clients = shared.clients.lock().unwrap_or_else(|e| e.into_inner());
    if clients.get(client).is_some_and(|c| Arc::ptr_eq(c, &conn)) {
        clients.remove(client);
    }
}

fn control_session(
    shared: &Arc<Shared>,
    hello: Value,
    mut stream: TcpStream,
    mut reader: BufReader<TcpStream>,
) {
    let mut command = hello;
    loop {
        let answer = execute(shared, command["control"].as_str().unwrap_or(""));
        if writeln!(stream, "{answer}").is_err() {
            return;
        }
        let mut next = String::new();
        if reader.read_line(&mut next).unwrap_or(0) == 0 {
            return;
        }
        command = serde_json::from_str(&next).unwrap_or(Value::Null);
    }
}

fn execute(shared: &Arc<Shared>, command: &str) -> Value {
    let node = &shared.node;
    match command {
        "start" => match node.start(shared) {
            Ok((pid, already)) => json!({"ok": true, "pid": pid, "already": already}),
            Err(e) => json!({"ok": false, "error": e}),
        },
        "kill" => match node.kill(shared, "the control node asked (kill nemesis)") {
            Ok(was) => json!({"ok": true, "was_running": was}),
            Err(e) => json!({"ok": false, "error": e}),
        },
        "pause" => json!({"ok": true, "running": node.pause(shared, true)}),
        "resume" => json!({"ok": true, "running": node.pause(shared, false)}),
        "status" => {
            let g = shared
                .garbage
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            let mut s = node.status();
            s["ok"] = json!(true);
            s["node"] = json!(shared.cfg.node);
            s["garbage_lines"] = json!(g.count);
            s["first_garbage_line"] = json!(g.first);
            s
        }
        "clock" => json!({"ok": true, "mono_ns": mono_ns()}),
        "flush" => {
            shared.journal.flush();
            json!({"ok": true})
        }
        other => json!({"ok": false, "error": format!(
            "unknown control command {other:?}; valid commands are start, kill, pause, resume, status, clock, flush"
        )}),
    }
}

/// The control node's side: sends `command` to the router at `addr` and returns its
/// answer, or one sentence saying why there is none.
pub fn request(addr: SocketAddr, command: &str, timeout: Duration) -> Result<Value, String> {
    let fail = |e: std::io::Error| {
        format!("control command {command:?} to the router at {addr} failed: {e}")
    };
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout.min(Duration::from_secs(10))).map_err(fail)?;
    stream.set_read_timeout(Some(timeout)).map_err(fail)?;
    writeln!(stream, "{}", json!({"control": command})).map_err(fail)?;
    let mut answer = String::new();
    BufReader::new(stream)
        .read_line(&mut answer)
        .map_err(fail)?;
    let answer: Value = serde_json::from_str(&answer).map_err(|e| {
        format!("the router at {addr} answered {command:?} with something that is not JSON ({e})")
    })?;
    if answer["ok"] == true {
        Ok(answer)
    } else {
        Err(answer["error"]
            .as_str()
            .unwrap_or("the router refused without saying why")
            .to_string())
    }
}

/// How far the router's monotonic clock is ahead of ours, in ns: the `clock` answer with
/// the shortest round trip of a few, taken as read halfway through it (NTP's estimate;
/// off by at most half that round trip). Zero, up to that error, for a router on this
/// machine, whose namespaces share our monotonic clock.
pub fn clock_offset_ns(addr: SocketAddr, timeout: Duration) -> Result<i128, String> {
    let fail = |e: std::io::Error| format!("asking the router at {addr} for its clock failed: {e}");
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(fail)?;
    stream.set_read_timeout(Some(timeout)).map_err(fail)?;
    stream.set_nodelay(true).map_err(fail)?;
    let mut reader = BufReader::new(stream.try_clone().map_err(fail)?);
    let mut best: Option<(u64, i128)> = None;
    for _ in 0..5 {
        let before = mono_ns();
        writeln!(stream, "{}", json!({"control": "clock"})).map_err(fail)?;
        let mut answer = String::new();
        reader.read_line(&mut answer).map_err(fail)?;
        let after = mono_ns();
        let theirs = serde_json::from_str::<Value>(&answer)
            .ok()
            .and_then(|v| v["mono_ns"].as_u64())
            .ok_or_else(|| format!("the router at {addr} answered clock without mono_ns"))?;
        let rtt = after - before;
        let offset = theirs as i128 - (before as i128 + rtt as i128 / 2);
        if best.is_none_or(|(r, _)| rtt < r) {
            best = Some((rtt, offset));
        }
    }
    Ok(best.map_or(0, |(_, o)| o))
}
