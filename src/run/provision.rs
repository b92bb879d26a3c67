//! Provisioning: turns the node flags and `--target` into a target running on nodes.
//! What a target and the faults need (packages, in-process or not, how to build it) comes
//! from the registries; nothing here names a target or a fault.

use super::config::RunConfig;
use super::{Provisioned, RunLog};
use crate::targets::{registry, TargetContext, TargetOptions};
use distest_nemeses::NodeShell;
use std::sync::Arc;
use std::time::Duration;

/// Brings up the nodes the flags ask for, installs what is missing on them, and builds
/// the target on them. The returned guard tears the nodes down when dropped.
pub fn provision(cfg: &mut RunConfig, log: &RunLog) -> anyhow::Result<Provisioned> {
    let test = &cfg.test;
    let entry = registry::find(&test.target)?;
    let faults = distest_nemeses::resolve_names(&super::fault_names(test))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let options = TargetOptions {
        bugs: test.bug.clone(),
        op_timeout: Duration::from_secs_f64(test.op_timeout_s),
        settings: test.settings.clone(),
        workload: test.workload.clone(),
        seed: test.seed,
        lazyfs: distest_nemeses::needs_lazyfs(&faults),
    };
    if entry.in_process {
        let count = test
            .nodes_spec
            .strip_prefix("local:")
            .and_then(|n| n.parse().ok())
            .unwrap_or(crate::nodes::args::DEFAULT_LOCAL_NODES);
        let target = entry.build(TargetContext {
            nodes: Vec::new(),
            node_count: count,
            options,
        })?;
        cfg.test.nodes = target.node_names();
        log.line(&format!(
            "in-process target {} with {count} virtual nodes",
            cfg.test.target
        ));
        return Ok(Provisioned {
            target,
            shells: Vec::new(),
            guard: Box::new(()),
        });
    }
    log.line(&format!("provisioning nodes ({})", test.nodes_spec));
    // Two runs on one local cluster would kill each other's daemons and mix histories
    // silently: a run holds its cluster exclusively until its guard is dropped.
    let run_lock = match cfg.node_args.plan()? {
        crate::nodes::args::NodePlan::Local(spec) => Some(lock_cluster_for_run(&spec)?),
        crate::nodes::args::NodePlan::Ssh(..) => None,
    };
    let nodes = cfg.node_args.resolve()?;
    let remotes = nodes.remotes();
    cfg.test.nodes = nodes.names();
    let mut packages: Vec<String> = entry.packages.clone();
    packages.extend(
        faults
            .iter()
            .flat_map(|f| f.packages.iter())
            .map(|p| p.to_string()),
    );
    packages.sort_unstable();
    packages.dedup();
    if !packages.is_empty() {
        let packages: Vec<&str> = packages.iter().map(String::as_str).collect();
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
    let target = entry.build(TargetContext {
        node_count: remotes.len(),
        nodes: remotes.clone(),
        options,
    })?;
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
