//! Checks that a fault can be applied on these nodes, before the run starts.
//!
//! Each nemesis' [`Nemesis::preflight`](crate::Nemesis::preflight) runs its checks on
//! every node in parallel; what nodes lack is folded into one sentence per missing thing
//! ("latency needs NFQUEUE (nfnetlink_queue), which this machine lacks (...)"), so a run
//! on five nodes that all miss the same module gets one line, not five.

use crate::cluster::Cluster;
use crate::error::NemesisError;
use crate::node::{NodeError, NodeShell};
use std::collections::BTreeMap;

/// What one node lacks for a fault: what is needed, and what the node said.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Lack {
    pub(crate) need: String,
    pub(crate) detail: String,
}

impl Lack {
    pub(crate) fn new(need: impl Into<String>, detail: impl Into<String>) -> Lack {
        Lack {
            need: need.into(),
            detail: detail.into(),
        }
    }
}

impl From<NodeError> for Lack {
    fn from(e: NodeError) -> Lack {
        Lack::new("a node it can run commands on", e.to_string())
    }
}

/// The trimmed stderr (else stdout) of a failed check, for a [`Lack`]'s detail.
pub(crate) fn said(out: &crate::node::ExecOutput) -> String {
    let text = if out.stderr.trim().is_empty() {
        out.stdout.trim()
    } else {
        out.stderr.trim()
    };
    let text = if text.is_empty() {
        format!("exit status {}", out.status)
    } else {
        text.lines().take(3).collect::<Vec<_>>().join(" / ")
    };
    text
}

/// Fails with [`NemesisError::NotEnoughNodes`] when `fault` needs more nodes than there are.
pub(crate) fn require_nodes(
    fault: &str,
    cluster: &Cluster,
    needed: usize,
) -> Result<(), NemesisError> {
    if cluster.len() < needed {
        return Err(NemesisError::NotEnoughNodes {
            what: fault.to_string(),
            needed,
            have: cluster.len(),
        });
    }
    Ok(())
}

/// Runs `check` on every node of `cluster` in parallel; Ok when none lacks anything.
pub(crate) fn check_nodes<S>(fault: &str, cluster: &Cluster, check: S) -> Result<(), NemesisError>
where
    S: Fn(&dyn NodeShell) -> Result<(), Lack> + Sync,
{
    let outcomes = cluster.each(fault, &cluster.names(), |node| Ok(check(node)));
    let mut lacks: Vec<(String, Lack)> = Vec::new();
    for (node, outcome) in outcomes {
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(lack)) => lacks.push((node, lack)),
            Err(e) => lacks.push((
                node,
                Lack::new("a node it can run commands on", e.to_string()),
            )),
        }
    }
    let all_local = cluster.all().iter().all(|n| n.is_local());
    fold(fault, cluster.len(), all_local, lacks)
}

/// One error per distinct lack, naming the nodes that have it; "this machine" when every
/// node lacks it and all are local namespaces (they share this machine's kernel and files).
fn fold(
    fault: &str,
    node_count: usize,
    all_local: bool,
    lacks: Vec<(String, Lack)>,
) -> Result<(), NemesisError> {
    let mut groups: BTreeMap<Lack, Vec<String>> = BTreeMap::new();
    for (node, lack) in lacks {
        groups.entry(lack).or_default().push(node);
    }
    let mut errors: Vec<NemesisError> = groups
        .into_iter()
        .map(|(lack, nodes)| {
            let lacking = if all_local && nodes.len() == node_count {
                "this machine lacks".to_string()
            } else if nodes.len() == 1 {
                format!("{} lacks", nodes[0])
            } else {
                format!("{} lack", nodes.join(", "))
            };
            NemesisError::Lacks {
                fault: fault.to_string(),
                need: lack.need,
                lacking,
                detail: lack.detail,
            }
        })
        .collect();
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.pop().expect("one error")),
        _ => Err(NemesisError::Several(errors)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lack(node: &str, need: &str, detail: &str) -> (String, Lack) {
        (node.to_string(), Lack::new(need, detail))
    }

    #[test]
    fn the_same_lack_on_every_local_node_is_one_sentence_about_this_machine() {
        let lacks = ["n1", "n2", "n3"]
            .iter()
            .map(|n| lack(n, "NFQUEUE (nfnetlink_queue)", "bind failed"))
            .collect();
        let err = fold("latency", 3, true, lacks).unwrap_err();
        assert_eq!(
            err.to_string(),
            "latency needs NFQUEUE (nfnetlink_queue), which this machine lacks (bind failed)"
        );
    }

    #[test]
    fn different_lacks_are_listed_with_their_nodes() {
        let lacks = vec![
            lack("n1", "iptables", "not found"),
            lack("n3", "iptables", "not found"),
            lack("n2", "NFQUEUE", "no module"),
        ];
        let text = fold("latency", 3, false, lacks).unwrap_err().to_string();
        assert_eq!(
            text,
            "latency needs NFQUEUE, which n2 lacks (no module); latency needs iptables, which n1, n3 lack (not found)"
        );
        assert!(fold("latency", 3, false, Vec::new()).is_ok());
    }
}
