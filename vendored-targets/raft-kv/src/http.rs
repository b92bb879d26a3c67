//! A small HTTP/1.1 server and client over std TCP, enough for the JSON client API:
//! `Content-Length` bodies only (no chunked encoding), keep-alive, explicit size and time
//! bounds. Hand-written to keep the bundled target's build small.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

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

/// One request over a fresh connection, with a total time bound.
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Result<Response, ClientError> {
    let sock = addr
        .to_socket_addrs()
        .map_err(ClientError::NotSent)?
        .next()
        .ok_or_else(|| ClientError::NotSent(bad("address resolves to nothing")))?;
    let stream = TcpStream::connect_timeout(&sock, timeout).map_err(ClientError::NotSent)?;
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut w = stream.try_clone().map_err(ClientError::NotSent)?;
    w.write_all(head.as_bytes())
        .and_then(|_| w.write_all(body))
        .and_then(|_| w.flush())
        .map_err(ClientError::NoResponse)?;
    let mut r = BufReader::new(stream);
    let mut status_line = String::new();
    r.read_line(&mut status_line)
        .map_err(ClientError::NoResponse)?;
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ClientError::NoResponse(bad("malformed status line")))?;
    let mut len = None;
    for _ in 0..MAX_HEADERS {
        let mut line = String::new();
        r.read_line(&mut line).map_err(ClientError::NoResponse)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.trim().eq_ignore_ascii_case("content-length") {
                len = v.trim().parse::<usize>().ok();
            }
        }
    }
    let mut body = Vec::new();
    match len {
        Some(n) if n <= MAX_BODY_BYTES => {
            body.resize(n, 0);
            r.read_exact(&mut body).map_err(ClientError::NoResponse)?;
        }
        _ => {
            r.take(MAX_BODY_BYTES as u64)
                .read_to_end(&mut body)
                .map_err(ClientError::NoResponse)?;
        }
    }
    Ok(Response { status, body })
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
}
