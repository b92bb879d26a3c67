//! What a run killed before its heal leaves on a node, and removing it.
//!
//! A control node that dies mid-fault leaves the fault in force: our iptables chains
//! (partition, loss, latency) and a latency delayer holding packets. Local namespace nodes
//! lose both with their namespace (`distest env down` deletes it and kills what runs in
//! it); SSH nodes keep them, and a new run on them would start partitioned or slowed.
//! [`clear_leftovers`] finds ours by name (`DISTEST-*` chains) and by the delayer's pid
//! file in the node's helper state directory; nothing else is touched.

use crate::cluster::{Cluster, COMMAND_TIMEOUT};
use crate::delayer;
use crate::error::NemesisError;
use crate::iptables;
use crate::node::NodeShell;
use std::sync::Arc;
use std::time::Duration;

/// Stopping a delayer waits for it to exit, and again after SIGKILL.
const DELAYER_STOP_TIMEOUT: Duration = Duration::from_secs(25);

/// Removes every chain of ours, then stops a leftover delayer, on each node in parallel;
/// returns each node's outcome.
pub fn clear_leftovers(nodes: &[Arc<dyn NodeShell>]) -> Vec<(String, Result<(), NemesisError>)> {
    let cluster = Cluster::new(nodes.to_vec());
    let chains = iptables::clear_command();
    cluster.each("clear-leftovers", &cluster.names(), |node| {
        // Rules first: once no packet is queued to it, the delayer can go.
        node.exec_ok(&chains, COMMAND_TIMEOUT)?;
        if let Some(helper) = node.helper() {
            let stop = delayer::leftover_stop_command(&helper.program, &helper.state_dir);
            node.exec_ok(&stop, DELAYER_STOP_TIMEOUT)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeNode;

    #[test]
    fn chains_go_first_then_a_delayer_named_by_its_pid_file() {
        let node = Arc::new(FakeNode::ok(1));
        let bare = Arc::new(FakeNode::ok(2).without_helper());
        let outcomes = clear_leftovers(&[
            node.clone() as Arc<dyn NodeShell>,
            bare.clone() as Arc<dyn NodeShell>,
        ]);
        assert!(outcomes.iter().all(|(_, o)| o.is_ok()), "{outcomes:?}");
        assert_eq!(
            node.commands(),
            vec![
                iptables::clear_command(),
                "if [ -e '/run/dt/n1/latency-delayer.pid' ]; then '/opt/distest' latency-delayer stop --state-dir '/run/dt/n1'; fi".to_string(),
            ]
        );
        assert_eq!(bare.commands(), vec![iptables::clear_command()]);
    }
}
