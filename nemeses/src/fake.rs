//! Test doubles: a `NodeShell` that records the commands it would run and answers from a
//! script, and a `TargetControl` that records the calls it gets.

use crate::node::{ClockSupport, DataDir, ExecOutput, Helper, NodeError, NodeShell, TargetControl};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Responder = dyn Fn(&str) -> ExecOutput + Send + Sync;

pub(crate) struct FakeNode {
    name: String,
    address: IpAddr,
    local: bool,
    helper: Option<Helper>,
    pub(crate) commands: Mutex<Vec<String>>,
    respond: Box<Responder>,
}

impl FakeNode {
    /// A node at 10.0.0.<i> where every command succeeds.
    pub(crate) fn ok(i: u8) -> FakeNode {
        FakeNode::with(i, |_| ExecOutput::default())
    }

    pub(crate) fn with(
        i: u8,
        respond: impl Fn(&str) -> ExecOutput + Send + Sync + 'static,
    ) -> FakeNode {
        FakeNode {
            name: format!("n{i}"),
            address: IpAddr::from([10, 0, 0, i]),
            local: false,
            helper: Some(Helper {
                program: "/opt/distest".to_string(),
                state_dir: format!("/run/dt/n{i}").into(),
            }),
            commands: Mutex::new(Vec::new()),
            respond: Box::new(respond),
        }
    }

    pub(crate) fn local(mut self) -> FakeNode {
        self.local = true;
        self
    }

    /// A node that cannot run distest's helper processes.
    pub(crate) fn without_helper(mut self) -> FakeNode {
        self.helper = None;
        self
    }

    pub(crate) fn commands(&self) -> Vec<String> {
        self.commands.lock().unwrap().clone()
    }
}

impl NodeShell for FakeNode {
    fn name(&self) -> &str {
        &self.name
    }
    fn address(&self) -> IpAddr {
        self.address
    }
    fn exec(&self, command: &str, _timeout: Duration) -> Result<ExecOutput, NodeError> {
        self.commands.lock().unwrap().push(command.to_string());
        Ok((self.respond)(command))
    }
    fn is_local(&self) -> bool {
        self.local
    }
    fn helper(&self) -> Option<Helper> {
        self.helper.clone()
    }
}

pub(crate) fn failed(stderr: &str) -> ExecOutput {
    ExecOutput {
        status: 2,
        stdout: String::new(),
        stderr: stderr.to_string(),
    }
}

#[derive(Default)]
pub(crate) struct FakeTarget {
    pub(crate) calls: Mutex<Vec<String>>,
    pub(crate) primaries: Mutex<Vec<String>>,
    pub(crate) clock: Mutex<BTreeMap<String, ClockSupport>>,
    /// Nodes on which every call fails.
    pub(crate) broken: Mutex<Vec<String>>,
    /// Nodes on which `start` fails.
    pub(crate) broken_start: Mutex<Vec<String>>,
    /// `None`: the target cannot say whether it runs; else the nodes whose process
    /// exits right after a start that returned (all others run).
    pub(crate) exits_after_start: Mutex<Option<Vec<String>>>,
    /// Data directories by node; nodes without one have none.
    pub(crate) data_dirs: Mutex<BTreeMap<String, DataDir>>,
    /// A target without any primary (a CRDT store): `has_primaries` says false.
    pub(crate) leaderless: bool,
    /// Current members, for targets that change membership (`None`: unsupported).
    pub(crate) members: Mutex<Option<Vec<String>>>,
    /// Why kill and pause cannot reach it, if they cannot (an in-process target).
    pub(crate) no_process: Option<String>,
}

impl FakeTarget {
    pub(crate) fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    fn call(&self, what: &str, node: &str) -> Result<(), NodeError> {
        self.calls.lock().unwrap().push(format!("{what} {node}"));
        if self.broken.lock().unwrap().iter().any(|b| b == node) {
            return Err(NodeError::Unreachable {
                node: node.to_string(),
                message: "fake node is broken".to_string(),
            });
        }
        Ok(())
    }
}

impl TargetControl for FakeTarget {
    fn kill(&self, node: &str) -> Result<(), NodeError> {
        self.call("kill", node)
    }
    fn start(&self, node: &str) -> Result<(), NodeError> {
        self.call("start", node)?;
        if self.broken_start.lock().unwrap().iter().any(|b| b == node) {
            return Err(NodeError::Unreachable {
                node: node.to_string(),
                message: "fake node does not start".to_string(),
            });
        }
        Ok(())
    }
    fn pause(&self, node: &str) -> Result<(), NodeError> {
        self.call("pause", node)
    }
    fn running(&self, node: &str) -> Result<bool, NodeError> {
        match &*self.exits_after_start.lock().unwrap() {
            None => Err(NodeError::Unsupported("the fake cannot tell".to_string())),
            Some(exits) => Ok(!exits.iter().any(|n| n == node)),
        }
    }
    fn resume(&self, node: &str) -> Result<(), NodeError> {
        self.call("resume", node)
    }
    fn primaries(&self) -> Vec<String> {
        self.primaries.lock().unwrap().clone()
    }
    fn has_primaries(&self) -> bool {
        !self.leaderless
    }
    fn has_membership(&self) -> bool {
        self.members.lock().unwrap().is_some()
    }
    fn remove_member(&self, node: &str) -> Result<(), NodeError> {
        self.call("remove-member", node)?;
        match self.members.lock().unwrap().as_mut() {
            Some(members) => {
                members.retain(|m| m != node);
                Ok(())
            }
            None => Err(NodeError::Unsupported("no membership".to_string())),
        }
    }
    fn add_member(&self, node: &str) -> Result<(), NodeError> {
        self.call("add-member", node)?;
        match self.members.lock().unwrap().as_mut() {
            Some(members) => {
                if !members.iter().any(|m| m == node) {
                    members.push(node.to_string());
                }
                Ok(())
            }
            None => Err(NodeError::Unsupported("no membership".to_string())),
        }
    }
    fn data_dir(&self, node: &str) -> Result<DataDir, String> {
        self.data_dirs
            .lock()
            .unwrap()
            .get(node)
            .cloned()
            .ok_or_else(|| format!("the fake target has no data directory on {node}"))
    }
    fn process_faults(&self) -> Result<(), String> {
        self.no_process.clone().map_or(Ok(()), Err)
    }
    fn clock_support(&self, node: &str) -> ClockSupport {
        self.clock
            .lock()
            .unwrap()
            .get(node)
            .cloned()
            .unwrap_or(ClockSupport::Unsupported(
                "the fake target has no clock".to_string(),
            ))
    }
}

/// `n` fake nodes n1..n<n> where every command succeeds, plus a fresh fake target.
pub(crate) fn cluster(n: u8) -> (Vec<Arc<FakeNode>>, Arc<FakeTarget>) {
    (
        (1..=n).map(|i| Arc::new(FakeNode::ok(i))).collect(),
        Arc::new(FakeTarget::default()),
    )
}

/// `n` fake nodes that print `stdout` for commands containing `needle` and succeed
/// silently otherwise.
pub(crate) fn answering(n: u8, needle: &'static str, stdout: &'static str) -> Vec<Arc<FakeNode>> {
    (1..=n)
        .map(|i| {
            Arc::new(FakeNode::with(i, move |cmd| ExecOutput {
                status: 0,
                stdout: if cmd.contains(needle) {
                    stdout.to_string()
                } else {
                    String::new()
                },
                stderr: String::new(),
            }))
        })
        .collect()
}

/// The same nodes as trait objects, for a `NemesisContext`.
pub(crate) fn shells(nodes: &[Arc<FakeNode>]) -> Vec<Arc<dyn NodeShell>> {
    nodes
        .iter()
        .map(|n| n.clone() as Arc<dyn NodeShell>)
        .collect()
}
