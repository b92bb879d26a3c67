//! Pause and resume: SIGSTOP the target's process on some nodes (one, a minority, a
//! majority, the primaries, all) through `TargetControl::pause`, so it holds its state and
//! connections but answers nothing, the way a long GC pause or a stalled VM does; `resume`
//! sends SIGCONT to exactly the nodes this nemesis paused. Ops: `pause` / `resume`.

use crate::node::{NodeError, TargetControl};
use crate::process::{ProcessAction, ProcessNemesis};

pub struct PauseAction;

impl ProcessAction for PauseAction {
    const NEMESIS: &'static str = "pause";
    const START_F: &'static str = "pause";
    const STOP_F: &'static str = "resume";
    const STATE: &'static str = "paused";

    fn apply(target: &dyn TargetControl, node: &str) -> Result<(), NodeError> {
        target.pause(node)
    }

    fn undo(target: &dyn TargetControl, node: &str) -> Result<(), NodeError> {
        target.resume(node)
    }
}

/// The pause nemesis.
pub type Pause = ProcessNemesis<PauseAction>;
