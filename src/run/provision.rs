//! Provisioning: turns the node flags and `--target` into a target running on nodes.
//! What a target and the faults need (packages, in-process or not, how to build it) comes
//! from the registries; nothing here names a target or a fault.
//!
//! A run never adopts state it did not create. On a local cluster it first takes the
//! cluster's run lock (`nodes::runlock`): a live owner refuses the run; a record of a run
//! that did not finish, or signs of one (processes, daemons named by pid files, mounts,
//! firewall rules), make it tear the cluster down completely and say so in one line
//! before building it afresh. On SSH nodes it removes what an earlier run left (daemons
//! found by their pid files, fault rules, mounts, data) and claims them with a record of
//! its own. Every run then starts on empty node data and log directories.

use super::config::RunConfig;
use super::{NodesGuard, Provisioned, RunLog};
use crate::nodes::args::NodePlan;
use crate::nodes::cleanup;
use crate::nodes::local::ClusterSpec;
use crate::nodes::names::ClusterNames;
use crate::nodes::runlock::{RunLock, RunRecord, Taken};
use crate::nodes::{sweep, LocalCluster, Nodes, Remote, SshNode};
use crate::targets::{registry, TargetContext, TargetOptions};
use distest_nemeses::NodeShell;
use std::sync::Arc;
use std::time::Duration;

/// What a local cluster itself needs on this machine: `ip` and `iptables`.
pub const LOCAL_CLUSTER_PACKAGES: [&str; 2] = ["iproute2", "iptables"];

/// Brings up the nodes the flags ask for, installs what is missing on them, and builds
/// the target on them. The returned guard tears the nodes down when released.
pub fn provision(cfg: &mut RunConfig, log: &RunLog) -> anyhow::Result<Provisioned> {
    // Every fault the run may perform, a schedule file's included: packages and lazyfs
    // follow from these.
    let faults =
        distest_nemeses::resolve_names(&cfg.fault_names()?).map_err(|e| anyhow::anyhow!("{e}"))?;
    let test = &cfg.test;
    let entry = registry::find(test.target_file.as_deref().unwrap_or(&test.target))?;
    let options = TargetOptions {
        bugs: test.bug.clone(),
        op_timeout: Duration::from_secs_f64(test.op_timeout_s),
        settings: test.settings.clone(),
        clock_faults: faults.iter().any(|f| f.name == "clock"),
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
            run_dir: cfg.run_dir.clone(),
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
    let mut packages: Vec<String> = entry.packages.clone();
    packages.extend(
        faults
            .iter()
            .flat_map(|f| f.packages.iter())
            .map(|p| p.to_string()),
    );
    let say = |line: &str| log.say(line);
    log.line(&format!("provisioning nodes ({})", cfg.test.nodes_spec));
    let guard = match cfg.node_args.plan()? {
        NodePlan::Local(spec) => {
            // Everything lands on this machine: install it before the first namespace.
            let mut here: Vec<&str> = LOCAL_CLUSTER_PACKAGES.to_vec();
            here.extend(packages.iter().map(String::as_str));
            here.sort_unstable();
            here.dedup();
            crate::nodes::host::require_root().map_err(|e| {
                anyhow::anyhow!(
                    "{e}{}",
                    missing_here(&here)
                        .map(|m| format!(" (this machine also lacks {m})"))
                        .unwrap_or_default()
                )
            })?;
            crate::nodes::packages::ensure_packages_saying(
                &crate::nodes::packages::ThisMachine,
                &here,
                &say,
            )?;
            let (cluster, lock) = claim_local_cluster(spec, log)?;
            let id = cluster.spec().cluster_id.clone();
            let base = cluster.spec().base_dir.clone();
            crate::signals::set_leftover_note(Some(format!(
                "local cluster {id} (its namespaces, the target's daemons and any fault in force); `distest env down --cluster {id} --base-dir {}` removes it",
                base.display()
            )));
            RunGuard {
                nodes: Nodes::Local(cluster),
                claim: Claim::Local(lock),
                released: false,
            }
        }
        NodePlan::Ssh(..) => {
            let nodes = cfg.node_args.resolve()?;
            let Nodes::Ssh(ssh) = &nodes else {
                unreachable!("an SSH plan resolves to SSH nodes")
            };
            let ssh = ssh.clone();
            crate::signals::set_leftover_note(Some(format!(
                "the target's daemons and any fault in force on {}; `distest env down` with the same --node/--nodes-file flags removes them",
                nodes.names().join(", ")
            )));
            // Built first: if claiming fails half-way, its drop removes the records.
            let guard = RunGuard {
                nodes,
                claim: Claim::Ssh(ssh.clone()),
                released: false,
            };
            claim_ssh_nodes(&ssh, log)?;
            guard
        }
    };
    let nodes = &guard.nodes;
    let remotes = nodes.remotes();
    cfg.test.nodes = nodes.names();
    for (node, result) in remotes.iter().zip(crate::nodes::par_map(&remotes, |n| {
        sweep::empty_dirs(n.as_ref())
    })) {
        result.map_err(|e| {
            anyhow::anyhow!(
                "could not empty the data and log directories of {}: {e}",
                node.name()
            )
        })?;
    }
    packages.sort_unstable();
    packages.dedup();
    if !packages.is_empty() {
        let packages: Vec<&str> = packages.iter().map(String::as_str).collect();
        log.line(&format!("ensuring packages {}", packages.join(" ")));
        for (node, result) in remotes.iter().zip(crate::nodes::par_map(&remotes, |n| {
            crate::nodes::packages::ensure_packages_saying(n.as_ref(), &packages, &say)
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
        run_dir: cfg.run_dir.clone(),
    })?;
    let shells: Vec<Arc<dyn NodeShell>> = remotes
        .into_iter()
        .map(|r| r as Arc<dyn NodeShell>)
        .collect();
    Ok(Provisioned {
        target,
        shells,
        guard: Box::new(guard),
    })
}

/// The subset of `packages` missing on this machine, as one phrase; `None` when all are
/// there or it cannot tell.
fn missing_here(packages: &[&str]) -> Option<String> {
    let out = std::process::Command::new("dpkg-query")
        .args(["-W", "-f=${Package} ${db:Status-Status}\n"])
        .args(packages)
        .output()
        .ok()?;
    let installed = String::from_utf8_lossy(&out.stdout);
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| !installed.lines().any(|l| l == format!("{p} installed")))
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "{}: `sudo apt-get install -y {}` installs them, or distest does when run as root",
            missing.join(", "),
            missing.join(" ")
        )
    })
}

/// Takes the cluster's run lock (refusing a live owner), removes what a run that did not
/// finish left, records this run, and brings the cluster up.
fn claim_local_cluster(spec: ClusterSpec, log: &RunLog) -> anyhow::Result<(LocalCluster, RunLock)> {
    let names = ClusterNames::new(&spec.cluster_id)?;
    let (mut lock, previous) = match RunLock::take(&spec.base_dir, &spec.cluster_id)? {
        Taken::Free(lock, previous) => (lock, previous),
        Taken::InUse(holder) => anyhow::bail!(
            "local cluster {} is in use by a live distest run ({}); wait for it to finish or stop it, or pass another --cluster and --subnet",
            spec.cluster_id,
            holder.map(|h| h.describe()).unwrap_or_else(|| "it has not said who it is yet".into())
        ),
    };
    let cluster_dir = spec.cluster_dir();
    let bridge_up = crate::nodes::host::list_links()?.contains(&names.bridge());
    let (whose, cluster_was_up) = match &previous {
        Some(record) => {
            let how = if record.left_running {
                "left running on purpose (--leave-running)"
            } else {
                "that ended without cleaning up (killed, or abandoned on a third signal)"
            };
            (
                Some(format!(
                    "what a run left (pid {}, started {}, {how})",
                    record.pid, record.started_at
                )),
                record.cluster_was_up,
            )
        }
        None => {
            let evidence = cleanup::evidence(&names, &cluster_dir)?;
            let whose = (!evidence.is_empty())
                .then(|| format!("what an earlier run left ({})", evidence.join(", ")));
            // No record: the cluster was up before (`distest env up`) if it is up now.
            (whose, bridge_up)
        }
    };
    if let Some(whose) = whose {
        let report = crate::nodes::local::down(&spec.cluster_id, &spec.base_dir).map_err(|e| {
            anyhow::anyhow!(
                "could not remove {whose} from local cluster {}: {e}; run `distest env down --cluster {} --base-dir {}`",
                spec.cluster_id,
                spec.cluster_id,
                spec.base_dir.display()
            )
        })?;
        let line = format!(
            "distest: local cluster {}: removed {whose}: {}; starting afresh",
            spec.cluster_id,
            report.summary()
        );
        if report.is_empty() {
            log.line(&line);
        } else {
            log.say(&line);
        }
    }
    lock.write(&RunRecord::of_this_process(cluster_was_up))?;
    let mut cluster = match LocalCluster::up(spec) {
        Ok(c) => c,
        Err(e) => {
            // `up` removed what it built; nothing of this run is left to record.
            let _ = lock.clear();
            return Err(e.into());
        }
    };
    if cluster_was_up {
        // It was `distest env up`'s before the dead run: it stays up after this one too.
        cluster.disown();
    }
    Ok((cluster, lock))
}

/// Cleans every SSH node of what an earlier run left and claims it for this run; says in
/// one line what it removed, if anything.
fn claim_ssh_nodes(nodes: &[Arc<SshNode>], log: &RunLog) -> anyhow::Result<()> {
    let owner = sweep::Owner::this_process();
    let results = crate::nodes::par_map(nodes, |node| -> anyhow::Result<Vec<String>> {
        let node: Arc<dyn Remote> = node.clone();
        let previous = sweep::read_record(node.as_ref())?;
        if let Some(Some(live)) = &previous {
            if live.is_alive_elsewhere_here() {
                anyhow::bail!(
                    "SSH node {} is in use by a live distest run ({}); wait for it to finish or stop it",
                    node.name(),
                    live.describe()
                );
            }
        }
        let mut found = sweep::clean(&node)?;
        match &previous {
            Some(Some(dead)) => found.push(format!("left by run {}", dead.describe())),
            Some(None) if found.is_empty() => {
                found.push("the record of a run that did not finish".into())
            }
            _ => {}
        }
        sweep::write_record(node.as_ref(), &owner)?;
        Ok(found)
    });
    let mut removed = Vec::new();
    for (node, result) in nodes.iter().zip(results) {
        let found = result?;
        if !found.is_empty() {
            removed.push(format!("{}: {}", node.name(), found.join(", ")));
        }
    }
    if !removed.is_empty() {
        log.say(&format!(
            "distest: removed what an earlier run left on the SSH nodes before starting: {}",
            removed.join("; ")
        ));
    }
    Ok(())
}

/// How a run holds its nodes: the local cluster's run lock, or its record on each SSH node.
enum Claim {
    Local(RunLock),
    Ssh(Vec<Arc<SshNode>>),
}

/// What a run holds on its nodes until it is over: the nodes (a local cluster it created
/// is removed on release) and its claim on them. Released on drop, too, when provisioning
/// fails half-way.
struct RunGuard {
    nodes: Nodes,
    claim: Claim,
    released: bool,
}

impl RunGuard {
    fn release_now(&mut self) -> Option<String> {
        if std::mem::replace(&mut self.released, true) {
            return None;
        }
        let left = match (&mut self.nodes, &mut self.claim) {
            (Nodes::Local(cluster), Claim::Local(lock)) => {
                let left = release_local(cluster);
                if left.is_none() {
                    let _ = lock.clear();
                }
                left
            }
            (_, Claim::Ssh(nodes)) => release_ssh(nodes),
            _ => None,
        };
        if left.is_none() {
            crate::signals::set_leftover_note(None);
        }
        left
    }
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        if let Some(left) = self.release_now() {
            tracing::error!("{left}");
        }
    }
}

impl NodesGuard for RunGuard {
    fn release(mut self: Box<Self>) -> Option<String> {
        self.release_now()
    }

    fn leave_running(mut self: Box<Self>) {
        self.released = true;
        if let (Nodes::Local(cluster), Claim::Local(lock)) = (&mut self.nodes, &mut self.claim) {
            let was_up = !cluster.owns_cluster();
            cluster.disown();
            let mut record = RunRecord::of_this_process(was_up);
            record.left_running = true;
            let _ = lock.write(&record);
        }
    }
}

/// Removes a cluster this run created; checks one it found up holds nothing of the run.
/// Returns what is left, if anything, as a sentence.
fn release_local(cluster: &mut LocalCluster) -> Option<String> {
    let spec = cluster.spec().clone();
    let id = &spec.cluster_id;
    if cluster.owns_cluster() {
        cluster.disown();
        return crate::nodes::local::down(id, &spec.base_dir).err().map(|e| {
            format!(
                "local cluster {id} could not be removed completely ({e}); the next run on it removes the rest, or `distest env down --cluster {id} --base-dir {}` does",
                spec.base_dir.display()
            )
        });
    }
    let names = ClusterNames::new(id).ok()?;
    match cleanup::evidence(&names, &spec.cluster_dir()) {
        Ok(left) if left.is_empty() => None,
        Ok(left) => Some(format!(
            "local cluster {id} still holds {}; the next run on it removes them, or `distest env down --cluster {id}` does",
            left.join(", ")
        )),
        Err(e) => Some(format!("could not check what is left on cluster {id}: {e}")),
    }
}

/// Removes this run's record from every SSH node.
fn release_ssh(nodes: &[Arc<SshNode>]) -> Option<String> {
    let mut failed = Vec::new();
    for node in nodes {
        if let Err(e) = sweep::remove_record(node.as_ref()) {
            failed.push(format!("{}: {e}", node.name()));
        }
    }
    (!failed.is_empty())
        .then(|| format!("could not remove the run's record on {}", failed.join("; ")))
}

impl NodesGuard for () {
    fn release(self: Box<Self>) -> Option<String> {
        None
    }
    fn leave_running(self: Box<Self>) {}
}
