//! What every fault with one start op and one stop op shares (partition, loss, latency,
//! kill, pause): the start/stop alternation of its draws and the [`Nemesis`] plumbing
//! around `start` and `stop` (dispatch, heal, progress line), written once in [`Toggle`].
//! Each fault says only how to draw, start, stop and describe itself ([`StartStop`]).

use crate::error::NemesisError;
use crate::nemesis::{FaultOp, HealLog, Nemesis, NemesisContext};
use serde_json::Value;

/// Start/stop alternation of one fault, beginning with a start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct FlipFlop {
    started: bool,
}

impl FlipFlop {
    /// True when the next op is a start; flips the state.
    pub(crate) fn next_is_start(&mut self) -> bool {
        self.started = !self.started;
        self.started
    }

    /// After a heal every fault is stopped, so the next op is a start again.
    pub(crate) fn reset(&mut self) {
        self.started = false;
    }
}

/// A fault that one op puts in place and one op removes.
pub trait StartStop: Send + Sized + 'static {
    /// Nemesis name (`partition`), also the name of its random stream.
    const NAME: &'static str;
    /// Op that puts the fault in place (`start-partition`, `kill`).
    const START: &'static str;
    /// Op that removes it (`stop-partition`, `start`).
    const STOP: &'static str;

    fn new(ctx: &NemesisContext) -> Self;
    /// The value of the next start op, drawn from the fault's own stream.
    fn draw_start(&mut self) -> Value;
    /// Puts the fault described by `op` in place.
    fn start(&mut self, op: &FaultOp) -> Result<Value, NemesisError>;
    /// Removes what `op` names of the fault, or all of it; idempotent.
    fn stop(&mut self, op: &FaultOp) -> Result<Value, NemesisError>;
    /// The value of the stop op heal performs (default: none, meaning everything).
    fn heal_value(&self) -> Value {
        Value::Null
    }
    /// True while something of ours may be in place: what heal must remove.
    fn in_place(&self) -> bool;
    /// The faults in effect, for the progress line (`partition halves`, `n2 killed`);
    /// empty when none is known to be (a failed stop leaves it pending). A start that
    /// failed is undone where it took effect and never described.
    fn describe(&self) -> Vec<String>;
    /// Whether the fault can be applied on these nodes at all ([`Nemesis::preflight`]).
    fn preflight(&self) -> Result<(), NemesisError>;
}

/// The [`Nemesis`] of a [`StartStop`] fault.
pub struct Toggle<F> {
    fault: F,
    flip: FlipFlop,
}

impl<F: StartStop> Toggle<F> {
    pub fn new(ctx: &NemesisContext) -> Toggle<F> {
        Toggle {
            fault: F::new(ctx),
            flip: FlipFlop::default(),
        }
    }
}

impl<F: StartStop> Nemesis for Toggle<F> {
    fn name(&self) -> &str {
        F::NAME
    }

    fn performs(&self) -> Vec<&'static str> {
        vec![F::START, F::STOP]
    }

    fn next_op(&mut self) -> FaultOp {
        if self.flip.next_is_start() {
            FaultOp::new(F::START, self.fault.draw_start())
        } else {
            FaultOp::new(F::STOP, Value::Null)
        }
    }

    fn invoke(&mut self, op: &FaultOp) -> Result<Value, NemesisError> {
        if op.f == F::START {
            self.fault.start(op)
        } else if op.f == F::STOP {
            self.fault.stop(op)
        } else {
            Err(NemesisError::unknown_op(self, op))
        }
    }

    fn heal(&mut self) -> HealLog {
        self.flip.reset();
        if !self.fault.in_place() {
            return Vec::new();
        }
        let op = FaultOp::new(F::STOP, self.fault.heal_value());
        let outcome = self.fault.stop(&op);
        vec![(op, outcome)]
    }

    fn active(&self) -> Vec<String> {
        let described = self.fault.describe();
        if described.is_empty() && self.fault.in_place() {
            return vec![format!("{} (heal pending)", F::NAME)];
        }
        described
    }

    fn preflight(&self) -> Result<(), NemesisError> {
        self.fault.preflight()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flip_flop_starts_with_a_start_and_alternates() {
        let mut ff = FlipFlop::default();
        assert!(ff.next_is_start());
        assert!(!ff.next_is_start());
        assert!(ff.next_is_start());
        ff.reset();
        assert!(ff.next_is_start());
    }
}
