//! The phases of a run, in order. The main phase lasts `--time-limit`; the recovery wait
//! `--recovery-time`, and only when the workload has final ops.

use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Nodes, packages, the target installed, started and healthy.
    Setup,
    /// Clients and the fault schedule, until the time limit or Ctrl-C.
    Main,
    /// Every fault healed.
    Heal,
    /// The system gets time to converge before final reads.
    Recovery,
    /// The workload's final ops, once per node.
    FinalReads,
    /// Logs collected, the target stopped and wiped.
    Teardown,
    /// Checkers, results, report.
    Check,
}

impl Phase {
    pub const ALL: [Phase; 7] = [
        Phase::Setup,
        Phase::Main,
        Phase::Heal,
        Phase::Recovery,
        Phase::FinalReads,
        Phase::Teardown,
        Phase::Check,
    ];

    /// The name the progress line and `distest.log` show.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Setup => "setup",
            Phase::Main => "main",
            Phase::Heal => "heal",
            Phase::Recovery => "recovery",
            Phase::FinalReads => "final reads",
            Phase::Teardown => "teardown",
            Phase::Check => "check",
        }
    }
}

/// How long the timed phases last.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PhaseTimes {
    pub main: Duration,
    pub recovery: Duration,
}

impl PhaseTimes {
    /// From the recorded options (seconds); negative or non-finite values count as zero.
    pub fn from_secs(time_limit_s: f64, recovery_s: f64) -> PhaseTimes {
        let secs = |s: f64| Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(Duration::ZERO);
        PhaseTimes {
            main: secs(time_limit_s),
            recovery: secs(recovery_s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_are_in_run_order_with_distinct_names() {
        let mut sorted = Phase::ALL;
        sorted.sort();
        assert_eq!(sorted, Phase::ALL);
        let names: std::collections::BTreeSet<_> = Phase::ALL.iter().map(|p| p.as_str()).collect();
        assert_eq!(names.len(), Phase::ALL.len());
        assert_eq!(PhaseTimes::from_secs(-1.0, f64::NAN).main, Duration::ZERO);
    }
}
