//! Network latency between nodes: each affected node's packets to and from its peers wait
//! `delay ± jitter` in a delayer process on that node, and leave out of order when the
//! jitter says so.
//!
//! How: on each affected node the nemesis starts a delayer (`distest latency-delayer`, see
//! `delayer/`) bound to NFQUEUE [`QUEUE_NUM`], then hooks our `DISTEST-LATENCY` chain
//! (mangle table, INPUT and OUTPUT; see `iptables.rs`) with one rule per peer and
//! direction that queues the packet to it. So an affected node behaves as if its link to
//! the cluster had that latency: a round trip with an unaffected peer takes 2 × delay
//! more, with an affected one 4 × delay. Traffic with anything but the run's nodes (the
//! control node's clients and SSH) is left alone, so heal always gets through. The rules
//! queue with `--queue-bypass`: a delayer that died lets packets pass rather than cutting
//! the node off. The hold is bounded (`delayer::DEFAULT_LIMIT` packets per node); past it
//! packets pass undelayed and `stop-latency` reports how many.
//!
//! One path on every kernel that has NFQUEUE (netem is not used: some kernels lack
//! `sch_netem`, and a fault that works on one machine only is worse than one that works
//! everywhere). [`Latency`]'s preflight proves, per node, that the delayer can bind its
//! queue and that iptables takes the NFQUEUE rule.
//!
//! Ops: `start-latency` `{"targets": mode, "nodes": [...], "delay_ms": 50, "jitter_ms":
//! 10}`, completed with the nodes and settings in effect; `stop-latency`, completed with
//! the nodes healed and each delayer's report (packets delayed, passed when full,
//! reordered). A start that fails anywhere is undone everywhere it took effect.

use crate::cluster::COMMAND_TIMEOUT;
use crate::delayer::{self, hold::HoldConfig, StopReport, DEFAULT_LIMIT, QUEUE_NUM};
use crate::error::NemesisError;
use crate::iptables::{self, ChainOnNodes, Direction, Rule};
use crate::nemesis::{FaultOp, NemesisContext};
use crate::preflight::{self, Lack};
use crate::start_stop::{StartStop, Toggle};
use crate::targeting::Reach;
use crate::value;
use distest_generator::rng_for;
use rand::seq::SliceRandom;
use rand::Rng;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

pub const START: &str = "start-latency";
pub const STOP: &str = "stop-latency";

/// Delays the schedule draws from; jitter is a quarter of the delay.
const DELAYS_MS: [i64; 4] = [20, 50, 100, 250];
/// Upper bound on a delay or jitter an op may ask for: beyond a minute the fault stops
/// being latency and becomes a partition that heal cannot outwait.
pub const MAX_DELAY_MS: i64 = delayer::MAX_DELAY_MS as i64;
/// Stopping a delayer waits for it to let its packets go (and to die if it will not).
const STOP_TIMEOUT: Duration = Duration::from_secs(25);

/// The latency nemesis.
pub type Latency = Toggle<LatencyFault>;

/// Latency's state: where delayers and rules may be, and the latency in effect.
pub struct LatencyFault {
    /// The nodes, the target and this fault's random stream.
    reach: Reach,
    seed: u64,
    /// Starts so far: each gives the delayers new seeds.
    starts: u64,
    /// Where our chain may be.
    chain: ChainOnNodes,
    /// Nodes where a delayer may run (recorded before starting one: a start that timed
    /// out may still have started it). Heal stops exactly these.
    delayers: BTreeSet<String>,
    /// The latency in effect: set only once a start succeeded on every node it named.
    current: Option<(Vec<String>, i64, i64)>,
}

impl LatencyFault {
    /// The rules that send `node`'s traffic with every peer to its delayer.
    fn rules_for(&self, node: &str) -> Vec<Rule> {
        self.reach
            .cluster
            .all()
            .iter()
            .filter(|peer| peer.name() != node)
            .flat_map(|peer| {
                [Direction::From, Direction::To]
                    .map(|direction| Rule::queue(peer.address(), direction, QUEUE_NUM))
            })
            .collect()
    }

    /// Delayers first, so no packet is ever queued to nobody; then the rules.
    fn start_on(&mut self, nodes: &[String], config: HoldConfig) -> Result<(), NemesisError> {
        self.delayers.extend(nodes.iter().cloned());
        let starts = self.starts;
        self.starts += 1;
        let seed = self.seed;
        let outcomes = self.reach.cluster.each(START, nodes, |node| {
            let helper = node.install_helper()?;
            let stream = format!("latency-delayer/{starts}/{}", node.name());
            let delayer_seed = rng_for(seed, &stream).gen();
            let command =
                delayer::start_command(&helper.program, &helper.state_dir, config, delayer_seed);
            let out = node.exec(&command, COMMAND_TIMEOUT)?;
            if out.success() {
                Ok(())
            } else {
                Err(NemesisError::DelayerFailed {
                    node: node.name().to_string(),
                    why: preflight::said(&out),
                })
            }
        });
        NemesisError::collect(START, outcomes)?;
        let plans: BTreeMap<String, Vec<Rule>> = nodes
            .iter()
            .map(|node| (node.clone(), self.rules_for(node)))
            .collect();
        self.chain.install(&self.reach.cluster, START, &plans)
    }

    /// After a failed start: undo what it did, so a failed op leaves nothing in effect.
    /// What cannot be undone now stays on the books for heal.
    fn roll_back(&mut self) {
        if let Err(e) = self.stop_all() {
            tracing::warn!("undoing a failed start-latency failed (heal retries it): {e}");
        }
    }

    /// Rules off first (no new packet is queued), then the delayers, which let what they
    /// hold go at once.
    fn stop_all(&mut self) -> Result<Value, NemesisError> {
        self.current = None;
        let rules = self.chain.remove_all(&self.reach.cluster, STOP);
        let names: Vec<String> = self.delayers.iter().cloned().collect();
        let outcomes = self.reach.cluster.each(STOP, &names, |node| {
            let helper = node.helper().ok_or_else(|| NemesisError::DelayerFailed {
                node: node.name().to_string(),
                why: "the node no longer says where its helper program is".to_string(),
            })?;
            let command = delayer::stop_command(&helper.program, &helper.state_dir);
            let out = node.exec_ok(&command, STOP_TIMEOUT)?;
            Ok(stop_report(&out.stdout))
        });
        for (node, outcome) in &outcomes {
            if outcome.is_ok() {
                self.delayers.remove(node);
            }
        }
        let stopped = NemesisError::collect(STOP, outcomes);
        let (healed, reports) = match (rules, stopped) {
            (Ok(healed), Ok(reports)) => (healed, reports),
            (Err(e), Ok(_)) | (Ok(_), Err(e)) => return Err(e),
            (Err(a), Err(b)) => return Err(NemesisError::Several(vec![a, b])),
        };
        let mut healed: BTreeSet<String> = healed.into_iter().collect();
        healed.extend(reports.iter().map(|(node, _)| node.clone()));
        let delayers: Map<String, Value> = reports.into_iter().collect();
        Ok(json!({"healed": healed, "delayers": delayers}))
    }
}

/// The delayer's report (its last stdout line), or what it printed instead.
fn stop_report(stdout: &str) -> Value {
    let last = stdout.lines().last().unwrap_or("").trim();
    match serde_json::from_str::<StopReport>(last) {
        Ok(report) => json!(report),
        Err(_) => json!({"unparsed": last}),
    }
}

impl StartStop for LatencyFault {
    const NAME: &'static str = "latency";
    const START: &'static str = START;
    const STOP: &'static str = STOP;

    fn new(ctx: &NemesisContext) -> LatencyFault {
        LatencyFault {
            reach: Reach::new(ctx, Self::NAME),
            seed: ctx.seed,
            starts: 0,
            chain: ChainOnNodes::new(iptables::LATENCY),
            delayers: BTreeSet::new(),
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
        // 0 is allowed: packets then only pass through the delayer (its overhead alone).
        let delay_ms = value::bounded_i64(op, "delay_ms", 0, MAX_DELAY_MS)?;
        let jitter_ms = match value::opt_i64(op, "jitter_ms")? {
            Some(_) => value::bounded_i64(op, "jitter_ms", 0, delay_ms)?,
            None => 0,
        };
        preflight::require_nodes(START, &self.reach.cluster, 2)?;
        let nodes = self.reach.resolve(op)?;
        // A new latency replaces the old one rather than stacking on it.
        let replaced = self.stop_all()?;
        let config = HoldConfig {
            delay: Duration::from_millis(delay_ms.unsigned_abs()),
            jitter: Duration::from_millis(jitter_ms.unsigned_abs()),
            limit: DEFAULT_LIMIT,
        };
        if let Err(e) = self.start_on(&nodes, config) {
            self.roll_back();
            return Err(e);
        }
        self.current = Some((nodes.clone(), delay_ms, jitter_ms));
        let mut done = json!({
            "nodes": nodes,
            "delay_ms": delay_ms,
            "jitter_ms": jitter_ms,
            "queue": QUEUE_NUM,
            "limit": DEFAULT_LIMIT,
        });
        if replaced["healed"].as_array().is_some_and(|h| !h.is_empty()) {
            done["replaced"] = replaced;
        }
        Ok(done)
    }

    fn stop(&mut self, _op: &FaultOp) -> Result<Value, NemesisError> {
        self.stop_all()
    }

    fn in_place(&self) -> bool {
        !self.chain.is_empty() || !self.delayers.is_empty()
    }

    fn describe(&self) -> Vec<String> {
        self.current
            .iter()
            .map(|(nodes, delay, jitter)| {
                format!("latency {delay}±{jitter} ms on {}", nodes.join(","))
            })
            .collect()
    }

    /// Every node can run the delayer, bind its queue, and take the NFQUEUE rule (for each
    /// address family its peers use).
    fn preflight(&self) -> Result<(), NemesisError> {
        let cluster = &self.reach.cluster;
        preflight::require_nodes(Self::NAME, cluster, 2)?;
        let action = format!("NFQUEUE --queue-num {QUEUE_NUM} --queue-bypass");
        preflight::check_nodes(Self::NAME, cluster, |node| {
            let helper = node
                .install_helper()
                .map_err(|e| Lack::new("distest's helper program on the node", e.to_string()))?;
            let out = node.exec(&delayer::probe_command(&helper.program), COMMAND_TIMEOUT)?;
            if !out.success() {
                return Err(Lack::new(
                    format!("NFQUEUE (nfnetlink_queue) with queue {QUEUE_NUM} free"),
                    preflight::said(&out),
                ));
            }
            iptables::MANGLE_PROBE.probe(node, cluster, "", &action)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{self, failed, FakeNode, FakeTarget};
    use crate::nemesis::Nemesis;
    use crate::node::ExecOutput;
    use std::sync::Arc;

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

    const STOPPED: &str = r#"{"stopped":true,"killed":false,"stats":{"received":9,"delayed":8,"passed_when_full":1,"reordered":2,"max_held":4,"errors":0}}"#;

    /// A node whose delayer stops with [`STOPPED`]'s report.
    fn node(i: u8) -> Arc<FakeNode> {
        Arc::new(FakeNode::with(i, |cmd| {
            if cmd.contains("latency-delayer stop") {
                ok(STOPPED)
            } else {
                ok("")
            }
        }))
    }

    #[test]
    fn the_delayer_starts_before_the_rules_and_heal_removes_rules_before_stopping_it() {
        let nodes = vec![node(1), node(2), node(3)];
        let mut nemesis = latency(&nodes);
        let done = nemesis.invoke(&start(&["n1"])).unwrap();
        assert_eq!(
            done,
            json!({"nodes": ["n1"], "delay_ms": 50, "jitter_ms": 10, "queue": QUEUE_NUM, "limit": DEFAULT_LIMIT})
        );
        assert_eq!(nemesis.active(), vec!["latency 50±10 ms on n1"]);
        let healed = nemesis.heal();
        assert_eq!(healed.len(), 1);
        let value = healed[0].1.as_ref().unwrap();
        assert_eq!(value["healed"], json!(["n1"]));
        assert_eq!(value["delayers"]["n1"]["stats"]["passed_when_full"], 1);
        let commands = nodes[0].commands();
        assert_eq!(commands.len(), 4, "{commands:#?}");
        assert!(commands[0].starts_with("'/opt/distest' latency-delayer start --queue 17492 --delay-ms 50 --jitter-ms 10 --limit 4096 --seed "), "{}", commands[0]);
        assert!(
            commands[0].ends_with("--state-dir '/run/dt/n1'"),
            "{}",
            commands[0]
        );
        for peer in ["10.0.0.2", "10.0.0.3"] {
            for side in ["-s", "-d"] {
                assert!(
                    commands[1].contains(&format!("-A DISTEST-LATENCY {side} {peer} -m comment --comment distest -j NFQUEUE --queue-num 17492 --queue-bypass")),
                    "{}", commands[1]
                );
            }
        }
        assert!(
            !commands[1].contains("10.0.0.1 "),
            "a node never queues itself"
        );
        assert_eq!(
            commands[2],
            iptables::LATENCY.remove_command(iptables::Family::V4)
        );
        assert_eq!(
            commands[3],
            "'/opt/distest' latency-delayer stop --state-dir '/run/dt/n1'"
        );
        assert!(nodes[1].commands().is_empty() && nodes[2].commands().is_empty());
        assert!(nemesis.heal().is_empty());
        assert!(nemesis.active().is_empty());
    }

    #[test]
    fn a_delayer_that_cannot_start_undoes_the_whole_start_and_nothing_is_active() {
        let broken = Arc::new(FakeNode::with(2, |cmd| {
            if cmd.contains("latency-delayer start") {
                failed("could not bind NFQUEUE 17492 (Operation not supported): this kernel lacks NFQUEUE support (nfnetlink_queue)")
            } else {
                ok("")
            }
        }));
        let nodes = vec![node(1), broken, node(3)];
        let mut nemesis = latency(&nodes);
        let err = nemesis.invoke(&start(&["n1", "n2"])).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("`start-latency` failed on 1 of 2 node(s): n2: could not start the latency delayer on n2: could not bind NFQUEUE"),
            "{text}"
        );
        assert!(
            nemesis.active().is_empty(),
            "a failed start is never active"
        );
        // No rule anywhere; n1's delayer, which did start, was stopped again.
        for n in &nodes {
            assert!(
                !n.commands()
                    .iter()
                    .any(|c| c.contains("-A DISTEST-LATENCY")),
                "{:?}",
                n.commands()
            );
        }
        assert!(nodes[0]
            .commands()
            .last()
            .unwrap()
            .contains("latency-delayer stop"));
        assert!(
            nemesis.heal().is_empty(),
            "the rollback left nothing to heal"
        );
    }

    #[test]
    fn rules_that_cannot_be_installed_undo_the_start() {
        let no_iptables = Arc::new(FakeNode::with(1, |cmd| {
            if cmd.contains("DISTEST-LATENCY") && cmd.contains("-A") {
                failed("iptables: not found")
            } else {
                ok("")
            }
        }));
        let nodes = vec![no_iptables, node(2)];
        let mut nemesis = latency(&nodes);
        assert!(nemesis.invoke(&start(&["n1"])).is_err());
        assert!(nemesis.active().is_empty());
        let last_two: Vec<String> = nodes[0].commands().into_iter().rev().take(2).collect();
        assert!(last_two[0].contains("latency-delayer stop"), "{last_two:?}");
        assert_eq!(
            last_two[1],
            iptables::LATENCY.remove_command(iptables::Family::V4)
        );
        assert!(nemesis.heal().is_empty());
    }

    #[test]
    fn a_failed_stop_stays_on_the_books_for_heal() {
        let stuck = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let flag = stuck.clone();
        let n1 = Arc::new(FakeNode::with(1, move |cmd| {
            if cmd.contains("latency-delayer stop")
                && flag.load(std::sync::atomic::Ordering::SeqCst)
            {
                failed("the latency delayer 77 survived SIGKILL for 5 s")
            } else {
                ok("")
            }
        }));
        let nodes = vec![n1, node(2)];
        let mut nemesis = latency(&nodes);
        nemesis.invoke(&start(&["n1"])).unwrap();
        assert!(nemesis.invoke(&FaultOp::new(STOP, Value::Null)).is_err());
        assert_eq!(
            nemesis.active(),
            vec!["latency (heal pending)"],
            "a stopped latency is not described, even half-stopped"
        );
        stuck.store(false, std::sync::atomic::Ordering::SeqCst);
        let healed = nemesis.heal();
        assert!(healed[0].1.is_ok(), "{:?}", healed[0].1);
        assert!(nemesis.heal().is_empty());
    }

    #[test]
    fn delays_out_of_range_and_single_nodes_are_refused() {
        let nodes = vec![node(1), node(2)];
        let mut nemesis = latency(&nodes);
        for value in [
            json!({"nodes": ["n1"], "delay_ms": -1}),
            json!({"nodes": ["n1"], "delay_ms": MAX_DELAY_MS + 1}),
            json!({"nodes": ["n1"], "delay_ms": 10, "jitter_ms": 11}),
            json!({"nodes": ["n1"], "delay_ms": "slow"}),
        ] {
            assert!(matches!(
                nemesis.invoke(&FaultOp::new(START, value)),
                Err(NemesisError::BadValue { .. })
            ));
        }
        assert!(nodes[0].commands().is_empty());
        let alone = vec![node(1)];
        let mut single = latency(&alone);
        assert!(matches!(
            single.invoke(&start(&["n1"])),
            Err(NemesisError::NotEnoughNodes { .. })
        ));
        assert!(matches!(
            single.preflight(),
            Err(NemesisError::NotEnoughNodes { .. })
        ));
    }

    #[test]
    fn preflight_names_the_missing_queue_support_once_for_all_nodes() {
        let no_nfqueue = |i| {
            Arc::new(
                FakeNode::with(i, |cmd| {
                    if cmd.contains("latency-delayer probe") {
                        failed("could not bind NFQUEUE 17492 (Protocol not supported): this kernel lacks NFQUEUE support (nfnetlink_queue)")
                    } else {
                        ok("")
                    }
                })
                .local(),
            )
        };
        let nodes = vec![no_nfqueue(1), no_nfqueue(2), no_nfqueue(3)];
        let text = latency(&nodes).preflight().unwrap_err().to_string();
        assert_eq!(
            text,
            "latency needs NFQUEUE (nfnetlink_queue) with queue 17492 free, which this machine lacks (could not bind NFQUEUE 17492 (Protocol not supported): this kernel lacks NFQUEUE support (nfnetlink_queue))"
        );
    }

    #[test]
    fn preflight_checks_the_iptables_target_and_the_helper() {
        let no_target = Arc::new(FakeNode::with(1, |cmd| {
            if cmd.contains("-A DISTEST-PROBE -m comment") {
                failed("iptables v1.8.9 (nf_tables): Couldn't load target `NFQUEUE'")
            } else {
                ok("")
            }
        }));
        let nodes = vec![
            no_target,
            node(2),
            Arc::new(FakeNode::ok(3).without_helper()),
        ];
        let text = latency(&nodes).preflight().unwrap_err().to_string();
        assert!(text.contains("latency needs iptables taking `-j NFQUEUE --queue-num 17492 --queue-bypass` rules (mangle table), which n1 lacks (iptables v1.8.9 (nf_tables): Couldn't load target `NFQUEUE')"), "{text}");
        assert!(
            text.contains("latency needs distest's helper program on the node, which n3 lacks"),
            "{text}"
        );
        assert!(!text.contains("n2"), "{text}");
        let fine = vec![node(1), node(2)];
        latency(&fine).preflight().unwrap();
        // The probe leaves nothing behind: its chain is removed in the same command.
        assert!(fine[0]
            .commands()
            .iter()
            .all(|c| !c.contains("-A DISTEST-LATENCY ")));
    }
}
