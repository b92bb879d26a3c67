//! The node flags `distest run` and `distest env` share, and turning them into nodes.
//!
//! `--nodes local:5` (or `--nodes 5`) asks for a local cluster of namespaces; `--node HOST`
//! (repeatable), `--nodes-file FILE` or `--nodes h1,h2` ask for SSH hosts. Without any of
//! them the local cluster of [`DEFAULT_LOCAL_NODES`] nodes is the default.

use super::local::{ClusterSpec, LocalCluster, DEFAULT_BASE_DIR};
use super::names::{DEFAULT_CLUSTER_ID, DEFAULT_SUBNET};
use super::ssh::{parse_nodes_file, SshNode, SshOptions, SshTarget};
use super::{par_map, NodesError, Remote};
use std::path::PathBuf;
use std::sync::Arc;

/// Nodes in a local cluster when nothing else is asked for.
pub const DEFAULT_LOCAL_NODES: usize = 5;

/// Where the nodes come from and how to reach them.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct NodeArgs {
    /// `local:N` (or `N`): a local cluster of N network namespaces; or SSH hosts `h1,h2,...`
    #[arg(long, value_name = "local:N|HOSTS")]
    pub nodes: Option<String>,
    /// An SSH node `[user@]host[:port]`; repeat for more
    #[arg(long = "node", value_name = "HOST")]
    pub node: Vec<String>,
    /// A file of SSH nodes, one `[user@]host[:port]` per line, `#` comments
    #[arg(long, value_name = "FILE")]
    pub nodes_file: Option<PathBuf>,
    /// SSH login user for nodes that name none (non-root users need passwordless sudo)
    #[arg(long, default_value = "root")]
    pub ssh_user: String,
    /// SSH private key (default: ssh-agent, then ~/.ssh/id_ed25519, id_ecdsa, id_rsa)
    #[arg(long, value_name = "FILE")]
    pub ssh_key: Option<PathBuf>,
    /// SSH port for nodes that name none
    #[arg(long, default_value_t = 22)]
    pub ssh_port: u16,
    /// known_hosts file to check SSH host keys against (default ~/.ssh/known_hosts)
    #[arg(long, value_name = "FILE")]
    pub known_hosts: Option<PathBuf>,
    /// Accept unknown or changed SSH host keys (insecure: allows interception)
    #[arg(long)]
    pub ssh_insecure_accept_host_keys: bool,
    /// IPv4 subnet of the local cluster; node i gets .10+i, the bridge .1
    #[arg(long, default_value = DEFAULT_SUBNET)]
    pub subnet: String,
    /// Local cluster id (1-5 of a-z0-9); clusters with distinct ids coexist
    #[arg(long = "cluster", default_value = DEFAULT_CLUSTER_ID)]
    pub cluster_id: String,
    /// Node directories: <base-dir>/<cluster>/nK/{data,logs} locally, <base-dir>/{data,logs} over SSH
    #[arg(long, value_name = "DIR", default_value = DEFAULT_BASE_DIR)]
    pub base_dir: PathBuf,
}

impl Default for NodeArgs {
    fn default() -> Self {
        NodeArgs {
            nodes: None,
            node: Vec::new(),
            nodes_file: None,
            ssh_user: "root".to_string(),
            ssh_key: None,
            ssh_port: 22,
            known_hosts: None,
            ssh_insecure_accept_host_keys: false,
            subnet: DEFAULT_SUBNET.to_string(),
            cluster_id: DEFAULT_CLUSTER_ID.to_string(),
            base_dir: PathBuf::from(DEFAULT_BASE_DIR),
        }
    }
}

/// What the flags ask for, before anything is created or connected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodePlan {
    Local(ClusterSpec),
    Ssh(Vec<SshTarget>, SshOptions),
}

impl NodePlan {
    /// How many nodes the plan names.
    pub fn node_count(&self) -> usize {
        match self {
            NodePlan::Local(spec) => spec.node_count,
            NodePlan::Ssh(targets, _) => targets.len(),
        }
    }

    /// How the nodes were asked for, for test.json and logs: `local:5`, `ssh:db1,root@db2:22`.
    pub fn describe(&self) -> String {
        match self {
            NodePlan::Local(spec) => format!("local:{}", spec.node_count),
            NodePlan::Ssh(targets, _) => {
                let hosts: Vec<String> = targets.iter().map(ToString::to_string).collect();
                format!("ssh:{}", hosts.join(","))
            }
        }
    }
}

impl NodeArgs {
    /// True when no node flag was given (`--nodes`, `--node`, `--nodes-file`): the target's
    /// default node count applies.
    pub fn names_no_nodes(&self) -> bool {
        self.nodes.is_none() && self.node.is_empty() && self.nodes_file.is_none()
    }

    /// The local cluster layout these flags name (for `distest env`, which is always local).
    pub fn cluster_spec(&self, node_count: usize) -> Result<ClusterSpec, NodesError> {
        Ok(ClusterSpec {
            cluster_id: self.cluster_id.clone(),
            node_count,
            subnet: self.subnet.parse()?,
            base_dir: self.base_dir.clone(),
        })
    }

    /// Checks the flags and says what they ask for; creates and connects nothing.
    pub fn plan(&self) -> Result<NodePlan, NodesError> {
        let local_count = match self.nodes.as_deref().map(str::trim) {
            None => None,
            Some(spec) => {
                let count = spec.strip_prefix("local:").unwrap_or(spec);
                match count.parse::<usize>() {
                    Ok(n) => Some(n),
                    Err(_) if spec.starts_with("local:") => {
                        return Err(NodesError::BadSpec(format!(
                            "--nodes {spec:?}: the node count after local: must be a number, as in local:5"
                        )))
                    }
                    Err(_) => None,
                }
            }
        };
        let mut hosts: Vec<String> = self.node.clone();
        if let (Some(list), None) = (&self.nodes, local_count) {
            hosts.extend(
                list.split(',')
                    .map(str::trim)
                    .filter(|h| !h.is_empty())
                    .map(String::from),
            );
        }
        let mut targets: Vec<SshTarget> =
            hosts.iter().map(|h| h.parse()).collect::<Result<_, _>>()?;
        if let Some(file) = &self.nodes_file {
            let text = std::fs::read_to_string(file).map_err(|source| NodesError::Io {
                what: "could not read the nodes file".into(),
                path: file.clone(),
                source,
            })?;
            targets.extend(parse_nodes_file(&text)?);
        }
        match (local_count, targets.is_empty()) {
            (Some(_), false) => Err(NodesError::BadSpec(
                "--nodes local:N cannot be combined with SSH nodes (--node, --nodes-file); pick one".into(),
            )),
            (local, true) => {
                if self.nodes_file.is_some() {
                    return Err(NodesError::BadSpec(
                        "the nodes file lists no nodes; add one [user@]host[:port] per line".into(),
                    ));
                }
                Ok(NodePlan::Local(self.cluster_spec(local.unwrap_or(DEFAULT_LOCAL_NODES))?))
            }
            (None, false) => {
                let mut seen = std::collections::HashSet::new();
                if let Some(dup) = targets.iter().find(|t| !seen.insert((t.host.clone(), t.port))) {
                    return Err(NodesError::BadSpec(format!(
                        "node {} is listed twice; list each node once",
                        dup.host
                    )));
                }
                Ok(NodePlan::Ssh(targets, self.ssh_options()))
            }
        }
    }

    fn ssh_options(&self) -> SshOptions {
        SshOptions {
            user: self.ssh_user.clone(),
            port: self.ssh_port,
            key_file: self.ssh_key.clone(),
            known_hosts: self.known_hosts.clone(),
            accept_any_host_key: self.ssh_insecure_accept_host_keys,
            base_dir: self.base_dir.clone(),
            ..SshOptions::default()
        }
    }

    /// Brings the nodes up: creates (or adopts) the local cluster, or connects to every SSH
    /// node in parallel (all must answer).
    pub fn resolve(&self) -> Result<Nodes, NodesError> {
        match self.plan()? {
            NodePlan::Local(spec) => Ok(Nodes::Local(LocalCluster::up(spec)?)),
            NodePlan::Ssh(targets, options) => {
                let connected = par_map(&targets, |t| SshNode::connect(t, &options));
                let nodes = connected
                    .into_iter()
                    .map(|r| r.map(Arc::new))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Nodes::Ssh(nodes))
            }
        }
    }
}

/// The nodes of a run: a local cluster guard (torn down on drop if it created the cluster)
/// or SSH connections.
#[derive(Debug)]
pub enum Nodes {
    Local(LocalCluster),
    Ssh(Vec<Arc<SshNode>>),
}

impl Nodes {
    /// The nodes as targets and nemeses use them, in order (n1 first for local clusters).
    pub fn remotes(&self) -> Vec<Arc<dyn Remote>> {
        match self {
            Nodes::Local(cluster) => cluster.nodes(),
            Nodes::Ssh(nodes) => nodes.iter().map(|n| n.clone() as Arc<dyn Remote>).collect(),
        }
    }

    /// The node names, in order.
    pub fn names(&self) -> Vec<String> {
        self.remotes()
            .iter()
            .map(|n| n.name().to_string())
            .collect()
    }

    /// The local cluster, when the nodes are one.
    pub fn local_cluster(&self) -> Option<&LocalCluster> {
        match self {
            Nodes::Local(cluster) => Some(cluster),
            Nodes::Ssh(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        nodes: NodeArgs,
    }

    fn plan(args: &[&str]) -> Result<NodePlan, NodesError> {
        let mut argv = vec!["distest"];
        argv.extend(args);
        Cli::try_parse_from(argv).unwrap().nodes.plan()
    }

    #[test]
    fn no_flags_mean_the_default_local_cluster() {
        let NodePlan::Local(spec) = plan(&[]).unwrap() else {
            panic!("expected local")
        };
        assert_eq!(spec.node_count, DEFAULT_LOCAL_NODES);
        assert_eq!(spec.cluster_id, DEFAULT_CLUSTER_ID);
        assert_eq!(NodeArgs::default().plan().unwrap(), plan(&[]).unwrap());
    }

    #[test]
    fn local_counts_and_cluster_flags_are_read() {
        for form in ["local:3", "3"] {
            let NodePlan::Local(spec) = plan(&[
                "--nodes",
                form,
                "--cluster",
                "t1",
                "--subnet",
                "10.77.120.0/24",
            ])
            .unwrap() else {
                panic!("expected local")
            };
            assert_eq!((spec.node_count, spec.cluster_id.as_str()), (3, "t1"));
            assert_eq!(spec.subnet.to_string(), "10.77.120.0/24");
        }
        assert!(plan(&["--nodes", "local:x"]).is_err());
        assert!(plan(&["--subnet", "10.77.0.0"]).is_err());
    }

    #[test]
    fn ssh_nodes_come_from_flags_lists_and_files() {
        let file = std::env::temp_dir().join(format!("dt-nodes-file-{}", std::process::id()));
        std::fs::write(&file, "# db hosts\nadmin@db3:2222\n").unwrap();
        let result = plan(&[
            "--node",
            "db1",
            "--nodes",
            "db2",
            "--nodes-file",
            file.to_str().unwrap(),
            "--ssh-user",
            "ops",
        ]);
        std::fs::remove_file(&file).unwrap();
        let NodePlan::Ssh(targets, options) = result.unwrap() else {
            panic!("expected ssh")
        };
        let hosts: Vec<&str> = targets.iter().map(|t| t.host.as_str()).collect();
        assert_eq!(hosts, ["db1", "db2", "db3"]);
        assert_eq!(options.user, "ops");
        assert!(
            !options.accept_any_host_key,
            "host keys are checked unless asked otherwise"
        );
        let NodePlan::Ssh(..) = plan(&["--nodes", "db1,db2"]).unwrap() else {
            panic!("a host list without dots is still SSH hosts")
        };
        assert_eq!(
            plan(&["--nodes", "db1,db2"]).unwrap().describe(),
            "ssh:db1,db2"
        );
        assert_eq!(plan(&["--nodes", "local:3"]).unwrap().describe(), "local:3");
    }

    #[test]
    fn conflicting_or_duplicate_nodes_are_refused() {
        assert!(plan(&["--nodes", "local:3", "--node", "db1"]).is_err());
        let err = plan(&["--node", "db1", "--node", "db1"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("listed twice"), "{err}");
        assert!(plan(&["--nodes-file", "/nonexistent/dt-hosts"]).is_err());
    }
}
