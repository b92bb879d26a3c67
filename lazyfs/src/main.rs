//! `lazyfs` as a program of its own; the `distest` binary runs the same code when invoked
//! as `lazyfs` (multicall).

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    std::process::ExitCode::from(distest_lazyfs::main_with_args(args))
}
