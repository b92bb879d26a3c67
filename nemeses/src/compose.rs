//! Composition: several faults driven as one nemesis, and `none`.
//!
//! The composed draw picks which fault moves next with its own seeded stream (`compose`,
//! see [`pick_part`]), so faults overlap, at most [`MAX_OPEN_FAULTS`] at a time, the way
//! Jepsen's combined nemesis packages do. Ops go to the fault that performs them; heal
//! heals every fault, in the order given, and returns all their ops.

use crate::error::NemesisError;
use crate::nemesis::{FaultOp, HealLog, Nemesis};
use distest_generator::rng_for;
use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{json, Value};

/// At most this many composed faults are in effect at once. Jepsen lets faults overlap,
/// which finds more bugs than strict turns, but with six faults unbounded overlap would
/// mostly leave a cluster that cannot make any progress.
pub const MAX_OPEN_FAULTS: usize = 2;

/// Which of the composed faults draws the next op, given which are `open` (started and
/// not yet stopped): any of them while fewer than [`MAX_OPEN_FAULTS`] are open, else one
/// of the open ones, whose next op is then its stop.
pub(crate) fn pick_part(open: &[bool], rng: &mut StdRng) -> usize {
    assert!(!open.is_empty(), "a composed nemesis has at least one part");
    let open_count = open.iter().filter(|o| **o).count();
    if open_count < MAX_OPEN_FAULTS {
        return rng.gen_range(0..open.len());
    }
    let candidates: Vec<usize> = (0..open.len()).filter(|i| open[*i]).collect();
    candidates[rng.gen_range(0..candidates.len())]
}

pub struct Composite {
    name: String,
    parts: Vec<Box<dyn Nemesis>>,
    /// Which parts' schedules are between a start and its stop.
    open: Vec<bool>,
    rng: StdRng,
}

impl Composite {
    /// `parts` must be non-empty and perform disjoint ops.
    pub fn new(name: impl Into<String>, seed: u64, parts: Vec<Box<dyn Nemesis>>) -> Composite {
        assert!(
            !parts.is_empty(),
            "a composite nemesis needs at least one part"
        );
        let mut seen = std::collections::BTreeSet::new();
        for part in &parts {
            for f in part.performs() {
                assert!(seen.insert(f), "two composed nemeses both perform `{f}`");
            }
        }
        Composite {
            name: name.into(),
            open: vec![false; parts.len()],
            parts,
            rng: rng_for(seed, "compose"),
        }
    }
}

impl Nemesis for Composite {
    fn name(&self) -> &str {
        &self.name
    }

    fn performs(&self) -> Vec<&'static str> {
        self.parts.iter().flat_map(|p| p.performs()).collect()
    }

    fn next_op(&mut self) -> FaultOp {
        let i = pick_part(&self.open, &mut self.rng);
        if self.parts[i].alternates() {
            self.open[i] = !self.open[i];
        }
        self.parts[i].next_op()
    }

    fn invoke(&mut self, op: &FaultOp) -> Result<Value, NemesisError> {
        match self
            .parts
            .iter_mut()
            .find(|p| p.performs().contains(&op.f.as_str()))
        {
            Some(part) => part.invoke(op),
            None => Err(NemesisError::unknown_op(self, op)),
        }
    }

    fn heal(&mut self) -> HealLog {
        self.open.iter_mut().for_each(|o| *o = false);
        self.parts.iter_mut().flat_map(|p| p.heal()).collect()
    }

    fn active(&self) -> Vec<String> {
        self.parts.iter().flat_map(|p| p.active()).collect()
    }

    /// Every part's preflight; all that fail are named in one error.
    fn preflight(&self) -> Result<(), NemesisError> {
        let mut errors = Vec::new();
        for part in &self.parts {
            match part.preflight() {
                Ok(()) => {}
                Err(NemesisError::Several(more)) => errors.extend(more),
                Err(e) => errors.push(e),
            }
        }
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.pop().expect("one error")),
            _ => Err(NemesisError::Several(errors)),
        }
    }
}

/// `none`: performs nothing. Its `next_op` is a `none` op that `invoke` accepts and does
/// nothing for; an orchestrator seeing `performs()` empty should not schedule it at all.
pub struct NoFault;

pub const NONE: &str = "none";

impl Nemesis for NoFault {
    fn name(&self) -> &str {
        NONE
    }

    fn performs(&self) -> Vec<&'static str> {
        Vec::new()
    }

    fn next_op(&mut self) -> FaultOp {
        FaultOp::new(NONE, Value::Null)
    }

    fn invoke(&mut self, op: &FaultOp) -> Result<Value, NemesisError> {
        if op.f == NONE {
            Ok(json!("nothing to do"))
        } else {
            Err(NemesisError::unknown_op(self, op))
        }
    }

    fn heal(&mut self) -> HealLog {
        Vec::new()
    }

    fn active(&self) -> Vec<String> {
        Vec::new()
    }

    fn preflight(&self) -> Result<(), NemesisError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_shot_faults_never_hold_an_open_slot() {
        let (nodes, target) = crate::fake::cluster(3);
        let ctx = crate::NemesisContext {
            nodes: crate::fake::shells(&nodes),
            target,
            seed: 5,
        };
        let parts = crate::resolve_names(&["partition,kill,disk".to_string()])
            .unwrap()
            .iter()
            .map(|f| (f.build)(&ctx))
            .collect();
        let mut c = Composite::new("partition,kill,disk", 5, parts);
        let (mut partition_open, mut kill_open, mut both) = (false, false, 0);
        for _ in 0..300 {
            let op = c.next_op();
            match op.f.as_str() {
                "start-partition" | "stop-partition" => partition_open = !partition_open,
                "kill" | "start" => kill_open = !kill_open,
                f => assert_eq!(f, crate::disk::LOSE),
            }
            assert_eq!(c.open, vec![partition_open, kill_open, false]);
            both += usize::from(partition_open && kill_open);
        }
        assert!(both > 0, "the two toggles overlap");
    }

    #[test]
    fn pick_part_only_picks_open_parts_at_the_limit() {
        let mut rng = rng_for(3, "compose");
        let open = [true, false, true, false];
        for _ in 0..100 {
            assert!(open[pick_part(&open, &mut rng)]);
        }
    }
}
