//! A small HTTP/1.1 server and client over std TCP, enough for the JSON client API:
//! `Content-Length` bodies only (no chunked encoding), keep-alive, explicit size and time
//! bounds. Hand-written to keep the bundled target's build small.

use crate::transport::lock;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const MAX_HEADER_BYTES: usize = 16 << 10;
const MAX_HEADERS: usize = 64;
const MAX_BODY_BYTES: usize = 8 << 20;
const MAX_CONNECTIONS: usize = 512;
const IDLE_TIMEOUT_MS: u64 = 30_000;

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The path, percent-decoded per segment by the router.
    pub path: String,
    /// Header names lower-cased.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Payload Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// Reads one request; Ok(None) on a clean end of the connection.
pub fn read_request<R: BufRead>(r: &mut R) -> std::io::Result<Option<Request>> {
    let mut head = Vec::new();
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        let n = r.take(MAX_HEADER_BYTES as u64).read_line(&mut line)?;
        if n == 0 {
            if lines.is_empty() {
                return Ok(None);
            }
            return Err(bad("connection closed inside the request head"));
        }
        head.push(n);
        if head.iter().sum::<usize>() > MAX_HEADER_BYTES || lines.len() > MAX_HEADERS {
            return Err(bad("request head too large"));
        }
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        if line.is_empty() {
            if lines.is_empty() {
                continue; // tolerate stray blank lines between requests
            }
            break;
        }
        lines.push(line);
    }
    let mut parts = lines[0].split_whitespace();
    let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
        return Err(bad("malformed request line"));
    };
    let mut headers = HashMap::new();
    for l in &lines[1..] {
        if let Some((k, v)) = l.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let chunked = headers
        .get("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        read_chunked(r)?
    } else {
        let len: usize = match headers.get("content-length") {
            Some(v) => v.parse().map_err(|_| bad("bad content-length"))?,
            None => 0,
        };
        if len > MAX_BODY_BYTES {
            return Err(bad("body too large"));
        }
        let mut body = vec![0u8; len];
        r.read_exact(&mut body)?;
        body
    };
    Ok(Some(Request {
        method: method.to_string(),
        path: path.to_string(),
        headers,
        body,
    }))
}

/// Reads a `Transfer-Encoding: chunked` body (chunk extensions and trailers ignored).
fn read_chunked<R: BufRead>(r: &mut R) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    // Each chunk adds at least one byte, so this bounds the loop with the body size.
    for _ in 0..=MAX_BODY_BYTES {
        let mut line = String::new();
        r.take(1024).read_line(&mut line)?;
        let size_text = line.trim().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size_text, 16).map_err(|_| bad("bad chunk size"))?;
        if size == 0 {
            for _ in 0..MAX_HEADERS {
                let mut trailer = String::new();
                let n = r.take(MAX_HEADER_BYTES as u64).read_line(&mut trailer)?;
                if n == 0 || trailer.trim().is_empty() {
                    return Ok(body);
                }
            }
            return Err(bad("too many trailers"));
        }
        if body.len() + size > MAX_BODY_BYTES {
            return Err(bad("body too large"));
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..])?;
        let mut crlf = [0u8; 2];
        r.read_exact(&mut crlf)?;
        if &crlf != b"\r\n" {
            return Err(bad("chunk not followed by CRLF"));
        }
    }
    Err(bad("too many chunks"))
}

fn bad(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string())
}

pub fn write_response<W: Write>(w: &mut W, resp: &Response) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        resp.status,
        reason(resp.status),
        resp.body.len()
    );
    w.write_all(head.as_bytes())?;
    w.write_all(&resp.body)?;
    w.flush()
}

/// Serves `handler` on `listener` until `shutdown`; one thread per connection, bounded.
pub fn serve<H>(listener: TcpListener, handler: Arc<H>, shutdown: Arc<AtomicBool>)
where
    H: Fn(Request) -> Response + Send + Sync + 'static,
{
    let live = Arc::new(AtomicUsize::new(0));
    // Blocking accept: no polling while idle. The thread ends with the process (the
    // node returns from `main_with_args` on shutdown).
    while !shutdown.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                if live.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
                    let mut s = stream;
                    let body = br#"{"error":"overloaded","definite":true,"message":"too many client connections; retry later"}"#;
                    let _ = write_response(
                        &mut s,
                        &Response {
                            status: 503,
                            body: body.to_vec(),
                        },
                    );
                    continue;
                }
                live.fetch_add(1, Ordering::Relaxed);
                let (h, live2, sd) = (handler.clone(), live.clone(), shutdown.clone());
                let spawned = thread::Builder::new()
                    .name("dt-http".into())
                    .spawn(move || {
                        serve_connection(stream, &*h, &sd);
                        live2.fetch_sub(1, Ordering::Relaxed);
                    });
                if spawned.is_err() {
                    live.fetch_sub(1, Ordering::Relaxed);
                }
            }
            // E.g. out of file descriptors: back off instead of spinning.
            Err(_) => thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn serve_connection<H: Fn(Request) -> Response>(
    stream: TcpStream,
    handler: &H,
    shutdown: &AtomicBool,
) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(IDLE_TIMEOUT_MS)));
    let Ok(write_half) = stream.try_clone() else {
        return;
    };
    let mut r = BufReader::new(stream);
    let mut w = write_half;
    while !shutdown.load(Ordering::Relaxed) {
        let req = match read_request(&mut r) {
            Ok(Some(req)) => req,
            Ok(None) => return,
            Err(e) => {
                if e.kind() == std::io::ErrorKind::InvalidData {
                    let body = serde_json::json!({"error": "bad-request", "definite": true, "message": format!("unreadable HTTP request: {e}")});
                    let _ = write_response(
                        &mut w,
                        &Response {
                            status: 400,
                            body: body.to_string().into_bytes(),
                        },
                    );
                }
                return;
            }
        };
        let close = req
            .headers
            .get("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let resp = handler(req);
        if write_response(&mut w, &resp).is_err() || close {
            return;
        }
    }
}

/// Why a client request failed, and whether the server may have acted on it.
#[derive(Debug)]
pub enum ClientError {
    /// Nothing was sent (connect failed): the server certainly did not act.
    NotSent(std::io::Error),
    /// The request was (maybe partly) sent but no full response came back.
    NoResponse(std::io::Error),
}

/// A TCP stream whose every read and write is bounded by one deadline, so a whole
/// exchange (not each syscall) has a time limit however the server dribbles its bytes.
struct DeadlineStream {
    stream: TcpStream,
    deadline: Instant,
}

impl DeadlineStream {
    fn remaining(&self) -> std::io::Result<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the request deadline passed",
            ));
        }
        Ok(left)
    }
}

impl Read for DeadlineStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.stream.set_read_timeout(Some(self.remaining()?))?;
        self.stream.read(buf)
    }
}

impl Write for DeadlineStream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.stream.set_write_timeout(Some(self.remaining()?))?;
        self.stream.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.stream.flush()
    }
}

/// One client connection: reads are buffered, writes go straight to the socket (a
/// request is written with one `write_all` of a single buffer).
struct Conn {
    io: BufReader<DeadlineStream>,
    /// When the connection went back to the pool.
    idle_since: Instant,
}

/// Connects to `addr` within the time left until `deadline`. Every error here means
/// nothing was sent.
fn connect(addr: &str, deadline: Instant) -> std::io::Result<Conn> {
    let sock = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| bad("address resolves to nothing"))?;
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the request deadline passed before connecting",
        ));
    }
    let stream = TcpStream::connect_timeout(&sock, left)?;
    stream.set_nodelay(true)?;
    Ok(Conn {
        io: BufReader::new(DeadlineStream { stream, deadline }),
        idle_since: Instant::now(),
    })
}

/// Sends one request on `conn` and reads the whole response. Any error may come after
/// some bytes reached the server, so callers must treat it as "may have been acted on".
/// Returns whether the connection can carry another request.
fn exchange(
    conn: &mut Conn,
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    keep_alive: bool,
) -> std::io::Result<(Response, bool)> {
    let connection = if keep_alive { "keep-alive" } else { "close" };
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: {connection}\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    // One buffer, one write: a request never leaves in two segments.
    let mut message = head.into_bytes();
    message.extend_from_slice(body);
    let w = conn.io.get_mut();
    w.write_all(&message)?;
    w.flush()?;

    let r = &mut conn.io;
    let mut status_line = String::new();
    if r.take(MAX_HEADER_BYTES as u64)
        .read_line(&mut status_line)?
        == 0
    {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the server closed the connection without answering",
        ));
    }
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("malformed status line"))?;
    let mut len = None;
    let mut server_closes = false;
    let mut head_ended = false;
    for _ in 0..=MAX_HEADERS {
        let mut line = String::new();
        if r.take(MAX_HEADER_BYTES as u64).read_line(&mut line)? == 0 {
            return Err(bad("connection closed inside the response head"));
        }
        let line = line.trim_end();
        if line.is_empty() {
            head_ended = true;
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            let (k, v) = (k.trim(), v.trim());
            if k.eq_ignore_ascii_case("content-length") {
                len = Some(v.parse::<usize>().map_err(|_| bad("bad content-length"))?);
            } else if k.eq_ignore_ascii_case("connection") {
                server_closes = v.eq_ignore_ascii_case("close");
            }
        }
    }
    if !head_ended {
        return Err(bad("response head too large"));
    }
    let mut body = Vec::new();
    let framed = match len {
        Some(n) if n > MAX_BODY_BYTES => return Err(bad("response body too large")),
        Some(n) => {
            body.resize(n, 0);
            r.read_exact(&mut body)?;
            true
        }
        // No length: the body ends with the connection.
        None => {
            r.take(MAX_BODY_BYTES as u64).read_to_end(&mut body)?;
            false
        }
    };
    // Leftover bytes mean we and the server disagree on framing: never reuse that.
    let reusable = keep_alive && framed && !server_closes && r.buffer().is_empty();
    Ok((Response { status, body }, reusable))
}

/// One request over a fresh connection (`connection: close`), with a total time bound.
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Result<Response, ClientError> {
    let mut conn = connect(addr, Instant::now() + timeout).map_err(ClientError::NotSent)?;
    exchange(&mut conn, addr, method, path, headers, body, false)
        .map(|(resp, _)| resp)
        .map_err(ClientError::NoResponse)
}

/// At most this many distinct servers have idle connections in a [`Pool`]; the pool of
/// a follower only ever talks to leaders, and a cluster has few of those over time.
const MAX_POOLED_ADDRS: usize = 16;
/// How often a pool closes connections idle for longer than its idle timeout, so an
/// old leader does not keep threads for connections nobody will use again.
const POOL_SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Keep-alive client connections, reused across requests to the same address.
///
/// The rule that keeps answers honest: a request written on a reused connection that
/// then fails may have reached the server (it may have read the whole request before
/// the connection died, and a failed write does not prove the server read nothing of
/// an earlier partial write), so it is reported [`ClientError::NoResponse`] and never
/// resent — except `GET`, which has no effect and is retried once on a fresh
/// connection. A reused connection is only written to after a non-blocking peek shows it
/// open and silent: one the server closed (idle timeout, restart) is discarded before
/// anything is sent, so it costs a reconnect, not an unknown outcome. The pool keeps
/// connections idle for less than [`IDLE_TIMEOUT_MS`] (the server's own idle timeout),
/// so the server does not close one while we pick it.
pub struct Pool {
    state: Mutex<PoolState>,
    max_idle_per_addr: usize,
    idle_timeout: Duration,
}

struct PoolState {
    /// Per address, idle connections in the order they were returned (newest last).
    idle: HashMap<String, Vec<Conn>>,
    last_sweep: Instant,
}

impl Pool {
    /// Keeps at most `max_idle_per_addr` idle connections per address, each for less
    /// than `idle_timeout` (clamped below the server's idle timeout).
    pub fn new(max_idle_per_addr: usize, idle_timeout: Duration) -> Pool {
        let server_idle = Duration::from_millis(IDLE_TIMEOUT_MS);
        Pool {
            state: Mutex::new(PoolState {
                idle: HashMap::new(),
                last_sweep: Instant::now(),
            }),
            max_idle_per_addr,
            idle_timeout: idle_timeout.min(server_idle / 2),
        }
    }

    /// Sends one request to `addr`, on an idle connection when one is alive, and returns
    /// the connection to the pool if the response leaves it reusable. `timeout` bounds
    /// the whole call, a `GET` retry included. See [`Pool`] for when a failure is
    /// `NotSent` and when it is `NoResponse`.
    pub fn request(
        &self,
        addr: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout: Duration,
    ) -> Result<Response, ClientError> {
        let deadline = Instant::now() + timeout;
        if let Some(mut conn) = self.checkout(addr) {
            conn.io.get_mut().deadline = deadline;
            match self.send_on(conn, addr, method, path, headers, body) {
                Ok(resp) => return Ok(resp),
                // A read has no effect: asking again on a fresh connection is safe, and
                // so is reporting `NotSent` if that connect fails.
                Err(_) if method == "GET" && Instant::now() < deadline => {}
                Err(e) => return Err(ClientError::NoResponse(e)),
            }
        }
        let conn = connect(addr, deadline).map_err(ClientError::NotSent)?;
        self.send_on(conn, addr, method, path, headers, body)
            .map_err(ClientError::NoResponse)
    }

    /// One exchange on `conn`, which goes back to the pool if it can carry another.
    fn send_on(
        &self,
        mut conn: Conn,
        addr: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<Response> {
        let (resp, reusable) = exchange(&mut conn, addr, method, path, headers, body, true)?;
        if reusable {
            self.checkin(addr, conn);
        }
        Ok(resp)
    }

    /// Idle connections to `addr` right now (for tests and diagnostics).
    pub fn idle_count(&self, addr: &str) -> usize {
        lock(&self.state).idle.get(addr).map_or(0, Vec::len)
    }

    /// The newest idle connection to `addr` that is still open, if any. Expired and dead
    /// ones met on the way are closed.
    fn checkout(&self, addr: &str) -> Option<Conn> {
        // Each round removes one connection, so the pool's bound bounds the loop.
        for _ in 0..=self.max_idle_per_addr {
            let conn = {
                let mut state = lock(&self.state);
                self.sweep_if_due(&mut state);
                let conns = state.idle.get_mut(addr)?;
                let conn = conns.pop()?;
                if conn.idle_since.elapsed() >= self.idle_timeout {
                    // Newest last: everything below is older still.
                    conns.clear();
                    return None;
                }
                conn
            };
            if is_open_and_silent(&conn) {
                return Some(conn);
            }
        }
        None
    }

    fn checkin(&self, addr: &str, mut conn: Conn) {
        conn.idle_since = Instant::now();
        let mut state = lock(&self.state);
        self.sweep_if_due(&mut state);
        if !state.idle.contains_key(addr) && state.idle.len() >= MAX_POOLED_ADDRS {
            return; // dropped: closes the connection
        }
        let conns = state.idle.entry(addr.to_string()).or_default();
        if conns.len() < self.max_idle_per_addr {
            conns.push(conn);
        }
    }

    fn sweep_if_due(&self, state: &mut PoolState) {
        if state.last_sweep.elapsed() < POOL_SWEEP_INTERVAL {
            return;
        }
        state.last_sweep = Instant::now();
        for conns in state.idle.values_mut() {
            conns.retain(|c| c.idle_since.elapsed() < self.idle_timeout);
        }
        state.idle.retain(|_, conns| !conns.is_empty());
    }
}

/// Whether an idle connection can carry a request: a non-blocking peek that would block
/// means the server has neither closed it (EOF, reset) nor sent anything unasked (which
/// would break the framing of our next response).
fn is_open_and_silent(conn: &Conn) -> bool {
    if !conn.io.buffer().is_empty() {
        return false;
    }
    let stream = &conn.io.get_ref().stream;
    if stream.set_nonblocking(true).is_err() {
        return false;
    }
    let mut byte = [0u8; 1];
    let silent =
        matches!(stream.peek(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
    stream.set_nonblocking(false).is_ok() && silent
}

/// Decodes `%XX` escapes (keys may contain `/`, spaces, ...); invalid escapes stay as-is.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A scripted HTTP server on 127.0.0.1 for the client and forwarding tests.
#[cfg(test)]
pub(crate) mod test_server {
    use super::*;

    /// What the server does with request `request` (from 0) on connection `conn`.
    #[derive(Clone, Copy, Debug, PartialEq)]
    pub enum Act {
        Answer(u16),
        /// Answers, then closes the connection (without saying so in a header).
        AnswerAndClose(u16),
        /// Reads the request, closes without answering.
        HangUp,
        /// Reads the request, says nothing for `STALL`, then closes.
        Stall,
    }

    pub const STALL: Duration = Duration::from_secs(3);
    /// Connections one test server accepts before its accept thread ends.
    const MAX_TEST_CONNECTIONS: usize = 32;

    pub struct TestServer {
        pub addr: String,
        pub accepts: Arc<AtomicUsize>,
        pub requests: Arc<AtomicUsize>,
    }

    pub fn start(script: fn(usize, usize) -> Act) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a test port");
        let addr = listener.local_addr().expect("local addr").to_string();
        let accepts = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let (a, r) = (accepts.clone(), requests.clone());
        thread::spawn(move || {
            for conn in 0..MAX_TEST_CONNECTIONS {
                let Ok((stream, _)) = listener.accept() else {
                    return;
                };
                a.fetch_add(1, Ordering::SeqCst);
                let r = r.clone();
                thread::spawn(move || serve_script(stream, conn, script, &r));
            }
        });
        TestServer {
            addr,
            accepts,
            requests,
        }
    }

    fn serve_script(
        stream: TcpStream,
        conn: usize,
        script: fn(usize, usize) -> Act,
        requests: &AtomicUsize,
    ) {
        let mut w = stream.try_clone().expect("clone the test stream");
        let mut r = BufReader::new(stream);
        for n in 0..MAX_HEADERS {
            let Ok(Some(req)) = read_request(&mut r) else {
                return;
            };
            requests.fetch_add(1, Ordering::SeqCst);
            let answer = |status| Response {
                status,
                body: format!(r#"{{"path":"{}","n":{n}}}"#, req.path).into_bytes(),
            };
            match script(conn, n) {
                Act::Answer(status) => {
                    if write_response(&mut w, &answer(status)).is_err() {
                        return;
                    }
                }
                Act::AnswerAndClose(status) => {
                    let _ = write_response(&mut w, &answer(status));
                    return;
                }
                Act::HangUp => return,
                Act::Stall => {
                    thread::sleep(STALL);
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_request_with_body_and_keeps_the_next_one() {
        let raw = b"POST /kv/a/cas HTTP/1.1\r\nContent-Length: 2\r\nX-Request-Id: 7\r\n\r\n{}GET /status HTTP/1.1\r\n\r\n";
        let mut r = BufReader::new(&raw[..]);
        let req = read_request(&mut r).unwrap().unwrap();
        assert_eq!(
            (req.method.as_str(), req.path.as_str()),
            ("POST", "/kv/a/cas")
        );
        assert_eq!(req.body, b"{}");
        assert_eq!(
            req.headers.get("x-request-id").map(String::as_str),
            Some("7")
        );
        let next = read_request(&mut r).unwrap().unwrap();
        assert_eq!(next.path, "/status");
        assert!(read_request(&mut r).unwrap().is_none());
    }

    #[test]
    fn chunked_bodies_are_decoded() {
        let raw = b"PUT /kv/a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"va\r\nc;x=1\r\nlue\": 12345}\r\n0\r\n\r\nGET /status HTTP/1.1\r\n\r\n";
        let mut r = BufReader::new(&raw[..]);
        let req = read_request(&mut r).unwrap().unwrap();
        assert_eq!(req.body, br#"{"value": 12345}"#);
        assert_eq!(read_request(&mut r).unwrap().unwrap().path, "/status");
        let bad = b"PUT /kv/a HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n";
        assert!(read_request(&mut BufReader::new(&bad[..])).is_err());
    }

    #[test]
    fn oversized_bodies_are_refused() {
        let raw = format!(
            "PUT /kv/a HTTP/1.1\r\ncontent-length: {}\r\n\r\n",
            MAX_BODY_BYTES + 1
        );
        assert!(read_request(&mut BufReader::new(raw.as_bytes())).is_err());
    }

    #[test]
    fn percent_decoding_handles_escapes_and_garbage() {
        assert_eq!(percent_decode("a%2Fb%20c"), "a/b c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    use test_server::Act;

    const TEST_TIMEOUT: Duration = Duration::from_secs(2);

    fn pool() -> Pool {
        Pool::new(4, Duration::from_secs(5))
    }

    fn put(pool: &Pool, addr: &str) -> Result<Response, ClientError> {
        pool.request(addr, "PUT", "/kv/a", &[], br#"{"value":1}"#, TEST_TIMEOUT)
    }

    /// Until the server's FIN for a closed connection has certainly arrived.
    fn let_close_arrive() {
        thread::sleep(Duration::from_millis(100));
    }

    #[test]
    fn pool_reuses_one_connection_for_sequential_requests() {
        let server = test_server::start(|_, _| Act::Answer(200));
        let pool = pool();
        for _ in 0..3 {
            assert_eq!(put(&pool, &server.addr).unwrap().status, 200);
        }
        assert_eq!(server.accepts.load(Ordering::SeqCst), 1);
        assert_eq!(server.requests.load(Ordering::SeqCst), 3);
        assert_eq!(pool.idle_count(&server.addr), 1);
    }

    #[test]
    fn a_connection_the_server_closed_is_dropped_before_anything_is_sent() {
        let server = test_server::start(|_, _| Act::AnswerAndClose(200));
        let pool = pool();
        assert_eq!(put(&pool, &server.addr).unwrap().status, 200);
        assert_eq!(pool.idle_count(&server.addr), 1);
        let_close_arrive();
        // The peek sees the close: the PUT goes out once, on a fresh connection.
        assert_eq!(put(&pool, &server.addr).unwrap().status, 200);
        assert_eq!(server.accepts.load(Ordering::SeqCst), 2);
        assert_eq!(server.requests.load(Ordering::SeqCst), 2);
    }

    /// A server whose first connection answers one request and then hangs up on the
    /// next (after reading it); later connections answer. The returned pool holds that
    /// first connection, idle, after one PUT through it.
    fn first_connection_hangs_up_after_one_answer() -> (test_server::TestServer, Pool) {
        let server = test_server::start(|conn, n| match (conn, n) {
            (0, 0) => Act::Answer(200),
            (0, _) => Act::HangUp,
            _ => Act::Answer(200),
        });
        let pool = pool();
        assert_eq!(put(&pool, &server.addr).unwrap().status, 200);
        (server, pool)
    }

    #[test]
    fn a_write_whose_reused_connection_dies_after_sending_is_no_response_and_not_resent() {
        let (server, pool) = first_connection_hangs_up_after_one_answer();
        assert!(matches!(
            put(&pool, &server.addr),
            Err(ClientError::NoResponse(_))
        ));
        assert_eq!(server.requests.load(Ordering::SeqCst), 2);
        assert_eq!(server.accepts.load(Ordering::SeqCst), 1);
        assert_eq!(pool.idle_count(&server.addr), 0);
    }

    #[test]
    fn a_get_whose_reused_connection_dies_is_retried_once_on_a_fresh_connection() {
        let (server, pool) = first_connection_hangs_up_after_one_answer();
        let got = pool.request(&server.addr, "GET", "/kv/a", &[], b"", TEST_TIMEOUT);
        assert_eq!(got.unwrap().status, 200);
        assert_eq!(server.accepts.load(Ordering::SeqCst), 2);
        assert_eq!(server.requests.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn a_refused_connection_is_not_sent() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);
        assert!(matches!(put(&pool(), &addr), Err(ClientError::NotSent(_))));
        assert!(matches!(
            request(&addr, "GET", "/status", &[], b"", TEST_TIMEOUT),
            Err(ClientError::NotSent(_))
        ));
    }

    #[test]
    fn a_silent_server_is_no_response_once_the_deadline_passes() {
        let server = test_server::start(|_, _| Act::Stall);
        let start = Instant::now();
        let timeout = Duration::from_millis(200);
        let got = pool().request(&server.addr, "PUT", "/kv/a", &[], b"{}", timeout);
        assert!(matches!(got, Err(ClientError::NoResponse(_))));
        assert!(
            start.elapsed() < test_server::STALL,
            "the deadline bounds the wait"
        );
    }

    #[test]
    fn idle_connections_are_bounded_per_address_and_expire() {
        let server = test_server::start(|_, _| Act::Answer(200));
        let pool = Pool::new(2, Duration::from_millis(50));
        let deadline = Instant::now() + TEST_TIMEOUT;
        for _ in 0..3 {
            pool.checkin(&server.addr, connect(&server.addr, deadline).unwrap());
        }
        assert_eq!(pool.idle_count(&server.addr), 2);
        thread::sleep(Duration::from_millis(100));
        // Both idle connections expired: this request opens a fourth connection.
        assert_eq!(put(&pool, &server.addr).unwrap().status, 200);
        assert_eq!(server.accepts.load(Ordering::SeqCst), 4);
        assert_eq!(pool.idle_count(&server.addr), 1);
    }

    #[test]
    fn the_pool_idle_timeout_stays_below_the_servers() {
        let pool = Pool::new(1, Duration::from_secs(3600));
        assert!(pool.idle_timeout < Duration::from_millis(IDLE_TIMEOUT_MS));
    }
}
