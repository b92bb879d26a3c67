//! Node selectors in scripted fault ops, resolved when a step runs, and the nemesis that
//! resolves them before handing the op to the faults that perform it.
//!
//! In a step's value, the node lists `nodes`, `isolate` (start-partition: these nodes on
//! one side, everyone else on the other), `components` (start-partition: a list of sides)
//! and `not` (await-leader) take node names and selectors:
//!
//! | selector | resolves to |
//! |---|---|
//! | `@leader` | the target's most recent leader (its first primary) |
//! | `@primaries` | every node that says it leads |
//! | `@follower` | one node that does not lead, drawn from the run's seed |
//! | `@others` | every node the op names nowhere else (in `components`: the rest) |
//! | `@NAME` | the nodes an earlier step bound with `as = "NAME"` |
//!
//! `await-leader` (`{"not": [...], "timeout_s": 10}`) waits until the most recent leader
//! is a node outside `not`, and binds it: "as soon as a new leader is elected, isolate
//! it" is `await-leader` then `start-partition` `{isolate = ["@new"]}`. The invoke in
//! the history shows the selectors as written, its completion what they resolved to.

use crate::cluster::Cluster;
use crate::error::NemesisError;
use crate::nemesis::{FaultOp, HealLog, Nemesis, NemesisContext};
use crate::node::TargetControl;
use crate::partition::{self, Grudge};
use crate::script::BIND_KEY;
use distest_generator::rng_for;
use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const AWAIT_LEADER: &str = "await-leader";
/// Selector names that cannot be bound by `as`.
pub const RESERVED: &[&str] = &["leader", "primaries", "follower", "others"];
/// The value keys that hold node lists (`components` holds a list of them).
const LIST_KEYS: &[&str] = &["nodes", "isolate", "not"];
const DEFAULT_AWAIT_S: f64 = 10.0;
const MAX_AWAIT_S: f64 = 60.0;
const AWAIT_POLL: Duration = Duration::from_millis(50);

/// Whether `name` can be bound with `as`.
pub fn is_bindable_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !RESERVED.contains(&name)
}

/// Every node list of `value` (`nodes`, `isolate`, `not` and each side of `components`).
fn lists(value: &Value) -> Vec<&Value> {
    let mut found: Vec<&Value> = LIST_KEYS.iter().filter_map(|k| value.get(*k)).collect();
    if let Some(Value::Array(sides)) = value.get("components") {
        found.extend(sides.iter());
    }
    found
}

/// The `@NAME` selectors of `value` that are not built in: names earlier steps must bind.
pub fn bound_names_used(value: &Value) -> Vec<String> {
    lists(value)
        .into_iter()
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(|s| s.strip_prefix('@'))
        .filter(|s| !RESERVED.contains(s))
        .map(str::to_string)
        .collect()
}

/// Checks the shape of the node lists in `value`; the reason names the key.
pub fn check_selectors(value: &Value) -> Result<(), String> {
    for key in LIST_KEYS {
        if let Some(v) = value.get(*key) {
            if !v.as_array().is_some_and(|a| a.iter().all(Value::is_string)) {
                return Err(format!("`{key}` must be a list of node names or selectors"));
            }
        }
    }
    if let Some(v) = value.get("components") {
        let ok = v.as_array().is_some_and(|sides| {
            sides.len() >= 2
                && sides
                    .iter()
                    .all(|s| s.as_array().is_some_and(|a| a.iter().all(Value::is_string)))
        });
        if !ok {
            return Err("`components` must be a list of at least two lists of nodes".into());
        }
    }
    if value.get("isolate").is_some() && value.get("components").is_some() {
        return Err("give either `isolate` or `components`, not both".into());
    }
    Ok(())
}

/// Performs scripted ops: resolves their selectors, waits for leaders, keeps what steps
/// bound, and hands every fault op to `inner` (which also heals).
pub struct Selecting {
    inner: Box<dyn Nemesis>,
    cluster: Cluster,
    target: Arc<dyn TargetControl>,
    rng: StdRng,
    bound: BTreeMap<String, Vec<String>>,
}

impl Selecting {
    pub fn new(inner: Box<dyn Nemesis>, ctx: &NemesisContext) -> Selecting {
        Selecting {
            inner,
            cluster: Cluster::new(ctx.nodes.clone()),
            target: ctx.target.clone(),
            rng: rng_for(ctx.seed, "script"),
            bound: BTreeMap::new(),
        }
    }

    /// The run's primaries, most recent first, limited to its nodes.
    fn primaries(&self) -> Vec<String> {
        let names = self.cluster.names();
        self.target
            .primaries()
            .into_iter()
            .filter(|p| names.contains(p))
            .collect()
    }

    /// Resolves one list; `@others` and `@follower` avoid `named` (nodes named elsewhere
    /// in the op). Fails for a selector that resolves to nothing.
    fn resolve_list(
        &mut self,
        f: &str,
        list: &Value,
        named: &[String],
    ) -> Result<Vec<String>, NemesisError> {
        let items: Vec<&str> = list
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let mut out: Vec<String> = Vec::new();
        let add = |out: &mut Vec<String>, names: Vec<String>| {
            for n in names {
                if !out.contains(&n) {
                    out.push(n);
                }
            }
        };
        for item in items {
            let names = match item.strip_prefix('@') {
                None => {
                    self.cluster.check_names(f, &[item.to_string()])?;
                    vec![item.to_string()]
                }
                Some("leader") => {
                    let first = self.primaries().into_iter().next();
                    vec![first.ok_or_else(|| NemesisError::NoPrimaries { f: f.to_string() })?]
                }
                Some("primaries") => {
                    let all = self.primaries();
                    if all.is_empty() {
                        return Err(NemesisError::NoPrimaries { f: f.to_string() });
                    }
                    all
                }
                Some("follower") => {
                    let primaries = self.primaries();
                    let candidates: Vec<String> = self
                        .cluster
                        .names()
                        .into_iter()
                        .filter(|n| {
                            !primaries.contains(n) && !named.contains(n) && !out.contains(n)
                        })
                        .collect();
                    if candidates.is_empty() {
                        return Err(NemesisError::bad_value(
                            f,
                            "`@follower` found no node that does not lead",
                        ));
                    }
                    vec![candidates[self.rng.gen_range(0..candidates.len())].clone()]
                }
                Some("others") => self
                    .cluster
                    .names()
                    .into_iter()
                    .filter(|n| !named.contains(n) && !out.contains(n))
                    .collect(),
                Some(name) => self.bound.get(name).cloned().ok_or_else(|| {
                    NemesisError::bad_value(
                        f,
                        format!("`@{name}` was never bound (its step failed?)"),
                    )
                })?,
            };
            add(&mut out, names);
        }
        if out.is_empty() {
            return Err(NemesisError::bad_value(
                f,
                "a node list resolved to no node",
            ));
        }
        Ok(out)
    }

    /// The op with every selector resolved, and the nodes an `as` binds.
    fn resolve(&mut self, op: &FaultOp) -> Result<(FaultOp, Vec<String>), NemesisError> {
        let Some(map) = op.value.as_object() else {
            return Ok((op.clone(), Vec::new()));
        };
        let mut map: Map<String, Value> = map.clone();
        map.remove(BIND_KEY);
        let f = op.f.as_str();
        let mut binds = Vec::new();
        if let Some(list) = map.get("nodes").cloned() {
            let nodes = self.resolve_list(f, &list, &[])?;
            binds = nodes.clone();
            map.insert("nodes".into(), json!(nodes));
        }
        if let Some(list) = map.remove("isolate") {
            let isolated = self.resolve_list(f, &list, &[])?;
            let grudge = partition::isolate(&self.cluster.names(), &isolated);
            binds = isolated;
            self.insert_grudge(f, &mut map, "isolate", &grudge)?;
        }
        if let Some(Value::Array(sides)) = map.remove("components") {
            // Named sides first, so `@others` is what they leave.
            let mut resolved: Vec<Option<Vec<String>>> = vec![None; sides.len()];
            let mut named: Vec<String> = Vec::new();
            let has_others = |s: &Value| {
                s.as_array()
                    .is_some_and(|a| a.iter().any(|x| x == "@others"))
            };
            for pass in [false, true] {
                for (i, side) in sides.iter().enumerate() {
                    if has_others(side) == pass {
                        let nodes = self.resolve_list(f, side, &named)?;
                        named.extend(nodes.iter().cloned());
                        resolved[i] = Some(nodes);
                    }
                }
            }
            let components: Vec<Vec<String>> = resolved.into_iter().flatten().collect();
            let mut seen = std::collections::BTreeSet::new();
            if !components.iter().flatten().all(|n| seen.insert(n)) {
                return Err(NemesisError::bad_value(
                    f,
                    "a node is on two sides of `components`",
                ));
            }
            binds = components[0].clone();
            let grudge = partition::complete(&components);
            self.insert_grudge(f, &mut map, "components", &grudge)?;
        }
        Ok((FaultOp::new(op.f.clone(), Value::Object(map)), binds))
    }

    fn insert_grudge(
        &self,
        f: &str,
        map: &mut Map<String, Value>,
        shape: &str,
        grudge: &Grudge,
    ) -> Result<(), NemesisError> {
        if f != partition::START {
            return Err(NemesisError::bad_value(
                f,
                format!("`{shape}` belongs to {}", partition::START),
            ));
        }
        map.entry("shape").or_insert_with(|| json!(shape));
        map.insert("grudge".into(), partition::grudge_to_json(grudge));
        Ok(())
    }

    fn await_leader(&mut self, op: &FaultOp) -> Result<(Value, Vec<String>), NemesisError> {
        let not = match op.value.get("not") {
            Some(list) => self.resolve_list(AWAIT_LEADER, list, &[])?,
            None => Vec::new(),
        };
        let timeout_s = match op.value.get("timeout_s") {
            None => DEFAULT_AWAIT_S,
            Some(v) => v
                .as_f64()
                .filter(|s| (0.0..=MAX_AWAIT_S).contains(s))
                .ok_or_else(|| {
                    NemesisError::bad_value(
                        AWAIT_LEADER,
                        format!("`timeout_s` must be a number of seconds up to {MAX_AWAIT_S}"),
                    )
                })?,
        };
        let began = Instant::now();
        let deadline = began + Duration::from_secs_f64(timeout_s);
        loop {
            if let Some(leader) = self
                .primaries()
                .into_iter()
                .next()
                .filter(|l| !not.contains(l))
            {
                let waited_ms = began.elapsed().as_millis() as u64;
                return Ok((
                    json!({"leader": leader, "waited_ms": waited_ms}),
                    vec![leader],
                ));
            }
            if Instant::now() >= deadline {
                return Err(NemesisError::NoNewLeader {
                    f: AWAIT_LEADER.to_string(),
                    not: if not.is_empty() {
                        "none".into()
                    } else {
                        not.join(", ")
                    },
                    waited_ms: began.elapsed().as_millis() as u64,
                });
            }
            std::thread::sleep(AWAIT_POLL.min(deadline.saturating_duration_since(Instant::now())));
        }
    }
}

impl Nemesis for Selecting {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn performs(&self) -> Vec<&'static str> {
        let mut ops = self.inner.performs();
        ops.push(AWAIT_LEADER);
        ops
    }

    fn next_op(&mut self) -> FaultOp {
        self.inner.next_op()
    }

    fn invoke(&mut self, op: &FaultOp) -> Result<Value, NemesisError> {
        let bind = op
            .value
            .get(BIND_KEY)
            .and_then(Value::as_str)
            .map(str::to_string);
        let (mut done, nodes) = if op.f == AWAIT_LEADER {
            self.await_leader(op)?
        } else {
            let (resolved, nodes) = self.resolve(op)?;
            (self.inner.invoke(&resolved)?, nodes)
        };
        if let Some(name) = bind {
            if let Some(map) = done.as_object_mut() {
                map.insert(BIND_KEY.into(), json!({name.clone(): nodes}));
            }
            self.bound.insert(name, nodes);
        }
        Ok(done)
    }

    fn heal(&mut self) -> HealLog {
        self.inner.heal()
    }

    fn active(&self) -> Vec<String> {
        self.inner.active()
    }

    /// Selectors need nothing of the nodes; the faults they aim need what they need.
    fn preflight(&self) -> Result<(), NemesisError> {
        self.inner.preflight()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{self, FakeTarget};

    fn selecting(n: u8) -> (Selecting, Arc<FakeTarget>) {
        let (nodes, target) = fake::cluster(n);
        let ctx = NemesisContext {
            nodes: fake::shells(&nodes),
            target: target.clone(),
            seed: 3,
        };
        let inner = crate::build(&["partition,kill".to_string()], ctx.clone()).unwrap();
        (Selecting::new(inner, &ctx), target)
    }

    fn lead(target: &FakeTarget, leaders: &[&str]) {
        *target.primaries.lock().unwrap() = leaders.iter().map(|s| s.to_string()).collect();
    }

    #[test]
    fn isolate_the_leader_then_kill_the_node_it_bound() {
        let (mut s, target) = selecting(3);
        lead(&target, &["n2"]);
        let done = s
            .invoke(&FaultOp::new(
                "start-partition",
                json!({"isolate": ["@leader"], "as": "cut"}),
            ))
            .unwrap();
        assert_eq!(done["shape"], "isolate");
        assert_eq!(done["grudge"]["n2"], json!(["n1", "n3"]));
        assert_eq!(done["grudge"]["n1"], json!(["n2"]));
        assert_eq!(done["as"], json!({"cut": ["n2"]}));
        lead(&target, &["n3"]);
        let killed = s
            .invoke(&FaultOp::new("kill", json!({"nodes": ["@cut"]})))
            .unwrap();
        assert_eq!(killed["nodes"], json!(["n2"]));
        assert_eq!(target.calls(), vec!["kill n2"]);
        let healed: Vec<String> = s.heal().into_iter().map(|(op, _)| op.f).collect();
        assert_eq!(healed, vec!["stop-partition", "start"]);
    }

    #[test]
    fn components_put_the_rest_where_others_is() {
        let (mut s, target) = selecting(5);
        lead(&target, &["n4", "n1"]);
        let done = s
            .invoke(&FaultOp::new(
                "start-partition",
                json!({"components": [["@leader", "n2"], ["@others"]]}),
            ))
            .unwrap();
        assert_eq!(done["grudge"]["n4"], json!(["n1", "n3", "n5"]));
        assert_eq!(done["grudge"]["n5"], json!(["n2", "n4"]));
        let err = s
            .invoke(&FaultOp::new(
                "start-partition",
                json!({"components": [["n1", "n2"], ["n2", "n3"]]}),
            ))
            .unwrap_err();
        assert!(err.to_string().contains("two sides"), "{err}");
    }

    #[test]
    fn await_leader_returns_a_new_leader_or_fails_by_its_deadline() {
        let (mut s, target) = selecting(3);
        lead(&target, &["n1"]);
        s.invoke(&FaultOp::new(AWAIT_LEADER, json!({"as": "old"})))
            .unwrap();
        let t = target.clone();
        let flip = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(150));
            lead(&t, &["n3", "n1"]);
        });
        let done = s
            .invoke(&FaultOp::new(
                AWAIT_LEADER,
                json!({"not": ["@old"], "as": "new", "timeout_s": 5}),
            ))
            .unwrap();
        flip.join().unwrap();
        assert_eq!(done["leader"], "n3");
        assert!(done["waited_ms"].as_u64().unwrap() >= 100, "{done}");
        let err = s
            .invoke(&FaultOp::new(
                AWAIT_LEADER,
                json!({"not": ["@new"], "timeout_s": 0.2}),
            ))
            .unwrap_err();
        assert!(err.to_string().contains("no leader other than n3"), "{err}");
    }

    #[test]
    fn selectors_that_name_nothing_are_errors_not_panics() {
        let (mut s, _target) = selecting(3);
        for value in [
            json!({"nodes": ["@leader"]}),
            json!({"nodes": ["@ghost"]}),
            json!({"nodes": ["n9"]}),
            json!({"nodes": []}),
        ] {
            assert!(
                s.invoke(&FaultOp::new("kill", value.clone())).is_err(),
                "{value}"
            );
        }
        assert!(s
            .invoke(&FaultOp::new("kill", json!({"isolate": ["n1"]})))
            .is_err());
    }

    #[test]
    fn follower_is_a_non_leader_drawn_from_the_seed() {
        let draw = || {
            let (mut s, target) = selecting(5);
            lead(&target, &["n1"]);
            (0..10)
                .map(|_| {
                    let done = s
                        .invoke(&FaultOp::new("kill", json!({"nodes": ["@follower"]})))
                        .unwrap();
                    done["nodes"][0].as_str().unwrap().to_string()
                })
                .collect::<Vec<_>>()
        };
        let a = draw();
        assert_eq!(a, draw());
        assert!(a.iter().all(|n| n != "n1"));
    }
}
