//! The `crdt-store` binary: everything lives in the library so distest can run it too.

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(crdt_store::main_with_args(std::env::args().collect()))
}
