//! HTTP plumbing shared by the target adapters: mapping transport errors to honest
//! outcomes, and a tiny blocking GET for health and leader probes (called from the
//! nemesis thread, outside the async runtime).

use distest_workloads::Completion;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Maps a transport error to an outcome. A request that never reached the server
/// (connection refused, no route) did not happen: `fail`. Anything after the request may
/// have been sent — timeout, reset, a half-read response — is unknown: `info`.
pub fn transport_error(value: &Value, err: &reqwest::Error) -> Completion {
    if err.is_connect() {
        Completion::fail(value.clone(), format!("connect: {}", root_cause(err)))
    } else if err.is_timeout() {
        Completion::info(value.clone(), "timeout")
    } else {
        Completion::info(value.clone(), format!("transport: {}", root_cause(err)))
    }
}

fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut e = err;
    while let Some(next) = e.source() {
        e = next;
    }
    e.to_string()
}

/// Maps an error body `{"error", "definite", "message"}` (raft-kv and crdt-store speak it)
/// to `fail` when the server guarantees the op was not applied, else `info`.
pub fn error_body(value: &Value, status: u16, body: &Value) -> Completion {
    let code = body
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or("http-error")
        .to_string();
    let error = serde_json::json!({"status": status, "code": code, "message": body.get("message").cloned().unwrap_or(Value::Null)});
    if body.get("definite").and_then(Value::as_bool) == Some(true) {
        Completion::fail(value.clone(), error)
    } else {
        Completion::info(value.clone(), error)
    }
}

/// The HTTP client one client process uses: the op timeout bounds every request, a
/// connect that takes more than a second is a refused op (`fail`).
pub fn client(op_timeout: std::time::Duration) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(op_timeout.max(std::time::Duration::from_millis(100)))
        .connect_timeout(std::time::Duration::from_secs(1))
        .pool_max_idle_per_host(1)
        .build()?)
}

/// Sends `req` and returns the JSON body of a 2xx answer; any other outcome is already
/// mapped to the op's honest completion (see [`transport_error`] and [`error_body`]).
pub async fn send_json(req: reqwest::RequestBuilder, value: &Value) -> Result<Value, Completion> {
    let resp = req.send().await.map_err(|e| transport_error(value, &e))?;
    let status = resp.status().as_u16();
    let body: Value = match resp.json().await {
        Ok(b) => b,
        // The server answered but the body was cut: the op may have been applied.
        Err(e) => return Err(transport_error(value, &e)),
    };
    if (200..300).contains(&status) {
        Ok(body)
    } else {
        Err(error_body(value, status, &body))
    }
}

/// Blocking `GET http://addr/path` returning the parsed JSON body of a 2xx response.
pub fn get_json(addr: SocketAddr, path: &str, timeout: Duration) -> Option<Value> {
    request_json(addr, "GET", path, None, timeout)
}

/// Blocking `POST http://addr/path` with a JSON body, returning the JSON of a 2xx answer.
pub fn post_json_value(
    addr: SocketAddr,
    path: &str,
    body: &Value,
    timeout: Duration,
) -> Option<Value> {
    request_json(addr, "POST", path, Some(body), timeout)
}

/// A minimal HTTP/1.0 exchange over a std socket returning the JSON of a 2xx answer.
fn request_json(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
    timeout: Duration,
) -> Option<Value> {
    match request_status_json(addr, method, path, body, timeout)? {
        (200..=299, value) => Some(value),
        _ => None,
    }
}

/// A minimal HTTP/1.0 exchange over a std socket: every step has `timeout`, the response
/// read is bounded (status bodies are small); the status and the JSON body of any answer,
/// `None` when there was no well-formed one.
pub fn request_status_json(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
    timeout: Duration,
) -> Option<(u16, Value)> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.set_write_timeout(Some(timeout)).ok()?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = Vec::with_capacity(4096);
    stream.take(1 << 20).read_to_end(&mut response).ok()?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse::<u16>().ok()?;
    Some((status, serde_json::from_str(body).ok()?))
}
