//! Provisioning: turns the node flags and `--target` into a target running on nodes.

use super::config::RunConfig;
use super::{Provisioned, RunLog};
use crate::targets::{self, TargetOptions};
use distest_nemeses::NodeShell;
use std::sync::Arc;
use std::time::Duration;

/// OS packages the faults need on every node.
fn nemesis_packages(nemesis: &[String]) -> Vec<&'static str> {
    let mut pkgs = Vec::new();
    for n in nemesis {
        match n.as_str() {
            "partition" | "loss" => pkgs.push("iptables"),
            "latency" => pkgs.push("iproute2"),
            "disk" => pkgs.push("fuse3"),
            "all" => pkgs.extend(["iptables", "iproute2"]),
            _ => {}
        }
    }
    pkgs
}

/// Whether the nemeses need the data directories served through lazyfs (`disk`).
fn uses_lazyfs(nemesis: &[String]) -> bool {
    nemesis
        .iter()
        .flat_map(|n| n.split(','))
        .any(|n| n.trim() == "disk")
}

/// Brings up the nodes the flags ask for, installs what is missing on them, and builds
/// the target on them. The returned guard tears the nodes down when dropped.
pub fn provision(cfg: &mut RunConfig, log: &RunLog) -> anyhow::Result<Provisioned> {
    if targets::is_in_process(&cfg.target) {
        let count = cfg
            .nodes_spec
            .strip_prefix("local:")
            .and_then(|n| n.parse().ok())
            .unwrap_or(5);
        let target = targets::build_in_process(&cfg.target, count)?;
        cfg.nodes = target.node_names();
        log.line(&format!(
            "in-process target {} with {count} virtual nodes",
            cfg.target
        ));
        return Ok(Provisioned {
            target,
            shells: Vec::new(),
            guard: Box::new(()),
        });
    }
    log.line(&format!("provisioning nodes ({})", cfg.nodes_spec));
    // Two runs on one local cluster would kill each other's daemons and mix histories
    // silently: a run holds its cluster exclusively until its guard is dropped.
    let run_lock = match cfg.node_args.plan()? {
        crate::nodes::args::NodePlan::Local(spec) => Some(lock_cluster_for_run(&spec)?),
        crate::nodes::args::NodePlan::Ssh(..) => None,
    };
    let nodes = cfg.node_args.resolve()?;
    let remotes = nodes.remotes();
    cfg.nodes = nodes.names();
    let mut packages: Vec<&str> = targets::packages(&cfg.target).to_vec();
    packages.extend(nemesis_packages(&cfg.nemesis));
    packages.sort_unstable();
    packages.dedup();
    if !packages.is_empty() {
        log.line(&format!("ensuring packages {}", packages.join(" ")));
        for (node, result) in remotes.iter().zip(crate::nodes::par_map(&remotes, |n| {
            crate::nodes::ensure_packages(n.as_ref(), &packages)
        })) {
            result.map_err(|e| {
                anyhow::anyhow!(
                    "could not install {} on {}: {e}",
                    packages.join(" "),
                    node.name()
                )
            })?;
        }
    }
    let target = targets::build(
        &cfg.target,
        remotes.clone(),
        TargetOptions {
            bugs: cfg.bug.clone(),
            op_timeout: Duration::from_secs_f64(cfg.op_timeout_s),
            settings: cfg.settings.clone(),
            lazyfs: uses_lazyfs(&cfg.nemesis),
        },
    )?;
    let shells: Vec<Arc<dyn NodeShell>> = remotes
        .into_iter()
        .map(|r| r as Arc<dyn NodeShell>)
        .collect();
    Ok(Provisioned {
        target,
        shells,
        // Fields drop in order: the cluster is torn down before the lock is released.
        guard: Box::new((nodes, run_lock)),
    })
}

/// Takes `<base>/<id>.run.lock` without waiting; the kernel releases it when this process
/// ends, even by SIGKILL.
fn lock_cluster_for_run(
    spec: &crate::nodes::ClusterSpec,
) -> anyhow::Result<nix::fcntl::Flock<std::fs::File>> {
    use nix::fcntl::{Flock, FlockArg};
    std::fs::create_dir_all(&spec.base_dir)?;
    let path = spec.base_dir.join(format!("{}.run.lock", spec.cluster_id));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("could not open the run lock {}: {e}", path.display()))?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|_| {
        anyhow::anyhow!(
            "local cluster {} is in use by another distest run; wait for it to finish or pass another --cluster (and --subnet)",
            spec.cluster_id
        )
    })
}
