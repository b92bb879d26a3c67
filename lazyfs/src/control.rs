//! The control channel: a unix socket next to the mount, one JSON request line in, one
//! JSON answer line out.
//!
//! Requests: `{"cmd": "status"}`, `{"cmd": "checkpoint"}`, `{"cmd": "discard"}`,
//! `{"cmd": "discard", "torn": true, "prefix_bytes": 17}` (`prefix_bytes` optional: by
//! default the last write is cut at the 512-byte sector boundary nearest its middle). Answers: `{"ok": true, "result": ...}` (a [`Status`],
//! `null`, or a [`DiscardReport`]) or `{"ok": false, "error": "..."}`.
//!
//! A unix socket rather than a FIFO (which Jepsen's lazyfs uses): the nemesis needs the
//! answer — how much was dropped — and a socket path works from inside a node's network
//! namespace, because it is a file, not a network address.

use crate::fs::{LazyFs, Torn};
use crate::fuse::lock;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Longest request line accepted.
const MAX_REQUEST_BYTES: u64 = 4096;
/// How long a client may take to send its request, and we to answer.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase")]
pub enum Request {
    Status,
    Checkpoint,
    Discard {
        #[serde(default)]
        torn: bool,
        #[serde(default)]
        prefix_bytes: Option<u64>,
    },
}

/// Performs one request on the filesystem.
pub fn handle(fs: &Mutex<LazyFs>, request: &Request) -> Value {
    let mut fs = lock(fs);
    let result = match request {
        Request::Status => Ok(json!(fs.status())),
        Request::Checkpoint => fs.checkpoint().map(|()| Value::Null),
        Request::Discard { torn, prefix_bytes } => {
            let torn = torn.then_some(Torn {
                prefix_bytes: *prefix_bytes,
            });
            fs.discard(torn).map(|r| json!(r))
        }
    };
    match result {
        Ok(result) => json!({"ok": true, "result": result}),
        Err(e) => json!({"ok": false, "error": format!("the filesystem failed the request: {e}")}),
    }
}

/// Serves requests on `listener` until the process ends, one connection at a time.
pub fn serve(listener: UnixListener, fs: Arc<Mutex<LazyFs>>) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        if let Err(e) = answer(stream, &fs) {
            eprintln!("lazyfs: a control connection failed: {e}");
        }
    }
}

fn answer(stream: UnixStream, fs: &Mutex<LazyFs>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut line = String::new();
    BufReader::new((&stream).take(MAX_REQUEST_BYTES)).read_line(&mut line)?;
    let reply = match serde_json::from_str::<Request>(line.trim()) {
        Ok(request) => handle(fs, &request),
        Err(e) => {
            json!({"ok": false, "error": format!("unreadable request {:?}: {e}", line.trim())})
        }
    };
    let mut out = serde_json::to_vec(&reply).expect("values serialize");
    out.push(b'\n');
    (&stream).write_all(&out)
}

/// Sends `request` to the filesystem behind `socket`; returns its `result`, or the error
/// sentence.
pub fn call(socket: &Path, request: &Request) -> Result<Value, String> {
    let stream = UnixStream::connect(socket).map_err(|e| {
        format!(
            "cannot reach the lazyfs control socket {}: {e}; is the filesystem mounted?",
            socket.display()
        )
    })?;
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let mut line = serde_json::to_vec(request).expect("requests serialize");
    line.push(b'\n');
    (&stream)
        .write_all(&line)
        .map_err(|e| format!("sending to {}: {e}", socket.display()))?;
    let mut answer = String::new();
    BufReader::new(&stream)
        .read_line(&mut answer)
        .map_err(|e| format!("reading the answer of {}: {e}", socket.display()))?;
    let value: Value = serde_json::from_str(answer.trim()).map_err(|e| {
        format!(
            "unreadable answer {:?} from {}: {e}",
            answer.trim(),
            socket.display()
        )
    })?;
    if value["ok"] == true {
        Ok(value["result"].clone())
    } else {
        Err(value["error"]
            .as_str()
            .unwrap_or("the filesystem refused the request")
            .to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_read_as_documented() {
        let parse = |s: &str| serde_json::from_str::<Request>(s).unwrap();
        assert_eq!(parse(r#"{"cmd":"status"}"#), Request::Status);
        assert_eq!(
            parse(r#"{"cmd":"discard"}"#),
            Request::Discard {
                torn: false,
                prefix_bytes: None
            }
        );
        assert_eq!(
            parse(r#"{"cmd":"discard","torn":true,"prefix_bytes":3}"#),
            Request::Discard {
                torn: true,
                prefix_bytes: Some(3)
            }
        );
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"format"}"#).is_err());
    }
}
