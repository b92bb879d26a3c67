//! A minimal HTTP/1.1 server side and client over tokio, enough for a JSON API.
//!
//! One request per connection (`Connection: close`), bodies framed by `Content-Length`,
//! hard limits on head and body sizes and a deadline on every exchange, so a slow or
//! hostile peer can neither hold a task forever nor make the store allocate without bound.
//! Keeping it this small keeps the bundled target free of a web framework.

use serde_json::Value;
use std::time::Duration;
use thiserror::Error;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Largest request or response head (request line + headers) accepted.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Largest body accepted; a whole replica state must fit (anti-entropy sends it).
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// Why an HTTP exchange failed.
#[derive(Debug, Error)]
pub enum HttpError {
    #[error("HTTP connection failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("malformed HTTP message: {0}")]
    Malformed(String),
    #[error("HTTP {what} is larger than the {limit_bytes}-byte limit")]
    TooLarge {
        what: &'static str,
        limit_bytes: usize,
    },
    #[error("HTTP exchange with {addr} did not finish within {timeout_ms} ms")]
    Timeout { addr: String, timeout_ms: u128 },
    #[error("HTTP body is not JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// A parsed request.
#[derive(Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub body: Vec<u8>,
}

/// Reads the head (start line + headers) and the `Content-Length` body of one message.
async fn read_message<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
) -> Result<(String, Vec<u8>), HttpError> {
    let mut head_bytes = 0usize;
    let mut start_line = String::new();
    let mut content_length = 0usize;
    let mut line = Vec::new();
    let mut first = true;
    loop {
        line.clear();
        // `take` bounds how much one line can make us buffer.
        let n = (&mut *reader)
            .take((MAX_HEAD_BYTES - head_bytes + 1) as u64)
            .read_until(b'\n', &mut line)
            .await?;
        if n == 0 {
            return Err(HttpError::Malformed(
                "connection closed before the head ended".into(),
            ));
        }
        head_bytes += n;
        if head_bytes > MAX_HEAD_BYTES {
            return Err(HttpError::TooLarge {
                what: "head",
                limit_bytes: MAX_HEAD_BYTES,
            });
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        if first {
            start_line = text.to_string();
            first = false;
            continue;
        }
        if text.is_empty() {
            break;
        }
        if let Some((name, value)) = text.split_once(':') {
            if name.trim().eq_ignore_ascii_case("transfer-encoding") {
                return Err(HttpError::Malformed(
                    "chunked bodies are not supported; send a Content-Length".into(),
                ));
            }
            if name.trim().eq_ignore_ascii_case("content-length") {
                content_length = value
                    .trim()
                    .parse()
                    .map_err(|_| HttpError::Malformed(format!("bad Content-Length {value:?}")))?;
            }
        }
    }
    if content_length > MAX_BODY_BYTES {
        return Err(HttpError::TooLarge {
            what: "body",
            limit_bytes: MAX_BODY_BYTES,
        });
    }
    let mut body = vec![0; content_length];
    reader.read_exact(&mut body).await?;
    Ok((start_line, body))
}

/// Reads one request from a client connection.
pub async fn read_request<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
) -> Result<Request, HttpError> {
    let (start, body) = read_message(reader).await?;
    let mut parts = start.split_whitespace();
    match (parts.next(), parts.next(), parts.next()) {
        (Some(method), Some(path), Some(version)) if version.starts_with("HTTP/1.") => {
            Ok(Request {
                method: method.to_string(),
                path: path.to_string(),
                body,
            })
        }
        _ => Err(HttpError::Malformed(format!("bad request line {start:?}"))),
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// Writes a JSON response and flushes it.
pub async fn write_response<W: AsyncWrite + Unpin>(
    writer: &mut W,
    status: u16,
    body: &Value,
) -> Result<(), HttpError> {
    let body = serde_json::to_vec(body)?;
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reason(status),
        body.len()
    );
    writer.write_all(head.as_bytes()).await?;
    writer.write_all(&body).await?;
    writer.flush().await?;
    Ok(())
}

/// Sends one request to `addr` and returns the status and JSON body (`null` when empty).
/// The whole exchange, connecting included, must finish within `timeout`.
pub async fn request(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
    timeout: Duration,
) -> Result<(u16, Value), HttpError> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        let body = match body {
            Some(b) => serde_json::to_vec(b)?,
            None => Vec::new(),
        };
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(&body).await?;
        stream.flush().await?;
        let mut reader = BufReader::new(stream);
        let (status_line, body) = read_message(&mut reader).await?;
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| HttpError::Malformed(format!("bad status line {status_line:?}")))?;
        let value = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body)?
        };
        Ok((status, value))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| HttpError::Timeout {
            addr: addr.to_string(),
            timeout_ms: timeout.as_millis(),
        })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn parses_a_request_with_a_body() {
        let raw = b"POST /counter/c/add HTTP/1.1\r\nHost: x\r\nContent-Length: 13\r\n\r\n{\"delta\": 5}\n";
        let mut reader = BufReader::new(&raw[..]);
        let req = read_request(&mut reader).await.unwrap();
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, "/counter/c/add");
        assert_eq!(req.body, b"{\"delta\": 5}\n");
    }

    #[tokio::test]
    async fn refuses_oversized_heads_and_bodies() {
        let mut raw = b"GET / HTTP/1.1\r\nX: ".to_vec();
        raw.extend(vec![b'a'; MAX_HEAD_BYTES]);
        raw.extend(b"\r\n\r\n");
        let err = read_request(&mut BufReader::new(&raw[..]))
            .await
            .unwrap_err();
        assert!(
            matches!(err, HttpError::TooLarge { what: "head", .. }),
            "{err}"
        );
        let raw = format!(
            "POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY_BYTES + 1
        );
        let err = read_request(&mut BufReader::new(raw.as_bytes()))
            .await
            .unwrap_err();
        assert!(
            matches!(err, HttpError::TooLarge { what: "body", .. }),
            "{err}"
        );
    }

    #[tokio::test]
    async fn chunked_bodies_are_refused_rather_than_misread() {
        let raw = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
        let err = read_request(&mut BufReader::new(&raw[..]))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("Content-Length"), "{err}");
    }

    #[tokio::test]
    async fn garbage_is_a_clean_error() {
        let err = read_request(&mut BufReader::new(&b"hello\r\n\r\n"[..]))
            .await
            .unwrap_err();
        assert!(matches!(err, HttpError::Malformed(_)), "{err}");
    }
}
