//! `NemesisError`: every way a fault can fail to be built, drawn or performed.
//!
//! Each message is one sentence a user can act on. Failures on several nodes are folded
//! into one [`NemesisError::OnNodes`] that keeps the per-node causes, because a fault that
//! partly took effect must still say where it did not.

use crate::node::NodeError;
use thiserror::Error;

/// One node's share of a multi-node failure.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeFailure {
    pub node: String,
    pub error: NemesisError,
}

#[derive(Debug, Error, Clone, PartialEq)]
pub enum NemesisError {
    #[error("unknown nemesis `{name}`; valid names are: {valid}")]
    UnknownNemesis { name: String, valid: String },

    #[error("nemesis `{nemesis}` does not perform fault op `{f}`; it performs: {performs}")]
    UnknownOp {
        nemesis: String,
        f: String,
        performs: String,
    },

    #[error("fault op `{f}` has an unusable value ({reason}); see the fault's documentation for its value shape")]
    BadValue { f: String, reason: String },

    #[error("fault op `{f}` names node `{node}`, which is not in this run's node set ({known})")]
    UnknownNode {
        f: String,
        node: String,
        known: String,
    },

    #[error("`{what}` needs at least {needed} nodes but the run has {have}; run with more nodes or choose another fault")]
    NotEnoughNodes {
        what: String,
        needed: usize,
        have: usize,
    },

    #[error("`{f}` targets the primaries but the target reports none right now (no leader elected?); nothing was done")]
    NoPrimaries { f: String },

    #[error("cannot move the clock of the target on {node}: {why}")]
    ClockUnsupported { node: String, why: String },

    #[error("refusing to set the system clock of local node {node}: it is this machine's own clock; run the target under libfaketime (ClockSupport::FaketimeFile) instead")]
    LocalSystemClock { node: String },

    #[error("{fault} needs {need}, which {lacking} ({detail})")]
    Lacks {
        fault: String,
        need: String,
        /// Who lacks it, verb included: "n2 lacks", "n1, n3 lack", "this machine lacks".
        lacking: String,
        detail: String,
    },

    #[error("{fault} cannot act on this target: {why}")]
    TargetUnsupported { fault: String, why: String },

    #[error("could not start the latency delayer on {node}: {why}")]
    DelayerFailed { node: String, why: String },

    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Several(Vec<NemesisError>),

    #[error("the target on {node} did not start: {why}")]
    NotStarted { node: String, why: String },
    /// A node a data fault left down refused to start again on data that cannot be put
    /// back (`lose-unsynced`: what was not fsynced is gone, as after a power failure).
    /// This is the system's answer to the fault, a finding about the target rather than a
    /// failure of distest: the run judges it (see [`NemesisError::is_finding`]).
    #[error("the target on {node} did not start again after `{fault}` (its own words: {why}); a node must restart on what it fsynced, so read its log in the run directory")]
    NotRecovered {
        node: String,
        fault: String,
        why: String,
    },
    #[error("cannot reach the data of the target on {node}: {why}")]
    NoDataDir { node: String, why: String },

    #[error("`lose-unsynced` needs the target's data directory on {node} served through lazyfs, and it is a plain directory; run with `--nemesis disk` so that distest mounts lazyfs before starting the target")]
    NotOnLazyfs { node: String },

    #[error("lazyfs on {node} failed to {what}: {detail}")]
    Lazyfs {
        node: String,
        what: String,
        detail: String,
    },

    #[error("no non-empty file in the data directory {dir} on {node} matches `{pattern}`; name an existing file (relative to the data directory) or wait until the target has written one")]
    NoFileMatches {
        node: String,
        dir: String,
        pattern: String,
    },

    #[error("`{f}` panicked on {node}; this is a distest bug, please report it with the run's distest.log")]
    Panicked { f: String, node: String },

    #[error("the nemesis schedule {origin} is not usable: {reason}")]
    BadSchedule { origin: String, reason: String },

    #[error("`{f}` saw no leader other than {not} within {waited_ms} ms (the cluster may have no majority); the schedule goes on")]
    NoNewLeader {
        f: String,
        not: String,
        waited_ms: u64,
    },

    #[error(transparent)]
    Node(#[from] NodeError),

    #[error("`{f}` failed on {} of {attempted} node(s): {}", failures.len(), summarize(failures))]
    OnNodes {
        f: String,
        attempted: usize,
        failures: Vec<NodeFailure>,
    },
}

fn summarize(failures: &[NodeFailure]) -> String {
    failures
        .iter()
        .map(|fail| format!("{}: {}", fail.node, fail.error))
        .collect::<Vec<_>>()
        .join("; ")
}

impl NemesisError {
    /// Whether this error is the system's answer to a fault ([`NemesisError::NotRecovered`]
    /// on every node it names) rather than a failure to perform or heal the fault.
    pub fn is_finding(&self) -> bool {
        match self {
            NemesisError::NotRecovered { .. } => true,
            NemesisError::OnNodes { failures, .. } => {
                !failures.is_empty() && failures.iter().all(|f| f.error.is_finding())
            }
            NemesisError::Several(errors) => {
                !errors.is_empty() && errors.iter().all(NemesisError::is_finding)
            }
            _ => false,
        }
    }

    /// The nodes that did not start again, each with its sentence, in this error.
    pub fn unrecovered(&self) -> Vec<(&str, String)> {
        match self {
            NemesisError::NotRecovered { node, .. } => vec![(node.as_str(), self.to_string())],
            NemesisError::OnNodes { failures, .. } => failures
                .iter()
                .flat_map(|f| f.error.unrecovered())
                .collect(),
            NemesisError::Several(errors) => {
                errors.iter().flat_map(NemesisError::unrecovered).collect()
            }
            _ => Vec::new(),
        }
    }

    /// Folds per-node outcomes into `Ok(())` or one [`NemesisError::OnNodes`].
    pub(crate) fn collect<T>(
        f: &str,
        outcomes: impl IntoIterator<Item = (String, Result<T, NemesisError>)>,
    ) -> Result<Vec<(String, T)>, NemesisError> {
        let mut done = Vec::new();
        let mut failures = Vec::new();
        let mut attempted = 0;
        for (node, outcome) in outcomes {
            attempted += 1;
            match outcome {
                Ok(value) => done.push((node, value)),
                Err(error) => {
                    // Not a warning on the terminal: the failure is the op's `error` in the
                    // history and distest.log, and a fault never applied fails the run once,
                    // in one sentence, at its end.
                    tracing::debug!(f, node = %node, %error, "fault step failed");
                    failures.push(NodeFailure { node, error });
                }
            }
        }
        if failures.is_empty() {
            Ok(done)
        } else {
            Err(NemesisError::OnNodes {
                f: f.to_string(),
                attempted,
                failures,
            })
        }
    }

    /// `op` is not one of the ops `nemesis` performs.
    pub(crate) fn unknown_op(
        nemesis: &dyn crate::nemesis::Nemesis,
        op: &crate::nemesis::FaultOp,
    ) -> NemesisError {
        NemesisError::UnknownOp {
            nemesis: nemesis.name().to_string(),
            f: op.f.clone(),
            performs: nemesis.performs().join(", "),
        }
    }

    pub(crate) fn bad_value(f: &str, reason: impl Into<String>) -> NemesisError {
        NemesisError::BadValue {
            f: f.to_string(),
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collect_names_every_failed_node_in_one_sentence() {
        let outcomes = vec![
            ("n1".to_string(), Ok(1)),
            (
                "n2".to_string(),
                Err(NemesisError::NoPrimaries { f: "kill".into() }),
            ),
        ];
        let err = NemesisError::collect("kill", outcomes).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("`kill` failed on 1 of 2 node(s): n2: "),
            "{text}"
        );
    }

    #[test]
    fn collect_returns_all_values_when_every_node_succeeds() {
        let outcomes = vec![("n1".to_string(), Ok::<_, NemesisError>(1))];
        assert_eq!(
            NemesisError::collect("kill", outcomes).unwrap(),
            vec![("n1".to_string(), 1)]
        );
    }
}
