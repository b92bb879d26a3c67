//! The node set a nemesis acts on: lookup by name, and running one step on several nodes
//! at once.
//!
//! Steps run in parallel (one scoped thread per node) because over SSH each command costs
//! a round trip, and a partition that reaches n1 a second before n5 is a different fault
//! from the one recorded. The number of threads is bounded by the node count.

use crate::error::NemesisError;
use crate::node::NodeShell;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Deadline for one command a nemesis runs on a node (iptables, tc, date, printf).
pub(crate) const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// Each node's outcome of one step, in the order the nodes were named.
pub(crate) type PerNode<T> = Vec<(String, Result<T, NemesisError>)>;

#[derive(Clone)]
pub(crate) struct Cluster {
    nodes: Vec<Arc<dyn NodeShell>>,
}

impl Cluster {
    pub(crate) fn new(nodes: Vec<Arc<dyn NodeShell>>) -> Cluster {
        Cluster { nodes }
    }

    /// Node names in the order the run gave them; the RNG draws from this order, so the
    /// same names give the same schedule.
    pub(crate) fn names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name().to_string()).collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    pub(crate) fn all(&self) -> &[Arc<dyn NodeShell>] {
        &self.nodes
    }

    /// The node called `name`, or an error naming the fault op that asked for it.
    pub(crate) fn node(&self, f: &str, name: &str) -> Result<&Arc<dyn NodeShell>, NemesisError> {
        self.nodes
            .iter()
            .find(|n| n.name() == name)
            .ok_or_else(|| NemesisError::UnknownNode {
                f: f.to_string(),
                node: name.to_string(),
                known: self.names().join(", "),
            })
    }

    /// Fails unless every name is a node of this cluster.
    pub(crate) fn check_names(&self, f: &str, names: &[String]) -> Result<(), NemesisError> {
        names.iter().try_for_each(|n| self.node(f, n).map(|_| ()))
    }

    /// Runs `step` on each named node in parallel and returns each node's outcome, in the
    /// order of `names`. A name that is not a node yields that node's error.
    pub(crate) fn each<T, S>(&self, f: &str, names: &[String], step: S) -> PerNode<T>
    where
        T: Send,
        S: Fn(&dyn NodeShell) -> Result<T, NemesisError> + Sync,
    {
        parallel(f, names, |name| {
            self.node(f, name).and_then(|node| step(node.as_ref()))
        })
    }
}

/// Runs `step` for each name in parallel (one scoped thread each, also for a single name,
/// so a panicking step is always caught) and returns the outcomes in the order of `names`.
pub(crate) fn parallel<T, S>(f: &str, names: &[String], step: S) -> PerNode<T>
where
    T: Send,
    S: Fn(&str) -> Result<T, NemesisError> + Sync,
{
    std::thread::scope(|scope| {
        let handles: Vec<_> = names
            .iter()
            .map(|name| scope.spawn(|| step(name)))
            .collect();
        handles
            .into_iter()
            .zip(names)
            .map(|(handle, name)| {
                // A panicking step must not take the heal of the other nodes with it.
                let outcome = handle.join().unwrap_or_else(|_| {
                    Err(NemesisError::Panicked {
                        f: f.to_string(),
                        node: name.clone(),
                    })
                });
                (name.clone(), outcome)
            })
            .collect()
    })
}

/// Locks `m` for a per-node step. Steps never panic while holding it, and if one did, the
/// guarded map is still consistent (each update is one insert), so poisoning is ignored.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Quotes `s` for `sh -c` so paths and specs with spaces or quotes survive intact.
pub(crate) fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_step_becomes_that_nodes_error() {
        for names in [
            vec!["n1".to_string()],
            vec!["n1".to_string(), "n2".to_string()],
        ] {
            let outcomes = parallel("kill", &names, |name| {
                if name == "n1" {
                    panic!("step bug");
                }
                Ok(())
            });
            assert!(
                matches!(&outcomes[0].1, Err(NemesisError::Panicked { node, .. }) if node == "n1")
            );
            assert!(outcomes[1..].iter().all(|(_, o)| o.is_ok()));
        }
    }

    #[test]
    fn shell_quote_keeps_single_quotes_literal() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
