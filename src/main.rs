//! The `distest` binary: parses flags and hands each subcommand to `distest::commands`.

use clap::Parser;
use std::process::ExitCode;

/// mimalloc instead of the system allocator: reading a history allocates a few small
/// blocks per op (its `f`, its value's lists and strings), which glibc's malloc serves
/// markedly slower (see benches/check_files.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Multicall: installed as `raft-kv` or `crdt-store` (a symlink or copy of this binary),
    // it runs that bundled target, so `cargo run -- run --target kv` needs nothing else;
    // `distest latency-delayer ...` is the latency fault's helper process on a node.
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
