//! Lost unsynced writes (`--nemesis disk`), the way Jepsen's lazyfs nemesis does it: the
//! target's data directory is served through lazyfs (distest mounts it before starting
//! the target when this nemesis is selected), which keeps everything written but not
//! fsynced in memory. The fault SIGKILLs the target on some nodes, tells lazyfs to drop
//! all of that — a power failure — and starts the target again on what was durable.
//!
//! With `torn`, a prefix of the last unsynced write is persisted first (a write torn by
//! the failure); `prefix_bytes` says how long, exactly; by default the write is cut at the sector
//! boundary nearest its middle, since disks write a 512-byte sector whole or not at all
//! (a write within one sector is kept whole or lost, not torn).
//!
//! Op: `lose-unsynced` `{"targets": mode, "nodes": [...], "torn": bool, "prefix_bytes"?:
//! n}`; completion adds `"lost": {node: {dropped_bytes, dropped_file_count,
//! dropped_files, dropped_metadata_ops, metadata_ops, torn}}` (lazyfs' discard report).
//! Heal op `restart-disk` `{"nodes": [...]}` starts nodes whose restart failed.

use crate::cluster::{shell_quote, COMMAND_TIMEOUT};
use crate::error::NemesisError;
use crate::nemesis::FaultOp;
use crate::node::{DataDir, NodeShell};
use crate::preflight::{said, Lack};
use crate::restart::{DataFault, DataFaultNemesis};
use crate::targeting::Targeting;
use crate::value;
use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{json, Map, Value};

pub const LOSE: &str = "lose-unsynced";
pub const RESTART: &str = "restart-disk";

pub struct LoseUnsynced;

/// The `lazyfs ctl` command that discards on a node.
pub fn discard_command(dir: &DataDir, torn: bool, prefix_bytes: Option<u64>) -> Option<String> {
    let lazyfs = dir.lazyfs.as_ref()?;
    let mut cmd = format!(
        "{} ctl --socket {} discard",
        shell_quote(&lazyfs.program.to_string_lossy()),
        shell_quote(&lazyfs.socket.to_string_lossy())
    );
    if torn {
        cmd.push_str(" --torn");
        if let Some(n) = prefix_bytes {
            cmd.push_str(&format!(" --prefix-bytes {n}"));
        }
    }
    Some(cmd)
}

impl DataFault for LoseUnsynced {
    const NEMESIS: &'static str = "disk";
    const FAULT_F: &'static str = LOSE;
    const RESTART_F: &'static str = RESTART;
    const RESULT_KEY: &'static str = "lost";
    /// A power failure may hit one machine or the whole cluster.
    const DRAWN_TARGETS: &'static [Targeting] = &Targeting::EVERY;

    fn draw(rng: &mut StdRng) -> Map<String, Value> {
        let mut fields = Map::new();
        fields.insert("torn".into(), json!(rng.gen_bool(0.5)));
        fields
    }

    fn fields(op: &FaultOp) -> Result<Map<String, Value>, NemesisError> {
        let torn = match op.value.get("torn") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(NemesisError::bad_value(
                    LOSE,
                    "`torn` must be true or false",
                ))
            }
        };
        let prefix = value::opt_i64(op, "prefix_bytes")?;
        if let Some(p) = prefix {
            if p < 0 || !torn {
                return Err(NemesisError::bad_value(
                    LOSE,
                    "`prefix_bytes` must be a non-negative integer and goes with `torn: true`",
                ));
            }
        }
        let mut fields = Map::new();
        fields.insert("torn".into(), json!(torn));
        if let Some(p) = prefix {
            fields.insert("prefix_bytes".into(), json!(p));
        }
        Ok(fields)
    }

    /// The data directory will be served through lazyfs (the target was built for it),
    /// `fusermount3` is there and `/dev/fuse` opens.
    fn preflight(node: &dyn NodeShell, dir: &DataDir) -> Result<(), Lack> {
        if dir.lazyfs.is_none() {
            return Err(Lack::new(
                "the target's data directory served through lazyfs",
                "the target keeps a plain directory: it does not support the disk nemesis",
            ));
        }
        let out = node.exec("command -v fusermount3", COMMAND_TIMEOUT)?;
        if !out.success() {
            return Err(Lack::new(
                "fusermount3 (Debian's fuse3)",
                "not on PATH; install fuse3",
            ));
        }
        let out = node.exec("test -c /dev/fuse && (exec 3<>/dev/fuse)", COMMAND_TIMEOUT)?;
        if !out.success() {
            return Err(Lack::new(
                "a usable /dev/fuse (the kernel's FUSE)",
                format!("/dev/fuse is missing or cannot be opened: {}", said(&out)),
            ));
        }
        Ok(())
    }

    fn check(node: &str, dir: &DataDir) -> Result<(), NemesisError> {
        match dir.lazyfs {
            Some(_) => Ok(()),
            None => Err(NemesisError::NotOnLazyfs {
                node: node.to_string(),
            }),
        }
    }

    fn apply(
        node: &dyn NodeShell,
        dir: &DataDir,
        fields: &Map<String, Value>,
        _seed: u64,
    ) -> Result<Value, NemesisError> {
        let torn = fields["torn"] == json!(true);
        let prefix = fields.get("prefix_bytes").and_then(Value::as_u64);
        let command = discard_command(dir, torn, prefix).ok_or(NemesisError::NotOnLazyfs {
            node: node.name().to_string(),
        })?;
        let out = node.exec(&command, COMMAND_TIMEOUT)?;
        let failed = |detail: String| NemesisError::Lazyfs {
            node: node.name().to_string(),
            what: "discard the unsynced data".into(),
            detail,
        };
        if !out.success() {
            return Err(failed(out.stderr.trim().to_string()));
        }
        serde_json::from_str(out.stdout.trim())
            .map_err(|e| failed(format!("unreadable answer {:?}: {e}", out.stdout.trim())))
    }
}

/// The disk nemesis.
pub type Disk = DataFaultNemesis<LoseUnsynced>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{self, FakeNode, FakeTarget};
    use crate::nemesis::{Nemesis, NemesisContext};
    use crate::node::LazyfsControl;
    use std::path::PathBuf;
    use std::sync::Arc;

    const REPORT: &str = r#"{"dropped_bytes":12,"dropped_file_count":1,"dropped_files":["wal.log"],"dropped_metadata_ops":0,"metadata_ops":[],"torn":null}"#;

    fn lazyfs_dir(node: &str) -> DataDir {
        DataDir {
            path: PathBuf::from(format!("/d/{node}/raft-kv")),
            lazyfs: Some(LazyfsControl {
                program: PathBuf::from("/d/bin/lazyfs"),
                socket: PathBuf::from(format!("/d/{node}/raft-kv.lazyfs.sock")),
            }),
        }
    }

    fn setup(n: u8, on_lazyfs: bool) -> (Vec<Arc<FakeNode>>, Arc<FakeTarget>, Disk) {
        let nodes = fake::answering(n, " discard", REPORT);
        let target = Arc::new(FakeTarget::default());
        for node in &nodes {
            let mut dir = lazyfs_dir(node.name());
            if !on_lazyfs {
                dir.lazyfs = None;
            }
            target
                .data_dirs
                .lock()
                .unwrap()
                .insert(node.name().to_string(), dir);
        }
        let ctx = NemesisContext {
            nodes: fake::shells(&nodes),
            target: target.clone(),
            seed: 4,
        };
        (nodes, target, Disk::new(&ctx))
    }

    #[test]
    fn lose_unsynced_kills_discards_and_restarts_each_node_and_reports_what_was_lost() {
        let (nodes, target, mut disk) = setup(3, true);
        let op = FaultOp::new(
            LOSE,
            json!({"nodes": ["n1", "n3"], "torn": true, "prefix_bytes": 5}),
        );
        let done = disk.invoke(&op).unwrap();
        assert_eq!(done["nodes"], json!(["n1", "n3"]));
        assert_eq!(done["torn"], json!(true));
        assert_eq!(done["lost"]["n1"]["dropped_bytes"], json!(12));
        assert_eq!(done["lost"]["n3"]["dropped_files"], json!(["wal.log"]));
        for name in ["n1", "n3"] {
            let calls: Vec<String> = target
                .calls()
                .into_iter()
                .filter(|c| c.ends_with(name))
                .collect();
            assert_eq!(calls, vec![format!("kill {name}"), format!("start {name}")]);
        }
        assert_eq!(
            nodes[0].commands(),
            vec!["'/d/bin/lazyfs' ctl --socket '/d/n1/raft-kv.lazyfs.sock' discard --torn --prefix-bytes 5"]
        );
        assert!(nodes[1].commands().is_empty());
        assert!(disk.active().is_empty());
        assert!(disk.heal().is_empty());
    }

    #[test]
    fn a_plain_data_directory_is_refused_before_the_node_is_stopped() {
        let (_, target, mut disk) = setup(3, false);
        let err = disk
            .invoke(&FaultOp::new(LOSE, json!({"nodes": ["n2"]})))
            .unwrap_err();
        assert!(err.to_string().contains("served through lazyfs"), "{err}");
        assert!(target.calls().is_empty());
        assert!(disk.active().is_empty());
    }

    /// The data was dropped, the target did not come back: the op completes (that is
    /// the system's answer to it), heal (or the next fault op) starts the node again.
    /// Three nodes, n2's unsynced writes lost and its start refused: n2 is left down.
    fn n2_left_down() -> (Arc<FakeTarget>, Disk) {
        let (_, target, mut disk) = setup(3, true);
        target.broken_start.lock().unwrap().push("n2".to_string());
        let done = disk
            .invoke(&FaultOp::new(LOSE, json!({"nodes": ["n2"]})))
            .unwrap();
        assert_eq!(done["lost"]["n2"]["restarted"], false, "{done}");
        assert_eq!(disk.active(), vec!["n2 down after lose-unsynced"]);
        (target, disk)
    }

    #[test]
    fn a_node_that_does_not_come_back_is_started_by_heal() {
        let (target, mut disk) = n2_left_down();
        assert_eq!(disk.next_op().f, LOSE);
        target.broken_start.lock().unwrap().clear();
        let healed = disk.heal();
        assert_eq!(healed[0].0, FaultOp::new(RESTART, json!({"nodes": ["n2"]})));
        assert!(healed[0].1.is_ok());
        assert!(disk.active().is_empty());
        assert!(disk.heal().is_empty());
    }

    /// A node that refuses its data for good: its unsynced writes cannot be put back, so
    /// each later start that fails — the next fault op's, the heal's — is the target's
    /// answer to the fault (a finding the run judges), not a failure of distest.
    #[test]
    fn a_node_that_never_restarts_on_what_it_fsynced_is_a_finding() {
        let (target, mut disk) = n2_left_down();
        // The next fault op first tries to bring n2 back, and cannot.
        let err = disk
            .invoke(&FaultOp::new(LOSE, json!({"nodes": ["n1"]})))
            .unwrap_err();
        assert!(err.is_finding(), "{err}");
        let unrecovered = err.unrecovered();
        assert_eq!(unrecovered.len(), 1, "{err}");
        assert_eq!(unrecovered[0].0, "n2");
        assert!(
            unrecovered[0]
                .1
                .starts_with("the target on n2 did not start again after `lose-unsynced`"),
            "{err}"
        );
        // Nor can the heal: still the same finding, however many tries.
        for _ in 0..2 {
            let healed = disk.heal();
            assert_eq!(healed.len(), 1);
            let err = healed[0].1.as_ref().unwrap_err();
            assert!(err.is_finding(), "{err}");
        }
        assert_eq!(disk.active(), vec!["n2 down after lose-unsynced"]);
        // A start that fails for a node no fault left down is not a finding.
        let err = disk
            .invoke(&FaultOp::new(RESTART, json!({"nodes": ["n3"]})))
            .map(|_| ());
        assert!(err.is_ok(), "n3 starts: {err:?}");
        target.broken_start.lock().unwrap().push("n3".to_string());
        let err = disk
            .invoke(&FaultOp::new(RESTART, json!({"nodes": ["n3"]})))
            .unwrap_err();
        assert!(!err.is_finding(), "{err}");
    }

    /// A start that returns while the process then exits on its data (it read the data
    /// only after starting) is a refusal all the same: the node is down, and kept so.
    #[test]
    fn a_target_that_exits_soon_after_its_start_refused_its_data() {
        let (_, target, mut disk) = setup(3, true);
        *target.exits_after_start.lock().unwrap() = Some(vec!["n2".to_string()]);
        let done = disk
            .invoke(&FaultOp::new(LOSE, json!({"nodes": ["n1", "n2"]})))
            .unwrap();
        assert_eq!(done["lost"]["n2"]["restarted"], false, "{done}");
        assert!(
            done["lost"]["n2"]["start_error"]
                .as_str()
                .unwrap()
                .contains("exited within 1 s of starting"),
            "{done}"
        );
        assert!(done["lost"]["n1"].get("restarted").is_none(), "{done}");
        assert_eq!(disk.active(), vec!["n2 down after lose-unsynced"]);
        let healed = disk.heal();
        assert!(healed[0].1.as_ref().unwrap_err().is_finding());
        *target.exits_after_start.lock().unwrap() = Some(Vec::new());
        assert!(disk.heal()[0].1.is_ok());
        assert!(disk.active().is_empty());
    }

    #[test]
    fn bad_values_are_refused_before_any_node_is_touched() {
        let (_, target, mut disk) = setup(3, true);
        for value in [
            json!({"nodes": ["n1"], "torn": "yes"}),
            json!({"nodes": ["n1"], "prefix_bytes": 3}),
            json!({"nodes": ["n1"], "torn": true, "prefix_bytes": -1}),
            json!({"nodes": ["n9"]}),
        ] {
            assert!(
                disk.invoke(&FaultOp::new(LOSE, value.clone())).is_err(),
                "{value}"
            );
        }
        assert!(target.calls().is_empty());
    }

    /// A disk nemesis on `nodes`, with a lazyfs data directory on each node but `without`.
    fn on(nodes: &[Arc<FakeNode>], without: &[&str]) -> (Arc<FakeTarget>, Disk) {
        let target = Arc::new(FakeTarget::default());
        for node in nodes.iter().filter(|n| !without.contains(&n.name())) {
            target
                .data_dirs
                .lock()
                .unwrap()
                .insert(node.name().to_string(), lazyfs_dir(node.name()));
        }
        let ctx = NemesisContext {
            nodes: fake::shells(nodes),
            target: target.clone(),
            seed: 4,
        };
        (target.clone(), Disk::new(&ctx))
    }

    #[test]
    fn preflight_checks_lazyfs_data_dirs_fusermount3_and_dev_fuse_and_changes_nothing() {
        let (nodes, target, disk) = setup(3, true);
        disk.preflight().unwrap();
        assert_eq!(
            nodes[0].commands(),
            vec![
                "command -v fusermount3",
                "test -c /dev/fuse && (exec 3<>/dev/fuse)"
            ]
        );
        assert!(target.calls().is_empty());

        let (_, _, plain) = setup(3, false);
        assert_eq!(
            plain.preflight().unwrap_err().to_string(),
            "disk needs the target's data directory served through lazyfs, which n1, n2, n3 lack \
             (the target keeps a plain directory: it does not support the disk nemesis)"
        );

        let nodes: Vec<Arc<FakeNode>> = (1..=3)
            .map(|i| {
                Arc::new(FakeNode::with(i, move |cmd| {
                    if i == 3 && cmd.contains("/dev/fuse") {
                        fake::failed("sh: 1: cannot open /dev/fuse: Permission denied")
                    } else {
                        Default::default()
                    }
                }))
            })
            .collect();
        let (_, disk) = on(&nodes, &["n2"]);
        let err = disk.preflight().unwrap_err().to_string();
        assert!(
            err.contains("disk needs a data directory of the target that distest manages, which n2 lacks (the fake target has no data directory on n2)"),
            "{err}"
        );
        assert!(
            err.contains("disk needs a usable /dev/fuse (the kernel's FUSE), which n3 lacks (/dev/fuse is missing or cannot be opened: sh: 1: cannot open /dev/fuse: Permission denied)"),
            "{err}"
        );
    }

    #[test]
    fn preflight_refuses_a_target_whose_processes_cannot_be_stopped() {
        let nodes: Vec<Arc<FakeNode>> = (1..=2).map(|i| Arc::new(FakeNode::ok(i))).collect();
        let target = Arc::new(FakeTarget {
            no_process: Some("the noop target runs in-process".into()),
            ..Default::default()
        });
        let ctx = NemesisContext {
            nodes: fake::shells(&nodes),
            target,
            seed: 1,
        };
        assert_eq!(
            Disk::new(&ctx).preflight().unwrap_err().to_string(),
            "disk cannot act on this target: the noop target runs in-process"
        );
        assert!(nodes[0].commands().is_empty());
    }

    #[test]
    fn the_schedule_only_draws_the_fault_op_and_replays_by_seed() {
        let (_, _, mut a) = setup(5, true);
        let (_, _, mut b) = setup(5, true);
        let ops: Vec<FaultOp> = (0..20).map(|_| a.next_op()).collect();
        assert_eq!(ops, (0..20).map(|_| b.next_op()).collect::<Vec<_>>());
        assert!(ops.iter().all(|op| op.f == LOSE));
        assert!(ops.iter().any(|op| op.value["torn"] == json!(true)));
        assert!(ops.iter().any(|op| op.value["torn"] == json!(false)));
    }
}
