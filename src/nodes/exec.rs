//! Running a program on this machine with a deadline, capturing exit status and output.
//!
//! The child gets its own process group so that a timeout kills the whole command tree
//! (`sh -c 'a | b'`), not just the shell. Daemons escape that group on purpose (`setsid`),
//! so a timed-out command never takes a daemon it started down with it.

use distest_nemeses::{ExecOutput, NodeError};
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// At most this much of each output stream is kept; the rest is drained and dropped so a
/// chatty command can neither block on a full pipe nor exhaust memory.
pub const MAX_CAPTURE_BYTES: usize = 16 * 1024 * 1024;

/// After the child exits, its output pipes may still be held open by a grandchild that did
/// not redirect them (a careless `cmd &`). We wait this long for them, then return anyway.
const PIPE_GRACE: Duration = Duration::from_millis(500);

/// The longest timeout honoured; longer ones (`Duration::MAX` as "no limit") are capped so
/// deadline arithmetic cannot overflow.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);

/// `now + timeout`, with `timeout` capped at [`MAX_TIMEOUT`].
pub fn deadline_after(timeout: Duration) -> Instant {
    Instant::now() + timeout.min(MAX_TIMEOUT)
}

/// What a finished local program returned. `status` is the exit code, or 128 + the signal
/// number when a signal ended it (the shell's convention).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawOutput {
    pub status: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Why a local program produced no exit status.
#[derive(Debug, thiserror::Error)]
pub enum LocalExecError {
    #[error("could not start `{program}`: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("`{program}` did not finish within {timeout_ms} ms and was killed")]
    Timeout { program: String, timeout_ms: u64 },
    #[error("could not wait for `{program}`: {source}")]
    Wait {
        program: String,
        source: std::io::Error,
    },
}

/// Runs `argv` on this machine on behalf of node `node`, in the shape [`NodeShell::exec`]
/// returns: a timeout is [`NodeError::Timeout`], a program that cannot start is
/// [`NodeError::Unreachable`]; `command` is what errors name.
///
/// [`NodeShell::exec`]: distest_nemeses::NodeShell::exec
pub fn exec_for_node(
    node: &str,
    argv: &[&str],
    command: &str,
    timeout: Duration,
) -> Result<ExecOutput, NodeError> {
    let raw = run_local(argv, None, timeout).map_err(|e| match e {
        LocalExecError::Timeout { timeout_ms, .. } => NodeError::Timeout {
            node: node.to_string(),
            command: command.to_string(),
            timeout_ms,
        },
        other => NodeError::Unreachable {
            node: node.to_string(),
            message: other.to_string(),
        },
    })?;
    Ok(ExecOutput {
        status: raw.status,
        stdout: String::from_utf8_lossy(&raw.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&raw.stderr).into_owned(),
    })
}

/// Runs `argv` (no shell) with `stdin` fed to it, kills its process group after `timeout`.
pub fn run_local(
    argv: &[&str],
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> Result<RawOutput, LocalExecError> {
    let program = argv.first().copied().unwrap_or_default().to_string();
    let mut cmd = Command::new(&program);
    cmd.args(argv.iter().skip(1))
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd.spawn().map_err(|source| LocalExecError::Spawn {
        program: program.clone(),
        source,
    })?;
    let pgid = child.id() as i32;

    // Feed stdin from a thread: a child that writes much before reading would otherwise
    // deadlock against us.
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let data = data.to_vec();
        thread::spawn(move || {
            let _ = pipe.write_all(&data);
        });
    }
    let stdout_buf = Arc::new(Mutex::new(Vec::new()));
    let stderr_buf = Arc::new(Mutex::new(Vec::new()));
    let (done_tx, done_rx) = mpsc::channel::<()>();
    spawn_reader(child.stdout.take(), stdout_buf.clone(), done_tx.clone());
    spawn_reader(child.stderr.take(), stderr_buf.clone(), done_tx);

    let deadline = deadline_after(timeout);
    let mut poll = Duration::from_millis(1);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(source) => {
                kill_group(pgid);
                let _ = child.wait();
                return Err(LocalExecError::Wait { program, source });
            }
        }
        let now = Instant::now();
        if now >= deadline {
            kill_group(pgid);
            let _ = child.wait();
            return Err(LocalExecError::Timeout {
                program,
                timeout_ms: timeout.as_millis() as u64,
            });
        }
        thread::sleep(poll.min(deadline - now));
        poll = (poll * 2).min(Duration::from_millis(20));
    };

    let pipes_deadline = Instant::now() + PIPE_GRACE;
    for _ in 0..2 {
        let left = pipes_deadline.saturating_duration_since(Instant::now());
        if done_rx.recv_timeout(left).is_err() {
            tracing::warn!(
                program = %program,
                "output pipes still open after exit; a background process kept them"
            );
            break;
        }
    }
    let stdout = std::mem::take(&mut *lock(&stdout_buf));
    let stderr = std::mem::take(&mut *lock(&stderr_buf));
    let code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    Ok(RawOutput {
        status: code,
        stdout,
        stderr,
    })
}

/// Reads `pipe` into `kept` as bytes arrive, so whatever was read is available even when a
/// background grandchild keeps the pipe open past the child's exit.
fn spawn_reader<R: Read + Send + 'static>(
    pipe: Option<R>,
    kept: Arc<Mutex<Vec<u8>>>,
    done: mpsc::Sender<()>,
) {
    thread::spawn(move || {
        if let Some(mut pipe) = pipe {
            let mut buf = [0u8; 8192];
            loop {
                match pipe.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        let mut kept = lock(&kept);
                        let room = MAX_CAPTURE_BYTES.saturating_sub(kept.len());
                        kept.extend_from_slice(&buf[..n.min(room)]);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        }
        let _ = done.send(());
    });
}

/// A poisoned buffer only means a reader thread panicked mid-append; the bytes are still
/// the best record of the output we have.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn kill_group(pgid: i32) {
    use nix::sys::signal::{killpg, Signal};
    use nix::unistd::Pid;
    let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_status_stdout_and_stderr() {
        let out = run_local(
            &["sh", "-c", "echo out; echo err >&2; exit 3"],
            None,
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(out.status, 3);
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
    }

    #[test]
    fn feeds_stdin() {
        let out = run_local(&["cat"], Some(b"hello"), Duration::from_secs(5)).unwrap();
        assert_eq!(out.stdout, b"hello");
    }

    #[test]
    fn timeout_kills_the_whole_command_tree() {
        let started = Instant::now();
        let err = run_local(
            &["sh", "-c", "sleep 30 | sleep 30"],
            None,
            Duration::from_millis(200),
        )
        .unwrap_err();
        assert!(matches!(
            err,
            LocalExecError::Timeout {
                timeout_ms: 200,
                ..
            }
        ));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_background_child_holding_the_pipe_does_not_block_the_return() {
        let started = Instant::now();
        let out = run_local(
            &["sh", "-c", "sleep 3 & echo done"],
            None,
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(out.status, 0);
        assert_eq!(out.stdout, b"done\n");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn missing_program_is_a_spawn_error() {
        let err =
            run_local(&["/nonexistent/dt-program"], None, Duration::from_secs(1)).unwrap_err();
        assert!(matches!(err, LocalExecError::Spawn { .. }));
    }

    #[test]
    fn an_unbounded_timeout_does_not_overflow() {
        let out = run_local(&["true"], None, Duration::MAX).unwrap();
        assert_eq!(out.status, 0);
    }

    #[test]
    fn signal_death_maps_to_128_plus_signal() {
        let out = run_local(&["sh", "-c", "kill -9 $$"], None, Duration::from_secs(5)).unwrap();
        assert_eq!(out.status, 137);
    }
}
