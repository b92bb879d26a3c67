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
use crate::nodes::ssh::SshTarget;
use crate::nodes::{par_map, NodeArgs, NodeShell, Nodes, SshNode, SshOptions};
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
        return down_ssh(&args.nodes);
    }
    let scope = if args.all {
        Scope::All
    } else {
        Scope::Cluster(ClusterNames::new(&args.nodes.cluster_id)?)
    };
    let report = cleanup::teardown(&scope, &args.nodes.base_dir)
        .context("could not remove the local cluster completely; run `distest env down` again or remove what `distest env status` shows by hand")?;
    let removed = &report.removed;
    let what = match &scope {
        Scope::All => "all distest clusters".to_string(),
        Scope::Cluster(names) => format!("cluster {}", names.id()),
    };
    if removed.is_empty() && report.data_dirs.is_empty() {
        println!("{what}: nothing to remove");
    } else {
        println!(
            "{what}: removed {} namespaces, {} processes, {} links, {} iptables rules, {} directories",
            removed.namespaces.len(),
            removed.processes.len(),
            removed.links.len(),
            removed.iptables_rules.len(),
            removed.netns_dirs.len() + report.data_dirs.len()
        );
    }
    Ok(0)
}

/// On SSH nodes a run leaves things behind only when the control node died mid-run:
/// fault chains (iptables) and target daemons with their data. Remove exactly those.
fn down_ssh(flags: &NodeArgs) -> anyhow::Result<i32> {
    let nodes = flags.resolve()?;
    let remotes = nodes.remotes();
    let shells: Vec<std::sync::Arc<dyn distest_nemeses::NodeShell>> = remotes
        .iter()
        .map(|r| r.clone() as std::sync::Arc<dyn distest_nemeses::NodeShell>)
        .collect();
    let mut failed = false;
    for (node, result) in distest_nemeses::clear_leftovers(&shells) {
        match result {
            Ok(()) => println!("{node}: no distest fault rules left"),
            Err(e) => {
                failed = true;
                println!("{node}: could not clear fault rules: {e}");
            }
        }
    }
    for lines in crate::nodes::par_map(&remotes, crate::targets::clean_node) {
        for line in lines {
            failed |= line.contains("could not");
            println!("{line}");
        }
    }
    if failed {
        anyhow::bail!("some SSH nodes could not be cleaned (see above); fix their access and run `distest env down` again");
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
