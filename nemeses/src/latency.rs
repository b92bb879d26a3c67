//! Network latency with the kernel's netem queueing discipline: `tc qdisc add dev <if>
//! root netem delay 50ms 10ms` on the interface a node uses to reach its peers, which
//! delays everything the node sends.
//!
//! netem is a kernel module (`sch_netem`) that some kernels lack. Then `tc` fails with
//! "Specified qdisc kind is unknown"; we try `modprobe sch_netem` once and otherwise fail
//! with [`NemesisError::NetemMissing`], never silently doing nothing. Heal deletes the
//! root qdisc only where it is netem, i.e. ours. Ops: `start-latency` `{"targets": mode,
//! "nodes": [...], "delay_ms": 50, "jitter_ms": 10}` and `stop-latency`.

use crate::cluster::{lock, COMMAND_TIMEOUT};
use crate::error::NemesisError;
use crate::nemesis::{FaultOp, NemesisContext};
use crate::node::{NodeError, NodeShell};
use crate::start_stop::{StartStop, Toggle};
use crate::targeting::Reach;
use crate::value;
use rand::seq::SliceRandom;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Mutex;

pub const START: &str = "start-latency";
pub const STOP: &str = "stop-latency";

/// Delays the schedule draws from; jitter is a quarter of the delay.
const DELAYS_MS: [i64; 4] = [20, 50, 100, 250];
/// Upper bound on a delay or jitter an op may ask for: beyond a minute the fault stops
/// being latency and becomes a partition that heal cannot outwait.
pub const MAX_DELAY_MS: i64 = 60_000;

/// The interface named after `dev` in `ip route` output.
pub fn parse_dev(route: &str) -> Option<String> {
    let mut words = route.split_whitespace();
    while let Some(word) = words.next() {
        if word == "dev" {
            return words.next().map(str::to_string);
        }
    }
    None
}

/// Interface names as the kernel allows them, minus anything a shell would interpret.
fn is_safe_interface(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

pub fn netem_add_command(interface: &str, delay_ms: i64, jitter_ms: i64) -> String {
    let jitter = if jitter_ms > 0 {
        format!(" {jitter_ms}ms")
    } else {
        String::new()
    };
    format!("tc qdisc add dev {interface} root netem delay {delay_ms}ms{jitter}")
}

pub fn netem_del_command(interface: &str) -> String {
    format!("if tc qdisc show dev {interface} root | grep -q netem; then tc qdisc del dev {interface} root; fi")
}

/// Whether `tc`'s complaint means the kernel has no netem (as opposed to, say, a busy
/// interface or a missing `tc`).
fn says_netem_missing(stderr: &str) -> bool {
    let text = stderr.to_ascii_lowercase();
    (text.contains("qdisc") && text.contains("unknown"))
        || text.contains("no such file or directory")
}

fn failed(node: &dyn NodeShell, command: &str, out: &crate::node::ExecOutput) -> NemesisError {
    NemesisError::Node(NodeError::Failed {
        node: node.name().to_string(),
        command: command.to_string(),
        status: out.status,
        stderr: out.stderr.trim().to_string(),
    })
}

/// Adds netem on `interface`, loading `sch_netem` once if the kernel does not know it.
fn add_netem(
    node: &dyn NodeShell,
    interface: &str,
    delay_ms: i64,
    jitter_ms: i64,
) -> Result<(), NemesisError> {
    let add = netem_add_command(interface, delay_ms, jitter_ms);
    let first = node.exec(&add, COMMAND_TIMEOUT)?;
    if first.success() {
        return Ok(());
    }
    if !says_netem_missing(&first.stderr) {
        return Err(failed(node, &add, &first));
    }
    let modprobe = node.exec("modprobe sch_netem", COMMAND_TIMEOUT)?;
    if modprobe.success() {
        let retry = node.exec(&add, COMMAND_TIMEOUT)?;
        if retry.success() {
            return Ok(());
        }
        if !says_netem_missing(&retry.stderr) {
            return Err(failed(node, &add, &retry));
        }
    }
    Err(NemesisError::NetemMissing {
        node: node.name().to_string(),
        detail: format!(
            "`tc` said \"{}\" and `modprobe sch_netem` said \"{}\"",
            first.stderr.trim(),
            modprobe.stderr.trim()
        ),
    })
}

/// The interface `node` sends to `peer` through (or its default route's, alone).
fn interface(node: &dyn NodeShell, peer: Option<IpAddr>) -> Result<String, NemesisError> {
    let command = match peer {
        Some(ip) => format!("ip -o route get {ip}"),
        None => "ip -o route show default".to_string(),
    };
    let out = node.exec_ok(&command, COMMAND_TIMEOUT)?;
    match parse_dev(&out.stdout) {
        Some(dev) if is_safe_interface(&dev) => Ok(dev),
        _ => Err(NemesisError::NoInterface {
            node: node.name().to_string(),
            detail: format!("`{command}` printed no usable `dev`: {}", out.stdout.trim()),
        }),
    }
}

/// The latency nemesis.
pub type Latency = Toggle<LatencyFault>;

/// Latency's state: where netem is installed and the delay in effect.
pub struct LatencyFault {
    /// The nodes, the target and this fault's random stream.
    reach: Reach,
    /// Node -> interface where our netem may be installed; what heal removes.
    applied: BTreeMap<String, String>,
    current: Option<(Vec<String>, i64, i64)>,
}

impl StartStop for LatencyFault {
    const NAME: &'static str = "latency";
    const START: &'static str = START;
    const STOP: &'static str = STOP;

    fn new(ctx: &NemesisContext) -> LatencyFault {
        LatencyFault {
            reach: Reach::new(ctx, Self::NAME),
            applied: BTreeMap::new(),
            current: None,
        }
    }

    fn draw_start(&mut self) -> Value {
        let mut value = self.reach.draw();
        let delay_ms = *DELAYS_MS
            .choose(&mut self.reach.rng)
            .expect("DELAYS_MS is not empty");
        value["delay_ms"] = json!(delay_ms);
        value["jitter_ms"] = json!(delay_ms / 4);
        value
    }

    fn start(&mut self, op: &FaultOp) -> Result<Value, NemesisError> {
        let delay_ms = value::bounded_i64(op, "delay_ms", 1, MAX_DELAY_MS)?;
        let jitter_ms = match value::opt_i64(op, "jitter_ms")? {
            Some(_) => value::bounded_i64(op, "jitter_ms", 0, delay_ms)?,
            None => 0,
        };
        let nodes = self.reach.resolve(op)?;
        self.stop(op)?;
        let cluster = &self.reach.cluster;
        let applied = Mutex::new(&mut self.applied);
        let outcomes = cluster.each(START, &nodes, |node| {
            let peer = cluster
                .all()
                .iter()
                .find(|p| p.name() != node.name())
                .map(|p| p.address());
            let dev = interface(node, peer)?;
            // Recorded before adding: a timed-out `tc` may still have installed it.
            lock(&applied).insert(node.name().to_string(), dev.clone());
            let added = add_netem(node, &dev, delay_ms, jitter_ms);
            if let Err(NemesisError::NetemMissing { .. }) = added {
                // Certainly nothing was installed; heal has nothing to undo here.
                lock(&applied).remove(node.name());
            }
            added.map(|()| dev)
        });
        let devices = NemesisError::collect(START, outcomes)?;
        self.current = Some((nodes, delay_ms, jitter_ms));
        let devices: BTreeMap<String, String> = devices.into_iter().collect();
        Ok(
            json!({"nodes": devices.keys().collect::<Vec<_>>(), "interfaces": devices, "delay_ms": delay_ms, "jitter_ms": jitter_ms}),
        )
    }

    fn stop(&mut self, _op: &FaultOp) -> Result<Value, NemesisError> {
        let names: Vec<String> = self.applied.keys().cloned().collect();
        let applied = &self.applied;
        let outcomes = self.reach.cluster.each(STOP, &names, |node| {
            Ok(node
                .exec_ok(&netem_del_command(&applied[node.name()]), COMMAND_TIMEOUT)
                .map(|_| ())?)
        });
        for (node, outcome) in &outcomes {
            if outcome.is_ok() {
                self.applied.remove(node);
            }
        }
        if self.applied.is_empty() {
            self.current = None;
        }
        let healed = NemesisError::collect(STOP, outcomes)?;
        Ok(json!({"healed": healed.into_iter().map(|(n, ())| n).collect::<Vec<_>>()}))
    }

    fn in_place(&self) -> bool {
        !self.applied.is_empty()
    }

    fn describe(&self) -> Vec<String> {
        self.current
            .iter()
            .map(|(nodes, delay, jitter)| {
                format!("latency {delay}±{jitter} ms on {}", nodes.join(","))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{self, failed, FakeNode, FakeTarget};
    use crate::nemesis::Nemesis;
    use crate::node::ExecOutput;
    use std::sync::Arc;

    const ROUTE: &str = "10.0.0.2 dev eth0 src 10.0.0.1 uid 0 \\    cache ";

    fn ok(stdout: &str) -> ExecOutput {
        ExecOutput {
            status: 0,
            stdout: stdout.to_string(),
            stderr: String::new(),
        }
    }

    fn latency(nodes: &[Arc<FakeNode>]) -> Latency {
        Latency::new(&NemesisContext {
            nodes: fake::shells(nodes),
            target: Arc::new(FakeTarget::default()),
            seed: 1,
        })
    }

    fn start(nodes: &[&str]) -> FaultOp {
        FaultOp::new(
            START,
            json!({"nodes": nodes, "delay_ms": 50, "jitter_ms": 10}),
        )
    }

    #[test]
    fn parse_dev_finds_the_interface_in_route_output() {
        assert_eq!(parse_dev(ROUTE).as_deref(), Some("eth0"));
        assert_eq!(
            parse_dev("default via 10.0.0.254 dev veth-dt1 proto static").as_deref(),
            Some("veth-dt1")
        );
        assert_eq!(parse_dev("unreachable 10.0.0.9"), None);
        assert!(!is_safe_interface("eth0;reboot"));
    }

    #[test]
    fn netem_is_added_on_the_peer_interface_and_heal_deletes_only_netem() {
        let node = Arc::new(FakeNode::with(1, |cmd| {
            if cmd.starts_with("ip -o route get") {
                ok(ROUTE)
            } else {
                ok("")
            }
        }));
        let nodes = vec![node, Arc::new(FakeNode::ok(2))];
        let mut nemesis = latency(&nodes);
        let done = nemesis.invoke(&start(&["n1"])).unwrap();
        assert_eq!(done["interfaces"], json!({"n1": "eth0"}));
        assert_eq!(nemesis.active(), vec!["latency 50±10 ms on n1"]);
        let healed = nemesis.heal();
        assert!(healed[0].1.is_ok());
        assert_eq!(
            nodes[0].commands(),
            vec![
                "ip -o route get 10.0.0.2".to_string(),
                "tc qdisc add dev eth0 root netem delay 50ms 10ms".to_string(),
                "if tc qdisc show dev eth0 root | grep -q netem; then tc qdisc del dev eth0 root; fi".to_string(),
            ]
        );
        assert!(nodes[1].commands().is_empty());
        assert!(nemesis.heal().is_empty());
    }

    #[test]
    fn a_kernel_without_netem_gives_the_missing_module_error_and_nothing_to_heal() {
        let node = Arc::new(FakeNode::with(1, |cmd| {
            if cmd.starts_with("ip -o route get") {
                ok(ROUTE)
            } else if cmd.starts_with("tc qdisc add") {
                failed("Error: Specified qdisc kind is unknown.")
            } else {
                failed("modprobe: FATAL: Module sch_netem not found in directory /lib/modules/6.1")
            }
        }));
        let nodes = vec![node, Arc::new(FakeNode::ok(2))];
        let mut nemesis = latency(&nodes);
        let err = nemesis.invoke(&start(&["n1"])).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("sch_netem") && text.contains("qdisc kind is unknown"),
            "{text}"
        );
        assert!(nodes[0]
            .commands()
            .contains(&"modprobe sch_netem".to_string()));
        assert!(nemesis.heal().is_empty());
        assert!(nemesis.active().is_empty());
    }

    #[test]
    fn netem_is_retried_once_after_loading_the_module() {
        let loaded = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = loaded.clone();
        let node = Arc::new(FakeNode::with(1, move |cmd| {
            use std::sync::atomic::Ordering;
            if cmd.starts_with("ip -o route get") {
                ok(ROUTE)
            } else if cmd == "modprobe sch_netem" {
                flag.store(true, Ordering::SeqCst);
                ok("")
            } else if cmd.starts_with("tc qdisc add") && !flag.load(Ordering::SeqCst) {
                failed("Error: Specified qdisc kind is unknown.")
            } else {
                ok("")
            }
        }));
        let nodes = vec![node, Arc::new(FakeNode::ok(2))];
        let mut nemesis = latency(&nodes);
        nemesis.invoke(&start(&["n1"])).unwrap();
        assert!(loaded.load(std::sync::atomic::Ordering::SeqCst));
        assert_eq!(nemesis.heal().len(), 1);
    }

    #[test]
    fn other_tc_failures_are_reported_as_they_are() {
        let node = Arc::new(FakeNode::with(1, |cmd| {
            if cmd.starts_with("ip -o route get") {
                ok(ROUTE)
            } else {
                failed("Error: Exclusivity flag on, cannot modify.")
            }
        }));
        let nodes = vec![node, Arc::new(FakeNode::ok(2))];
        let mut nemesis = latency(&nodes);
        let text = nemesis.invoke(&start(&["n1"])).unwrap_err().to_string();
        assert!(
            text.contains("Exclusivity flag on") && !text.contains("sch_netem"),
            "{text}"
        );
        // tc may have done something before failing: heal checks and cleans up.
        assert_eq!(nemesis.heal().len(), 1);
    }

    #[test]
    fn delays_out_of_range_are_refused() {
        let nodes = vec![Arc::new(FakeNode::ok(1))];
        let mut nemesis = latency(&nodes);
        for value in [
            json!({"nodes": ["n1"], "delay_ms": 0}),
            json!({"nodes": ["n1"], "delay_ms": MAX_DELAY_MS + 1}),
            json!({"nodes": ["n1"], "delay_ms": 10, "jitter_ms": 11}),
        ] {
            assert!(matches!(
                nemesis.invoke(&FaultOp::new(START, value)),
                Err(NemesisError::BadValue { .. })
            ));
        }
        assert!(nodes[0].commands().is_empty());
    }
}
