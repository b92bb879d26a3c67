//! distest: the control node. The CLI (`commands`, flags only), the run orchestrator
//! (`run`), verification (`verify`), nodes, targets and their registry, and the one
//! signal handler (`signals`). The run directory is `distest-rundir`'s, time and
//! randomness `distest-generator`'s.

pub mod commands;
pub mod duration;
pub mod nodes;
pub mod run;
pub mod signals;
pub mod targets;
pub mod verify;

/// Exit code for "the run or command itself failed" (setup error, bad options, bad input).
pub const EXIT_ERROR: i32 = 3;

/// Joins an anyhow chain into one line: "what failed: why".
pub fn one_sentence(err: &anyhow::Error) -> String {
    err.chain()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}
