//! `distest env up|down|status`: the local cluster of network namespaces (and a
//! reachability check of SSH nodes).
//!
//! `up` is idempotent: it creates what is missing and leaves the cluster running for later
//! `distest run --nodes local:N` calls. `down` finds everything of a cluster by name, so it
//! also cleans up after a control node that was SIGKILLed mid-setup.

use crate::nodes::args::NodePlan;
use crate::nodes::cleanup::{self, Scope};
use crate::nodes::local::{self, LocalCluster};
use crate::nodes::names::ClusterNames;
use crate::nodes::runlock::{self, RunLock, Taken};
use crate::nodes::ssh::SshTarget;
use crate::nodes::{par_map, sweep, NodeArgs, NodeShell, Nodes, SshNode, SshOptions};
use anyhow::Context;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(clap::Subcommand, Debug)]
pub enum Action {
    /// Create the local cluster (or check SSH nodes answer) and leave it running
    Up(NodeFlags),
    /// Remove a local cluster: namespaces and their processes, links, iptables rules, files
    Down(DownArgs),
    /// Show local clusters (or whether SSH nodes answer)
    Status(StatusArgs),
    /// Print the OS packages nodes need for targets and faults, one per line (what
    /// scripts/setup.sh installs); all of them unless --target / --nemesis narrow it
    Packages(PackagesArgs),
}

#[derive(clap::Args, Debug)]
pub struct PackagesArgs {
    /// Only this target's packages (repeatable)
    #[arg(long)]
    pub target: Vec<String>,
    /// Only these faults' packages (comma separated, as for `distest run`)
    #[arg(long, value_delimiter = ',')]
    pub nemesis: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct NodeFlags {
    #[command(flatten)]
    pub nodes: NodeArgs,
}

#[derive(clap::Args, Debug)]
pub struct DownArgs {
    #[command(flatten)]
    pub nodes: NodeArgs,
    /// Remove every distest cluster on this machine, not only --cluster
    #[arg(long)]
    pub all: bool,
    /// Also remove a cluster a live `distest run` is using: that run is killed first
    #[arg(long)]
    pub force: bool,
}

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub nodes: NodeArgs,
    /// Print the status as JSON
    #[arg(long)]
    pub json: bool,
}

/// Budget for the command that proves an SSH node answers.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

pub fn run(args: Args) -> anyhow::Result<i32> {
    match args.action {
        Action::Up(flags) => up(&flags.nodes),
        Action::Down(down_args) => down(&down_args),
        Action::Status(status_args) => status(&status_args),
        Action::Packages(p) => {
            for package in crate::targets::registry::packages_for(&p.target, &p.nemesis)? {
                println!("{package}");
            }
            Ok(0)
        }
    }
}

fn up(flags: &NodeArgs) -> anyhow::Result<i32> {
    // Ctrl-C while the cluster is being built removes the half-built cluster.
    crate::signals::install(crate::signals::OnSignal::CleanupAndExit)?;
    let nodes = flags.resolve().context("could not bring the nodes up")?;
    match nodes {
        Nodes::Local(cluster) => {
            print_cluster(&cluster);
            cluster.keep();
            Ok(0)
        }
        ssh @ Nodes::Ssh(_) => {
            for node in ssh.remotes() {
                println!("{:<20} {:<40} reachable", node.name(), node.address());
            }
            Ok(0)
        }
    }
}

fn print_cluster(cluster: &LocalCluster) {
    let spec = cluster.spec();
    let verb = if cluster.owns_cluster() {
        "created"
    } else {
        "already up"
    };
    println!(
        "cluster {} {verb}: {} nodes in {}, bridge {} on this host",
        spec.cluster_id,
        spec.node_count,
        spec.subnet,
        spec.subnet.bridge_address()
    );
    for node in cluster.local_nodes() {
        println!(
            "  {:<4} {:<15} netns {:<14} data {}",
            node.name(),
            node.address(),
            node.namespace(),
            crate::nodes::Remote::data_dir(node.as_ref()).display()
        );
    }
    println!(
        "run a command on a node with `ip netns exec {} sh`; remove it with `distest env down --cluster {}`",
        cluster.local_nodes()[0].namespace(),
        spec.cluster_id
    );
}

fn down(args: &DownArgs) -> anyhow::Result<i32> {
    if let NodePlan::Ssh(..) = args.nodes.plan()? {
        return down_ssh(&args.nodes, args.force);
    }
    let scope = if args.all {
        Scope::All
    } else {
        Scope::Cluster(ClusterNames::new(&args.nodes.cluster_id)?)
    };
    // Hold the run lock of every cluster in scope while removing it: no run starts on
    // it meanwhile, and a live run on it is refused unless --force.
    let base = &args.nodes.base_dir;
    let ids = match &scope {
        Scope::Cluster(names) => vec![names.id().to_string()],
        Scope::All => cluster_ids_with_locks(base),
    };
    let mut locks = Vec::new();
    for id in &ids {
        locks.push(take_run_lock(base, id, args.force)?);
    }
    let report = cleanup::teardown(&scope, base)
        .context("could not remove the local cluster completely; run `distest env down` again or remove what `distest env status` shows by hand")?;
    for lock in locks.iter_mut().flatten() {
        // Whatever a run left there is gone now.
        lock.clear()?;
    }
    let what = match &scope {
        Scope::All => "all distest clusters".to_string(),
        Scope::Cluster(names) => format!("cluster {}", names.id()),
    };
    if report.is_empty() {
        println!("{what}: nothing to remove");
    } else {
        println!("{what}: removed {}", report.summary());
    }
    Ok(0)
}

/// The ids of clusters whose run lock files are in `base`.
fn cluster_ids_with_locks(base: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(base)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_suffix(".run.lock"))
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Takes cluster `id`'s run lock for `env down` (`None` when no run ever used `base`).
/// A live run holding it refuses the removal, unless `force`: then that run is killed
/// (and said so) and the lock taken once the kernel released it.
fn take_run_lock(base: &std::path::Path, id: &str, force: bool) -> anyhow::Result<Option<RunLock>> {
    if !runlock::path(base, id).exists() {
        return Ok(None);
    }
    let holder = match RunLock::take(base, id)? {
        Taken::Free(lock, _) => return Ok(Some(lock)),
        Taken::InUse(holder) => holder,
    };
    let who = holder
        .as_ref()
        .map(|h| h.describe())
        .unwrap_or_else(|| "it has not said who it is yet".into());
    if !force {
        anyhow::bail!(
            "local cluster {id} is in use by a live distest run ({who}); stop that run (Ctrl-C) and it removes the cluster itself, or pass --force to kill it and remove the cluster under it"
        );
    }
    let Some(pid) = holder.map(|h| h.pid).filter(|p| *p > 1) else {
        anyhow::bail!(
            "local cluster {id} is in use by a distest run that has not written its pid yet; try again in a moment"
        );
    };
    println!("cluster {id}: --force: killing the distest run using it ({who}) with SIGKILL");
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    let deadline = std::time::Instant::now() + FORCE_WAIT;
    loop {
        if let Taken::Free(lock, _) = RunLock::take(base, id)? {
            return Ok(Some(lock));
        }
        if std::time::Instant::now() >= deadline {
            anyhow::bail!(
                "the distest run using cluster {id} (pid {pid}) still held its lock {} s after SIGKILL; check it with `ps -p {pid}`",
                FORCE_WAIT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// How long `env down --force` waits for a killed run to let go of its cluster.
const FORCE_WAIT: Duration = Duration::from_secs(10);

/// On SSH nodes a run leaves things behind only when the control node died mid-run (or
/// `--leave-running`): daemons, fault rules, mounts, data. Remove exactly those, found
/// generically (pid files, our chains), whatever target or fault left them. A node whose
/// record names a live run on this machine is refused unless `--force`.
fn down_ssh(flags: &NodeArgs, force: bool) -> anyhow::Result<i32> {
    let nodes = flags.resolve()?;
    let remotes = nodes.remotes();
    let results = crate::nodes::par_map(&remotes, |node| -> anyhow::Result<Vec<String>> {
        if let Some(Some(owner)) = sweep::read_record(node.as_ref())? {
            if owner.is_alive_elsewhere_here() {
                if !force {
                    anyhow::bail!(
                        "node {} is in use by a live distest run ({}); stop that run (Ctrl-C) and it cleans up itself, or pass --force to kill it and clean the node under it",
                        node.name(),
                        owner.describe()
                    );
                }
                println!(
                    "{}: --force: killing the distest run using it ({}) with SIGKILL",
                    node.name(),
                    owner.describe()
                );
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(owner.pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        let found = sweep::clean(node)?;
        sweep::remove_record(node.as_ref())?;
        Ok(found)
    });
    let mut failed = false;
    for (node, result) in remotes.iter().zip(results) {
        match result {
            Ok(found) if found.is_empty() => println!("{}: nothing to remove", node.name()),
            Ok(found) => println!("{}: removed {}", node.name(), found.join(", ")),
            Err(e) => {
                failed = true;
                println!(
                    "{}: could not clean: {}",
                    node.name(),
                    super::one_sentence(&e)
                );
            }
        }
    }
    if failed {
        anyhow::bail!("some SSH nodes could not be cleaned (see above); fix their access or stop the run using them, then run `distest env down` again");
    }
    Ok(0)
}

fn status(args: &StatusArgs) -> anyhow::Result<i32> {
    if let NodePlan::Ssh(targets, options) = args.nodes.plan()? {
        return ssh_status(&targets, &options, args.json);
    }
    let clusters = local::status(&args.nodes.base_dir)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&clusters)?);
        return Ok(0);
    }
    if clusters.is_empty() {
        println!("no local distest cluster is up; create one with `distest env up --nodes 5`");
    }
    for cluster in &clusters {
        let layout = cluster
            .spec
            .as_ref()
            .map(|s| format!("{} nodes in {}", s.node_count, s.subnet))
            .unwrap_or_else(|| "layout unknown (no state file under the base dir)".to_string());
        let bridge = if cluster.bridge_up {
            "bridge up"
        } else {
            "bridge missing"
        };
        println!("cluster {}: {layout}, {bridge}", cluster.cluster_id);
        for node in &cluster.nodes {
            println!(
                "  {:<4} {:<18} netns {:<14} {} processes",
                node.name,
                node.address.as_deref().unwrap_or("no address"),
                node.namespace,
                node.processes
            );
        }
    }
    Ok(0)
}

fn ssh_status(targets: &[SshTarget], options: &SshOptions, json: bool) -> anyhow::Result<i32> {
    let results = par_map(targets, |t| {
        SshNode::connect(t, options)
            .and_then(|n| n.exec_ok("uname -srn", PROBE_TIMEOUT))
            .map(|out| out.stdout.trim().to_string())
    });
    let mut all_ok = true;
    let rows: Vec<serde_json::Value> = targets
        .iter()
        .zip(&results)
        .map(|(t, r)| {
            all_ok &= r.is_ok();
            match r {
                Ok(system) => {
                    serde_json::json!({"node": t.host, "reachable": true, "system": system})
                }
                Err(e) => {
                    serde_json::json!({"node": t.host, "reachable": false, "error": e.to_string()})
                }
            }
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        for (t, r) in targets.iter().zip(&results) {
            match r {
                Ok(system) => println!("{:<24} reachable: {system}", t.host),
                Err(e) => println!("{:<24} UNREACHABLE: {e}", t.host),
            }
        }
    }
    Ok(if all_ok {
        0
    } else {
        crate::commands::EXIT_ERROR
    })
}
