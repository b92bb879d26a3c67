//! Provisioning: turns `--nodes` and `--target` into a target running on nodes.

use super::config::RunConfig;
use super::{Provisioned, RunLog};

/// Brings up the nodes `cfg.nodes_spec` asks for and builds the target on them.
pub fn provision(cfg: &mut RunConfig, log: &RunLog) -> anyhow::Result<Provisioned> {
    if crate::targets::is_in_process(&cfg.target) {
        let count = node_count(&cfg.nodes_spec).unwrap_or(5);
        let target = crate::targets::build_in_process(&cfg.target, count)?;
        cfg.nodes = target.node_names();
        log.line(&format!("in-process target {} with {count} virtual nodes", cfg.target));
        return Ok(Provisioned {
            target,
            shells: Vec::new(),
            guard: Box::new(()),
        });
    }
    anyhow::bail!("target {} needs nodes, which are not wired yet", cfg.target)
}

/// `local:N` → N.
fn node_count(spec: &str) -> Option<usize> {
    spec.strip_prefix("local:").and_then(|n| n.parse().ok())
}
