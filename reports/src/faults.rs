//! Fault intervals and per-node events, read from the nemesis' ops.
//!
//! Naming (ARCHITECTURE.md): `start-X` … `stop-X`, `kill` … `start`, `pause` … `resume`,
//! `*-clock` … `reset-clock`. The nemesis records each fault op as an invocation and a
//! completion (both usually typed `info`); a fault is active from its start op's
//! completion until the matching stop op's completion, and one still open when the
//! history ends runs to the end. A start whose completion has an `error` never took
//! effect and is never drawn as active (it is still listed as an event). Values are read generically: whatever JSON the nemesis
//! wrote, node names found in it attribute the event to those nodes.

use distest_checkers::{History, Op, OpType};
use serde_json::Value;
use std::collections::HashMap;

/// What an f does to the fault state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultRole {
    /// Begins a fault of this kind.
    Start(String),
    /// Ends every open fault of this kind.
    Stop(String),
}

/// Classifies a nemesis f by the naming convention; `None` for anything else.
pub fn role(f: &str) -> Option<FaultRole> {
    let f = f.trim_start_matches(':');
    match f {
        "kill" => Some(FaultRole::Start("kill".into())),
        "start" => Some(FaultRole::Stop("kill".into())),
        "pause" => Some(FaultRole::Start("pause".into())),
        "resume" => Some(FaultRole::Stop("pause".into())),
        "reset-clock" => Some(FaultRole::Stop("clock".into())),
        _ => {
            if let Some(kind) = f.strip_prefix("start-") {
                Some(FaultRole::Start(kind.into()))
            } else if let Some(kind) = f.strip_prefix("stop-") {
                Some(FaultRole::Stop(kind.into()))
            } else if f.ends_with("-clock") {
                Some(FaultRole::Start("clock".into()))
            } else {
                None
            }
        }
    }
}

/// One completed nemesis op: when it took effect and what it said.
#[derive(Clone, Debug)]
pub struct NemesisEvent<'a> {
    /// The completion (or the invocation when the history ended before it completed).
    pub op: &'a Op,
    pub invoke: &'a Op,
    pub time_ns: u64,
}

/// Pairs nemesis ops into events. Per f, ops alternate invocation / completion (the
/// nemesis types both `info`); an op typed `invoke` always starts a new pair.
pub fn nemesis_events(history: &History) -> Vec<NemesisEvent<'_>> {
    let mut pending: HashMap<&str, &Op> = HashMap::new();
    let mut events = Vec::new();
    for op in history.nemesis_ops() {
        let f = op.f.as_str();
        match pending.remove(f) {
            Some(invoke) if op.kind != OpType::Invoke => events.push(NemesisEvent {
                op,
                invoke,
                time_ns: op.time,
            }),
            Some(stale) => {
                // A new invocation while one was pending: the earlier one never completed.
                events.push(NemesisEvent {
                    op: stale,
                    invoke: stale,
                    time_ns: stale.time,
                });
                pending.insert(f, op);
            }
            None => {
                pending.insert(f, op);
            }
        }
    }
    for invoke in pending.into_values() {
        events.push(NemesisEvent {
            op: invoke,
            invoke,
            time_ns: invoke.time,
        });
    }
    events.sort_by_key(|e| (e.time_ns, e.op.index));
    events
}

/// True when the event's completion carries an `error`: the op did not take effect (a
/// failed start is undone where it partly happened), so it opens no fault interval.
fn failed(e: &NemesisEvent<'_>) -> bool {
    !std::ptr::eq(e.op, e.invoke) && e.op.error.is_some()
}

/// A time span during which a fault of `kind` was active.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultInterval {
    pub kind: String,
    pub start_ns: u64,
    pub end_ns: u64,
    /// Still active when the history ended.
    pub open_at_end: bool,
    /// The start op's completion value, compact, for tooltips and tables.
    pub detail: String,
    pub start_index: u64,
}

/// The active intervals of every fault, in start order.
pub fn intervals(events: &[NemesisEvent<'_>], end_ns: u64) -> Vec<FaultInterval> {
    let mut open: Vec<FaultInterval> = Vec::new();
    let mut closed: Vec<FaultInterval> = Vec::new();
    for e in events {
        match role(&e.op.f) {
            Some(FaultRole::Start(_)) if failed(e) => {}
            Some(FaultRole::Start(kind)) => open.push(FaultInterval {
                kind,
                start_ns: e.time_ns,
                end_ns,
                open_at_end: true,
                detail: crate::html::compact_json(&e.op.value, 200),
                start_index: e.op.index,
            }),
            Some(FaultRole::Stop(kind)) => {
                let (ended, still): (Vec<_>, Vec<_>) =
                    open.into_iter().partition(|i| i.kind == kind);
                open = still;
                closed.extend(ended.into_iter().map(|mut i| {
                    i.end_ns = e.time_ns.max(i.start_ns);
                    i.open_at_end = false;
                    i
                }));
            }
            None => {}
        }
    }
    closed.extend(open);
    closed.sort_by_key(|i| (i.start_ns, i.start_index));
    closed
}

/// Node names mentioned in `value`: object keys and strings equal to a known node name,
/// searched to a bounded depth.
pub fn nodes_in(value: &Value, nodes: &[String]) -> Vec<String> {
    fn walk(v: &Value, nodes: &[String], depth: usize, out: &mut Vec<String>) {
        if depth > 8 || out.len() >= nodes.len() {
            return;
        }
        fn note(s: &str, nodes: &[String], out: &mut Vec<String>) {
            if let Some(n) = nodes.iter().find(|n| n.as_str() == s) {
                if !out.contains(n) {
                    out.push(n.clone());
                }
            }
        }
        match v {
            Value::String(s) => note(s, nodes, out),
            Value::Array(items) => items.iter().for_each(|i| walk(i, nodes, depth + 1, out)),
            Value::Object(map) => {
                for (k, v) in map {
                    note(k, nodes, out);
                    walk(v, nodes, depth + 1, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(value, nodes, 0, &mut out);
    out.sort();
    out
}

/// The part of a nemesis value about `node`: the value under a key equal to the node's
/// name, anywhere in the value, prefixed by the key above it (`offsets_ms: 750`,
/// `grudge: ["n2"]`). `None` when the node is only listed, not keyed.
pub fn detail_for(value: &Value, node: &str) -> Option<String> {
    fn walk(v: &Value, node: &str, parent: Option<&str>, depth: usize) -> Option<String> {
        if depth > 8 {
            return None;
        }
        match v {
            Value::Object(map) => {
                if let Some(x) = map.get(node) {
                    let text = crate::html::compact_json(x, 120);
                    return Some(match parent {
                        Some(p) => format!("{p}: {text}"),
                        None => text,
                    });
                }
                map.iter()
                    .find_map(|(k, c)| walk(c, node, Some(k), depth + 1))
            }
            Value::Array(items) => items.iter().find_map(|c| walk(c, node, parent, depth + 1)),
            _ => None,
        }
    }
    walk(value, node, None, 0)
}

/// What happened to one node: when, which f, and the part of the value about this node.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeEvent {
    pub time_ns: u64,
    pub f: String,
    pub detail: String,
}

/// Per node (in `nodes` order), the nemesis events that name it. Events that name no
/// node (e.g. a partition described as "majority") are listed under `"*"`.
pub fn node_events(events: &[NemesisEvent<'_>], nodes: &[String]) -> Vec<(String, Vec<NodeEvent>)> {
    let mut per: Vec<(String, Vec<NodeEvent>)> =
        nodes.iter().map(|n| (n.clone(), Vec::new())).collect();
    let mut unattributed = Vec::new();
    for e in events {
        let named = nodes_in(&e.op.value, nodes);
        if named.is_empty() {
            unattributed.push(NodeEvent {
                time_ns: e.time_ns,
                f: e.op.f.clone(),
                detail: crate::html::compact_json(&e.op.value, 160),
            });
            continue;
        }
        for n in named {
            let detail = detail_for(&e.op.value, &n)
                .unwrap_or_else(|| crate::html::compact_json(&e.op.value, 160));
            if let Some((_, list)) = per.iter_mut().find(|(name, _)| *name == n) {
                list.push(NodeEvent {
                    time_ns: e.time_ns,
                    f: e.op.f.clone(),
                    detail,
                });
            }
        }
    }
    if !unattributed.is_empty() {
        per.push(("*".into(), unattributed));
    }
    per
}

/// Per-node active intervals (for the node lanes): a start event naming a node opens a
/// fault for it; a stop event naming it, or naming no node at all, closes it.
pub fn node_intervals(
    events: &[NemesisEvent<'_>],
    nodes: &[String],
    end_ns: u64,
) -> Vec<(String, FaultInterval)> {
    let mut open: Vec<(String, FaultInterval)> = Vec::new();
    let mut done = Vec::new();
    for e in events {
        let named = nodes_in(&e.op.value, nodes);
        match role(&e.op.f) {
            Some(FaultRole::Start(_)) if failed(e) => {}
            Some(FaultRole::Start(kind)) => {
                for n in named {
                    let detail = detail_for(&e.op.value, &n).unwrap_or_else(|| kind.clone());
                    open.push((
                        n,
                        FaultInterval {
                            kind: kind.clone(),
                            start_ns: e.time_ns,
                            end_ns,
                            open_at_end: true,
                            detail,
                            start_index: e.op.index,
                        },
                    ));
                }
            }
            Some(FaultRole::Stop(kind)) => {
                let (ended, still): (Vec<_>, Vec<_>) = open
                    .into_iter()
                    .partition(|(n, i)| i.kind == kind && (named.is_empty() || named.contains(n)));
                open = still;
                done.extend(ended.into_iter().map(|(n, mut i)| {
                    i.end_ns = e.time_ns.max(i.start_ns);
                    i.open_at_end = false;
                    (n, i)
                }));
            }
            None => {}
        }
    }
    done.extend(open);
    done
}

#[cfg(test)]
mod tests {
    use super::*;
    use distest_checkers::Process;
    use serde_json::json;

    fn nem(index: u64, time_s: u64, f: &str, value: Value) -> Op {
        let mut op = Op::invoke(Process::Nemesis, f, value).with_time(time_s * 1_000_000_000);
        op.index = index;
        op.kind = OpType::Info;
        op
    }

    fn history(ops: Vec<Op>) -> History {
        History::new(ops).unwrap()
    }

    #[test]
    fn roles_follow_the_naming_convention() {
        assert_eq!(
            role("start-partition"),
            Some(FaultRole::Start("partition".into()))
        );
        assert_eq!(
            role("stop-partition"),
            Some(FaultRole::Stop("partition".into()))
        );
        assert_eq!(role("kill"), Some(FaultRole::Start("kill".into())));
        assert_eq!(role("start"), Some(FaultRole::Stop("kill".into())));
        assert_eq!(role("resume"), Some(FaultRole::Stop("pause".into())));
        assert_eq!(role("strobe-clock"), Some(FaultRole::Start("clock".into())));
        assert_eq!(role("reset-clock"), Some(FaultRole::Stop("clock".into())));
        assert_eq!(role("read"), None);
    }

    #[test]
    fn intervals_run_from_start_completion_to_stop_completion_and_open_ones_to_the_end() {
        let h = history(vec![
            nem(0, 1, "start-partition", json!(null)),
            nem(1, 2, "start-partition", json!("majority")),
            nem(2, 5, "stop-partition", json!(null)),
            nem(3, 6, "stop-partition", json!("healed")),
            nem(4, 7, "kill", json!(null)),
            nem(5, 8, "kill", json!({"n1": "killed"})),
        ]);
        let events = nemesis_events(&h);
        assert_eq!(events.len(), 3);
        let iv = intervals(&events, 20_000_000_000);
        assert_eq!(iv.len(), 2);
        assert_eq!(
            (iv[0].kind.as_str(), iv[0].start_ns, iv[0].end_ns),
            ("partition", 2_000_000_000, 6_000_000_000)
        );
        assert!(!iv[0].open_at_end);
        assert_eq!(
            (iv[1].kind.as_str(), iv[1].end_ns, iv[1].open_at_end),
            ("kill", 20_000_000_000, true)
        );
    }

    #[test]
    fn a_start_that_failed_is_never_active() {
        let mut failed = nem(1, 2, "start-latency", json!({"nodes": ["n1"]}));
        failed.error = Some(json!("latency needs NFQUEUE, which this machine lacks"));
        let h = history(vec![
            nem(0, 1, "start-latency", json!({"nodes": ["n1"]})),
            failed,
            nem(2, 3, "start-partition", json!(null)),
            nem(3, 4, "start-partition", json!({"grudge": {"n2": ["n1"]}})),
        ]);
        let events = nemesis_events(&h);
        let iv = intervals(&events, 10_000_000_000);
        assert_eq!(iv.len(), 1, "{iv:?}");
        assert_eq!(iv[0].kind, "partition");
        let nodes: Vec<String> = ["n1", "n2"].iter().map(|s| s.to_string()).collect();
        let lanes = node_intervals(&events, &nodes, 10_000_000_000);
        assert!(
            lanes.iter().all(|(_, i)| i.kind == "partition"),
            "{lanes:?}"
        );
        // Still an event on the node's lane (a tick), just never a band.
        assert!(node_events(&events, &nodes)[0]
            .1
            .iter()
            .any(|e| e.f == "start-latency"));
    }

    #[test]
    fn node_details_come_from_the_nemesis_value_shapes() {
        let clock = json!({"offsets_ms": {"n1": 750, "n2": -20}});
        assert_eq!(detail_for(&clock, "n1").as_deref(), Some("offsets_ms: 750"));
        let grudge = json!({"shape": "halves", "grudge": {"n1": ["n2"], "n2": ["n1"]}});
        assert_eq!(
            detail_for(&grudge, "n2").as_deref(),
            Some("grudge: [\"n1\"]")
        );
        assert_eq!(detail_for(&json!({"nodes": ["n1"]}), "n1"), None);
    }

    #[test]
    fn node_events_attribute_values_to_named_nodes() {
        let h = history(vec![
            nem(0, 1, "bump-clock", json!(null)),
            nem(1, 1, "bump-clock", json!({"n2": 250, "n3": -100})),
            nem(2, 2, "start-partition", json!(null)),
            nem(3, 2, "start-partition", json!("majority")),
        ]);
        let nodes: Vec<String> = ["n1", "n2", "n3"].iter().map(|s| s.to_string()).collect();
        let per = node_events(&nemesis_events(&h), &nodes);
        assert!(per[0].1.is_empty());
        assert_eq!(per[1].1[0].detail, "250");
        assert_eq!(per[2].1[0].detail, "-100");
        assert_eq!(per[3].0, "*");
        let lanes = node_intervals(&nemesis_events(&h), &nodes, 10);
        assert_eq!(lanes.len(), 2);
    }
}
