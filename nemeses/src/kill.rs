//! Kill and restart: SIGKILL the target's process on some nodes (one, a minority, a
//! majority, the primaries, all) through `TargetControl::kill`; `start` brings back
//! exactly the nodes this nemesis killed. Ops: `kill` / `start`.

use crate::node::{NodeError, TargetControl};
use crate::process::{ProcessAction, ProcessNemesis};

pub struct KillAction;

impl ProcessAction for KillAction {
    const NEMESIS: &'static str = "kill";
    const START_F: &'static str = "kill";
    const STOP_F: &'static str = "start";
    const STATE: &'static str = "killed";

    fn apply(target: &dyn TargetControl, node: &str) -> Result<(), NodeError> {
        target.kill(node)
    }

    fn undo(target: &dyn TargetControl, node: &str) -> Result<(), NodeError> {
        target.start(node)
    }
}

/// The kill nemesis.
pub type Kill = ProcessNemesis<KillAction>;
