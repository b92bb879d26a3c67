//! `distest env up|down|status`: the local cluster of network namespaces.

#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<i32> {
    anyhow::bail!("distest env is not built yet")
}
