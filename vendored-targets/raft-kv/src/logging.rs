//! Timestamped lines on stderr. The timestamp is the node's wall clock (so a clock-skew
//! nemesis shows up in the log), the rest is one readable sentence.

use std::io::Write;

/// Writes one log line: `2026-11-25T08:00:00.123Z n1 <message>`.
pub fn log_line(node: &str, message: &str) {
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
    let mut err = std::io::stderr().lock();
    // Losing a log line is better than crashing the node over a closed stderr.
    let _ = writeln!(err, "{now} {node} {message}");
}

/// `log!(node, "format", args)`.
#[macro_export]
macro_rules! log {
    ($node:expr, $($arg:tt)*) => {
        $crate::logging::log_line(&$node, &format!($($arg)*))
    };
}
