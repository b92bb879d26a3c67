//! Nodes of a test's own for fault tests without a distest cluster: network namespaces
//! `dt-<id>-n<i>` joined by a bridge in a hub namespace `dt-<id>-hub`, so nothing but
//! namespaces appears on the host. Node i has 10.77.<octet>.<10+i>. Each node is a
//! `LocalNode` (its helper: the distest binary next to the test binary; its state under a
//! temp dir of the topology's own).
//!
//! [`Topology`] removes everything on drop, also when a test panics: first the processes
//! in its namespaces (a delayer would otherwise outlive its namespace), then the
//! namespaces, then the state dirs. Threads can run inside a node's namespace
//! ([`in_namespace`]) to open sockets there, so round trips are measured in-process with
//! one monotonic clock.

use distest::nodes::exec::exec_for_node;
use distest::nodes::local::LocalNode;
use distest_nemeses::{ClockSupport, ExecOutput, NodeError, NodeShell, TargetControl};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A target with nothing to kill and no clock: network faults are what these tests use.
pub struct NoTarget;

impl TargetControl for NoTarget {
    fn kill(&self, _: &str) -> Result<(), NodeError> {
        Err(NodeError::Unsupported("no target process".into()))
    }
    fn start(&self, _: &str) -> Result<(), NodeError> {
        Ok(())
    }
    fn pause(&self, _: &str) -> Result<(), NodeError> {
        Err(NodeError::Unsupported("no target process".into()))
    }
    fn resume(&self, _: &str) -> Result<(), NodeError> {
        Ok(())
    }
    fn primaries(&self) -> Vec<String> {
        Vec::new()
    }
    fn has_primaries(&self) -> bool {
        false
    }
    fn clock_support(&self, _: &str) -> ClockSupport {
        ClockSupport::Unsupported("no target process".into())
    }
}

/// Runs `command` on this machine, panicking when it cannot be started.
pub fn host_sh(command: &str) -> ExecOutput {
    exec_for_node(
        "host",
        &["sh", "-c", command],
        command,
        Duration::from_secs(30),
    )
    .expect("sh runs")
}

pub struct Topology {
    pub nodes: Vec<Arc<LocalNode>>,
    hub: String,
    dir: PathBuf,
}

impl Topology {
    /// `count` nodes in 10.77.`octet`.0/24, namespaces named after `id`.
    pub fn create(id: &str, octet: u8, count: usize) -> Topology {
        let dir = std::env::temp_dir().join(format!("dt-test-{id}-{}", std::process::id()));
        let nodes: Vec<Arc<LocalNode>> = (1..=count)
            .map(|i| {
                Arc::new(LocalNode::new(
                    &format!("n{i}"),
                    &format!("dt-{id}-n{i}"),
                    Ipv4Addr::new(10, 77, octet, 10 + i as u8),
                    &dir.join(format!("n{i}")),
                ))
            })
            .collect();
        let topology = Topology {
            hub: format!("dt-{id}-hub"),
            nodes,
            dir,
        };
        // Leftovers of a run killed before its guard ran: ours by name.
        topology.remove();
        let hub = &topology.hub;
        let mut script = format!(
            "ip netns add {hub} && ip -n {hub} link add br0 type bridge && ip -n {hub} link set br0 up"
        );
        for (i, node) in topology.nodes.iter().enumerate() {
            let ns = &node.namespace();
            script.push_str(&format!(
                " && ip netns add {ns} && ip -n {hub} link add p{i} type veth peer name eth0 netns {ns} \
                 && ip -n {hub} link set p{i} master br0 up && ip -n {ns} addr add {}/24 dev eth0 \
                 && ip -n {ns} link set eth0 up && ip -n {ns} link set lo up",
                node.address()
            ));
        }
        let out = host_sh(&script);
        assert!(
            out.success(),
            "could not build the namespaces: {}",
            out.stderr
        );
        std::fs::create_dir_all(&topology.dir).expect("state dir");
        topology
    }

    pub fn shells(&self) -> Vec<Arc<dyn NodeShell>> {
        self.nodes
            .iter()
            .map(|n| n.clone() as Arc<dyn NodeShell>)
            .collect()
    }

    /// Runs `command` in node `i`'s (0-based) namespace.
    pub fn sh(&self, i: usize, command: &str) -> ExecOutput {
        self.nodes[i]
            .exec(command, Duration::from_secs(60))
            .expect("ip netns exec runs")
    }

    /// Round-trip times (ms) of `count` pings from node `from` to node `to`.
    pub fn ping_ms(&self, from: usize, to: usize, count: usize) -> Vec<f64> {
        let out = self.sh(
            from,
            &format!(
                "ping -n -c {count} -i 0.05 -W 5 {}",
                self.nodes[to].address()
            ),
        );
        out.stdout
            .lines()
            .filter_map(|l| l.split("time=").nth(1))
            .filter_map(|t| t.split_whitespace().next()?.parse().ok())
            .collect()
    }

    /// Our rules and chains in any node's namespace, as iptables-save prints them.
    pub fn our_rules(&self) -> Vec<String> {
        (0..self.nodes.len())
            .flat_map(|i| {
                self.sh(i, "iptables-save; iptables-save -t mangle")
                    .stdout
                    .lines()
                    .filter(|l| l.contains("DISTEST") || l.contains("distest"))
                    .map(|l| format!("{}: {l}", self.nodes[i].name()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Processes running in any node's namespace.
    pub fn processes(&self) -> Vec<String> {
        self.nodes
            .iter()
            .flat_map(|n| {
                host_sh(&format!("ip netns pids {}", n.namespace()))
                    .stdout
                    .lines()
                    .map(|pid| {
                        let cmdline = std::fs::read(format!("/proc/{}/cmdline", pid.trim()))
                            .unwrap_or_default();
                        format!(
                            "{}: {}",
                            n.name(),
                            String::from_utf8_lossy(&cmdline).replace('\0', " ")
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Node `i`'s helper state dir.
    fn state_dir(&self, i: usize) -> PathBuf {
        self.nodes[i]
            .helper()
            .expect("local nodes have a helper")
            .state_dir
    }

    /// A file in node `i`'s helper state dir.
    pub fn state_file(&self, i: usize, name: &str) -> PathBuf {
        self.state_dir(i).join(name)
    }

    /// Files left in node `i`'s helper state dir.
    pub fn state_files(&self, i: usize) -> Vec<String> {
        std::fs::read_dir(self.state_dir(i))
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn remove(&self) {
        let namespaces: Vec<&str> = self
            .nodes
            .iter()
            .map(|n| n.namespace())
            .chain([self.hub.as_str()])
            .collect();
        for ns in &namespaces {
            host_sh(&format!(
                "for p in $(ip netns pids {ns} 2>/dev/null); do kill -9 $p; done; \
                 i=0; while [ -n \"$(ip netns pids {ns} 2>/dev/null)\" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done"
            ));
        }
        for ns in &namespaces {
            host_sh(&format!("ip netns del {ns} 2>/dev/null"));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Runs `f` on a new thread inside network namespace `ns` (sockets it opens live there)
/// and returns its result.
pub fn in_namespace<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    use std::os::fd::AsRawFd;
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        // SAFETY: setns on this thread only; the fd is a network namespace file.
        let rc = unsafe { nix::libc::setns(file.as_raw_fd(), nix::libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
}

/// A UDP socket bound to `addr` inside namespace `ns`, reads timing out after `timeout`.
pub fn udp_socket_in(ns: &str, addr: SocketAddr, timeout: Duration) -> UdpSocket {
    in_namespace(ns, move || {
        let socket = UdpSocket::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        socket.set_read_timeout(Some(timeout)).unwrap();
        socket
    })
    .join()
    .unwrap()
}

/// A TCP listener on `addr` inside namespace `ns`.
pub fn tcp_listener_in(ns: &str, addr: SocketAddr) -> TcpListener {
    in_namespace(ns, move || {
        TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"))
    })
    .join()
    .unwrap()
}

/// The `q`-quantile (0..=1) of `values` (sorted in place).
pub fn quantile(values: &mut [f64], q: f64) -> f64 {
    assert!(!values.is_empty(), "a quantile of nothing");
    values.sort_by(f64::total_cmp);
    let i = ((values.len() - 1) as f64 * q).round() as usize;
    values[i]
}
