//! Which nodes a fault hits: one, a minority, a majority, the primaries, or all; and
//! [`Reach`], what every fault acts on and draws from.
//!
//! `next_op` draws the mode and, except for `primaries`, the nodes, so the recorded invoke
//! already names them and a schedule replays without consulting the target. Primaries
//! can only be known when the op is performed, so they are resolved in `invoke`.

use crate::cluster::Cluster;
use crate::error::NemesisError;
use crate::nemesis::{FaultOp, NemesisContext};
use crate::node::TargetControl;
use crate::value;
use distest_generator::rng_for;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;
use serde_json::{json, Value};
use std::sync::Arc;

/// What a fault acts on and draws from: the run's nodes, the target, and the fault's own
/// random stream (`rng_for(seed, fault name)`).
pub(crate) struct Reach {
    pub(crate) cluster: Cluster,
    pub(crate) target: Arc<dyn TargetControl>,
    pub(crate) rng: StdRng,
}

impl Reach {
    /// The reach of the fault called `name`.
    pub(crate) fn new(ctx: &NemesisContext, name: &str) -> Reach {
        Reach {
            cluster: Cluster::new(ctx.nodes.clone()),
            target: ctx.target.clone(),
            rng: rng_for(ctx.seed, name),
        }
    }

    /// [`draw`]s a targeting mode and its nodes from this fault's stream.
    pub(crate) fn draw(&mut self) -> Value {
        draw(self.target.as_ref(), &self.cluster.names(), &mut self.rng)
    }

    /// The nodes `op` targets ([`resolve`]).
    pub(crate) fn resolve(&mut self, op: &FaultOp) -> Result<Vec<String>, NemesisError> {
        resolve(op, &self.cluster, self.target.as_ref(), &mut self.rng)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Targeting {
    One,
    /// The largest minority: (n-1)/2 nodes, at least one.
    Minority,
    /// The smallest majority: n/2+1 nodes.
    Majority,
    /// What `TargetControl::primaries` reports when the op is performed.
    Primaries,
    All,
}

impl Targeting {
    pub const EVERY: [Targeting; 5] = [
        Targeting::One,
        Targeting::Minority,
        Targeting::Majority,
        Targeting::Primaries,
        Targeting::All,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Targeting::One => "one",
            Targeting::Minority => "minority",
            Targeting::Majority => "majority",
            Targeting::Primaries => "primaries",
            Targeting::All => "all",
        }
    }

    pub fn parse(s: &str) -> Option<Targeting> {
        Targeting::EVERY.into_iter().find(|t| t.as_str() == s)
    }

    /// How many of `n` nodes this mode hits; `None` for primaries.
    pub fn count(self, n: usize) -> Option<usize> {
        match self {
            Targeting::One => Some(n.min(1)),
            Targeting::Minority => Some(((n.saturating_sub(1)) / 2).max(1).min(n)),
            Targeting::Majority => Some((n / 2 + 1).min(n)),
            Targeting::Primaries => None,
            Targeting::All => Some(n),
        }
    }

    /// Random nodes for this mode, in cluster order; `None` for primaries.
    pub fn pick(self, names: &[String], rng: &mut StdRng) -> Option<Vec<String>> {
        let count = self.count(names.len())?;
        let mut chosen: Vec<String> = names.choose_multiple(rng, count).cloned().collect();
        chosen.sort_by_key(|n| names.iter().position(|m| m == n));
        Some(chosen)
    }
}

/// Draws a targeting mode and its nodes: `{"targets": "minority", "nodes": [...]}`.
/// `primaries` is drawn only for a target that has primaries (static for a run, so a seed
/// replays the same draws).
pub(crate) fn draw(
    target: &dyn crate::node::TargetControl,
    names: &[String],
    rng: &mut StdRng,
) -> Value {
    let modes: Vec<Targeting> = Targeting::EVERY
        .into_iter()
        .filter(|m| *m != Targeting::Primaries || target.has_primaries())
        .collect();
    let mode = modes[rng.gen_range(0..modes.len())];
    match mode.pick(names, rng) {
        Some(nodes) => json!({"targets": mode.as_str(), "nodes": nodes}),
        None => json!({"targets": mode.as_str()}),
    }
}

/// The nodes `op` targets: its `nodes` list if it has one, else its `targets` mode
/// resolved now (primaries from the target, other modes drawn from `rng`).
pub(crate) fn resolve(
    op: &FaultOp,
    cluster: &Cluster,
    target: &dyn TargetControl,
    rng: &mut StdRng,
) -> Result<Vec<String>, NemesisError> {
    if let Some(nodes) = value::opt_names(op, "nodes")? {
        cluster.check_names(&op.f, &nodes)?;
        if nodes.is_empty() {
            return Err(NemesisError::bad_value(&op.f, "`nodes` is empty"));
        }
        return Ok(nodes);
    }
    let mode_name = value::opt_str(op, "targets")?.unwrap_or("one");
    let mode = Targeting::parse(mode_name).ok_or_else(|| {
        NemesisError::bad_value(
            &op.f,
            format!(
                "`targets` is `{mode_name}`, not one of one, minority, majority, primaries, all"
            ),
        )
    })?;
    if let Some(nodes) = mode.pick(&cluster.names(), rng) {
        return Ok(nodes);
    }
    let names = cluster.names();
    // Keep only primaries we know: a target reporting an address or a stale name must
    // not make us act on a node outside the run.
    let primaries: Vec<String> = target
        .primaries()
        .into_iter()
        .filter(|p| names.contains(p))
        .collect();
    if primaries.is_empty() {
        return Err(NemesisError::NoPrimaries { f: op.f.clone() });
    }
    Ok(primaries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn names(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("n{i}")).collect()
    }

    #[test]
    fn minority_is_less_than_half_and_majority_more_than_half() {
        for n in 3..=9 {
            let minority = Targeting::Minority.count(n).unwrap();
            let majority = Targeting::Majority.count(n).unwrap();
            assert!(minority * 2 < n, "n={n}");
            assert!(majority * 2 > n, "n={n}");
        }
    }

    #[test]
    fn picks_are_distinct_nodes_of_the_cluster() {
        let all = names(5);
        let mut rng = StdRng::seed_from_u64(7);
        for mode in [
            Targeting::One,
            Targeting::Minority,
            Targeting::Majority,
            Targeting::All,
        ] {
            let picked = mode.pick(&all, &mut rng).unwrap();
            assert_eq!(picked.len(), mode.count(5).unwrap());
            let mut dedup = picked.clone();
            dedup.dedup();
            assert_eq!(dedup, picked);
            assert!(picked.iter().all(|p| all.contains(p)));
        }
        assert_eq!(Targeting::Primaries.pick(&all, &mut rng), None);
    }
}
