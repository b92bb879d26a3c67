//! The raft-kv binary; everything lives in the library so distest can run it busybox-style.

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(raft_kv::main_with_args(std::env::args().collect()))
}
