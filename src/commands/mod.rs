//! The subcommands. Each file holds one command's flags (`Args`) and its `run`, which
//! turns them into calls of the library (`crate::run`, `crate::verify`, the registries,
//! `distest-rundir`, `distest-reports`) and returns the process exit code: 0 valid,
//! 1 invalid, 2 unknown, 3 the command failed. Nothing else imports this module.

pub mod check;
pub mod compare;
pub mod env;
pub mod ls;
pub mod report;
pub mod run;
pub mod suite;

use clap::{Parser, Subcommand};

pub use crate::{one_sentence, EXIT_ERROR};

#[derive(Parser, Debug)]
#[command(
    name = "distest",
    version,
    about = "Jepsen-style fault injection and history checking for distributed systems"
)]
pub struct Cli {
    /// Log verbosity (error, warn, info, debug, trace); also RUST_LOG.
    #[arg(long, global = true, default_value = "warn")]
    pub log_level: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a test: provision nodes, drive a workload under faults, check, report.
    Run(Box<run::Args>),
    /// Run a matrix of tests (targets × workloads × nemeses × bugs × seeds) from a TOML file.
    Suite(suite::Args),
    /// Check a history file or a run directory with one or more checkers.
    Check(check::Args),
    /// Bring a local cluster of network namespaces up or down, or show it.
    Env(env::Args),
    /// List the runs in the store with their verdicts.
    Ls(ls::Args),
    /// Render the HTML report of a run directory (or of a bare history.jsonl).
    Report(report::Args),
    /// Compare runs side by side (HTML and Markdown).
    Compare(compare::Args),
}

/// Prints clap's message for a command line it could not parse and returns the exit code:
/// 0 for `--help` and `--version` (asked for, not an error), otherwise 3. Clap's own 2
/// would read as "unknown verdict" to a script, which retries instead of failing.
/// A value its flag rejected (`--time-limit -1`) is one line: what, why, what to give.
pub fn usage_error(err: &clap::Error) -> i32 {
    if err.kind() == clap::error::ErrorKind::ValueValidation {
        let text = err.to_string();
        eprintln!("{}", text.lines().next().unwrap_or_default());
        return EXIT_ERROR;
    }
    let _ = err.print();
    if err.use_stderr() {
        EXIT_ERROR
    } else {
        0
    }
}

/// Runs the parsed command; errors become one sentence on stderr and exit code 3.
pub fn main(cli: Cli) -> i32 {
    init_tracing(&cli.log_level);
    let result = match cli.command {
        Command::Run(args) => run::run(*args),
        Command::Check(args) => check::run(args),
        Command::Suite(args) => suite::run(args),
        Command::Env(args) => env::run(args),
        Command::Ls(args) => ls::run(args),
        Command::Report(args) => report::run(args),
        Command::Compare(args) => compare::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", one_sentence(&err));
            EXIT_ERROR
        }
    }
}

fn init_tracing(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
