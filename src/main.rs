//! The `distest` binary: parses flags and hands each subcommand to `distest::commands`.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Multicall: installed as `raft-kv` or `crdt-store` (a symlink or copy of this binary),
    // it runs that bundled target, so `cargo run -- run --target kv` needs nothing else.
    if let Some(code) = distest::targets::multicall() {
        return ExitCode::from(code);
    }
    let cli = match distest::commands::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return ExitCode::from(distest::commands::usage_error(&e) as u8),
    };
    let code = distest::commands::main(cli);
    ExitCode::from(code as u8)
}
