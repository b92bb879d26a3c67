//! distest-nemeses: faults on nodes, and how to heal every one of them.
//!
//! This crate may not depend on the `distest` binary crate, yet faults act on nodes. So it
//! declares the two small traits it acts through — [`NodeShell`] (run a command on a node)
//! and [`TargetControl`] (what the system under test offers: kill, start, pause, primaries,
//! clock) — and `src/` implements them for local namespaces and SSH. Tests use fakes that
//! record the commands they would run.
//!
//! [`build`] turns nemesis names (`partition`, `kill`, `pause`, `clock`, `loss`,
//! `latency`, `disk`, `corrupt-file`, `membership`, `all`, `none`) into one
//! [`Nemesis`]; [`schedule`] says which fault op comes next and when (drawn, or from a
//! schedule file, [`script`], whose node selectors [`select`] resolves). A new fault is one file implementing
//! [`Nemesis`] (a fault with a start and a stop op implements [`start_stop::StartStop`])
//! plus one entry in [`FAULTS`], which also names the OS packages it needs on the nodes
//! and whether `all` includes it.
//!
//! Fault ops and their values (`targets` is `one|minority|majority|primaries|all`;
//! `nodes` lists node names and is absent for `primaries`, which are asked for when the
//! op runs):
//!
//! | nemesis | start op | value | stop op |
//! |---|---|---|---|
//! | partition | `start-partition` | `{shape, grudge: {node: [peers it drops]}}` | `stop-partition` |
//! | loss | `start-loss` | `{targets, nodes, probability}` | `stop-loss` |
//! | latency | `start-latency` | `{targets, nodes, delay_ms, jitter_ms}` | `stop-latency` |
//! | clock | `bump-clock` / `strobe-clock` / `skew-clock` | `{targets, nodes, delta_ms}` / `+ period_ms, duration_ms` / `{offsets_ms: {node: ms}}` | `reset-clock` |
//! | kill | `kill` | `{targets, nodes}` | `start` |
//! | pause | `pause` | `{targets, nodes}` | `resume` |
//! | disk | `lose-unsynced` | `{targets, nodes, torn, prefix_bytes?}` + `lost: {node: report}` | (none; `restart-disk` at heal) |
//! | corrupt-file | `corrupt-file` | `{targets, nodes, file, mode, flips?, drop_bytes?}` + `changed: {node: ...}` | (none; `restart-corrupt` at heal) |
//! | membership | `remove-member` | `{targets, nodes}` + `out: [nodes not members]` | `add-member` `{nodes?}` |
//!
//! Schedule files add `await-leader` `{not?: [nodes]}` (waits for a leader, binds it).
//!
//! `lose-unsynced` and `corrupt-file` stop the target, change its data and start it again
//! within one op; their heal op only starts nodes whose restart failed.
//!
//! Completions say what was done: the grudge applied, the nodes hit, the offsets now in
//! effect, the nodes healed (latency: with each delayer's counts). A start that fails is
//! recorded with its error, is undone where it took effect, and is never listed by
//! [`Nemesis::active`]. [`Nemesis::preflight`] says before a run whether the faults can be
//! applied on its nodes at all; [`clear_leftovers`] removes what a run killed before its
//! heal left on SSH nodes.
//!
//! Latency needs a process on each affected node: the distest binary itself, run as
//! `distest latency-delayer` ([`delayer`]), which nodes provide through
//! [`NodeShell::helper`].

pub mod node;

pub mod clock;
mod cluster;
pub mod compose;
pub mod corrupt;
pub mod delayer;
pub mod disk;
pub mod error;
pub mod iptables;
pub mod kill;
pub mod latency;
pub mod leftovers;
pub mod loss;
pub mod membership;
pub mod nemesis;
pub mod partition;
pub mod pause;
mod preflight;
pub mod process;
mod restart;
pub mod schedule;
pub mod script;
pub mod select;
pub mod start_stop;
pub mod targeting;
mod value;

#[cfg(test)]
mod fake;

pub use error::{NemesisError, NodeFailure};
pub use leftovers::clear_leftovers;
pub use nemesis::{FaultOp, HealLog, Nemesis, NemesisContext};
pub use node::{
    ClockSupport, DataDir, ExecOutput, Helper, LazyfsControl, NodeError, NodeShell, TargetControl,
};

use compose::{Composite, NoFault};
use process::ProcessAction;

type Constructor = fn(&NemesisContext) -> Box<dyn Nemesis>;

/// One registry entry: a fault, what it does, what it needs on the nodes, its ops.
pub struct FaultEntry {
    pub name: &'static str,
    /// One line for `--help`.
    pub about: &'static str,
    /// OS packages every node needs for this fault (installed when missing).
    pub packages: &'static [&'static str],
    /// The fault ops it performs (`Nemesis::performs`). The last one ends the fault
    /// (`stop-partition`, `start`, `resume`, `reset-clock`); every other one starts it.
    pub ops: &'static [&'static str],
    /// Whether `all` includes it. `disk` and `corrupt-file` are named explicitly: `disk`
    /// needs the data directories served through lazyfs from before the target starts,
    /// and `corrupt-file` destroys data a correct system may legitimately lose.
    pub in_all: bool,
    pub build: Constructor,
}

/// Every fault, in the order they compose (and heal): network faults first, so restarted
/// and resumed nodes come back to a whole network; the faults `all` leaves out last.
pub const FAULTS: [FaultEntry; 9] = [
    FaultEntry {
        name: "partition",
        about: "network partitions (halves, isolate one node or the leader, majorities ring, bridge) with iptables",
        packages: &["iptables"],
        ops: &[partition::START, partition::STOP],
        in_all: true,
        build: |ctx| Box::new(partition::Partition::new(ctx)),
    },
    FaultEntry {
        name: "loss",
        about: "random packet loss between nodes with iptables' statistic match",
        packages: &["iptables"],
        ops: &[loss::START, loss::STOP],
        in_all: true,
        build: |ctx| Box::new(loss::Loss::new(ctx)),
    },
    FaultEntry {
        name: "latency",
        about: "delay ± jitter (reordering) between nodes, held by a delayer process on NFQUEUE",
        packages: &["iptables"],
        ops: &[latency::START, latency::STOP],
        in_all: true,
        build: |ctx| Box::new(latency::Latency::new(ctx)),
    },
    FaultEntry {
        name: "clock",
        about: "clock bumps, strobes and skews (libfaketime on local nodes, date -s over SSH)",
        packages: &["libfaketime"],
        ops: &[clock::BUMP, clock::STROBE, clock::SKEW, clock::RESET],
        in_all: true,
        build: |ctx| Box::new(clock::Clock::new(ctx)),
    },
    FaultEntry {
        name: "kill",
        about: "SIGKILL the target's process on some nodes, restart it later",
        packages: &[],
        ops: &[kill::KillAction::START_F, kill::KillAction::STOP_F],
        in_all: true,
        build: |ctx| Box::new(kill::Kill::new(ctx)),
    },
    FaultEntry {
        name: "pause",
        about: "SIGSTOP the target's process on some nodes, SIGCONT it later",
        packages: &[],
        ops: &[pause::PauseAction::START_F, pause::PauseAction::STOP_F],
        in_all: true,
        build: |ctx| Box::new(pause::Pause::new(ctx)),
    },
    FaultEntry {
        name: "disk",
        about: "lose unsynced writes: data dirs served through lazyfs; kill, drop what was not fsynced (optionally a torn write), restart",
        packages: &["fuse3"],
        ops: &[disk::LOSE, disk::RESTART],
        in_all: false,
        build: |ctx| Box::new(disk::Disk::new(ctx)),
    },
    FaultEntry {
        name: "corrupt-file",
        about: "stop the target, flip bits in or cut the tail off one file of its data dir, restart",
        packages: &[],
        ops: &[corrupt::CORRUPT, corrupt::RESTART],
        in_all: false,
        build: |ctx| Box::new(corrupt::Corrupt::new(ctx)),
    },
    // Heals last, once the network is whole and every process runs again; named only:
    // it needs a target that can change its membership, and changes what every other
    // fault acts on.
    FaultEntry {
        name: "membership",
        about: "remove nodes from the cluster and add them back through the target's own reconfiguration (kv, target files with [membership])",
        packages: &[],
        ops: &[membership::REMOVE, membership::ADD],
        in_all: false,
        build: |ctx| Box::new(membership::Membership::new(ctx)),
    },
];

/// Names `build` accepts.
pub fn valid_names() -> Vec<&'static str> {
    let mut names: Vec<&str> = FAULTS.iter().map(|f| f.name).collect();
    names.extend(["all", compose::NONE]);
    names
}

/// The faults `names` (as [`build`] takes them) enable, in registry order; unknown
/// names are refused with the valid ones listed.
pub fn resolve_names(names: &[String]) -> Result<Vec<&'static FaultEntry>, NemesisError> {
    let mut wanted: Vec<&str> = Vec::new();
    // `+` separates timelines (see `schedule::for_run`); the faults are the same.
    for name in names
        .iter()
        .flat_map(|n| n.split([',', '+']))
        .map(str::trim)
    {
        let expanded: Vec<&str> = match name {
            "" | "none" => Vec::new(),
            "all" => FAULTS.iter().filter(|f| f.in_all).map(|f| f.name).collect(),
            _ => match FAULTS.iter().find(|f| f.name == name) {
                Some(f) => vec![f.name],
                None => {
                    return Err(NemesisError::UnknownNemesis {
                        name: name.to_string(),
                        valid: valid_names().join(", "),
                    })
                }
            },
        };
        for n in expanded {
            if !wanted.contains(&n) {
                wanted.push(n);
            }
        }
    }
    // Canonical order, whatever order the user named them in: same schedule, same heal.
    Ok(FAULTS.iter().filter(|f| wanted.contains(&f.name)).collect())
}

impl FaultEntry {
    /// The ops that start this fault: all of [`ops`](Self::ops) but the last.
    pub fn start_ops(&self) -> &'static [&'static str] {
        match self.ops.len() {
            0 | 1 => self.ops,
            n => &self.ops[..n - 1],
        }
    }
}

/// A requested fault that was tried during a run and never took effect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NeverApplied {
    pub fault: &'static str,
    /// How many of its start ops were performed (all failed).
    pub attempts: usize,
    /// What the first one failed with.
    pub first_error: String,
}

impl NeverApplied {
    /// One sentence for the terminal and `results.json`: which fault, why, what to do.
    pub fn sentence(&self) -> String {
        let tries = if self.attempts == 1 {
            "its only start op failed".to_string()
        } else {
            format!("all {} of its start ops failed", self.attempts)
        };
        format!(
            "the {} fault was requested but never applied ({tries}: {}), so this run cannot pass as having survived it; fix that or leave {} out of --nemesis",
            self.fault,
            self.first_error.trim_end_matches('.'),
            self.fault
        )
    }
}

/// The faults of `names` that were tried and never took effect during a run: every
/// start op of theirs failed. `completions` are the run's fault op completions in order,
/// `(f, error)`. A fault the schedule never got to try is not reported: nothing failed.
pub fn never_applied<'a>(
    names: &[String],
    completions: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> Result<Vec<NeverApplied>, NemesisError> {
    let faults = resolve_names(names)?;
    // Per fault: (attempts, successes, first error).
    let mut seen: Vec<(usize, usize, Option<String>)> = vec![(0, 0, None); faults.len()];
    for (f, error) in completions {
        let Some(i) = faults.iter().position(|e| e.start_ops().contains(&f)) else {
            continue;
        };
        let entry = &mut seen[i];
        entry.0 += 1;
        match error {
            None => entry.1 += 1,
            Some(e) => {
                entry.2.get_or_insert_with(|| e.to_string());
            }
        }
    }
    Ok(faults
        .iter()
        .zip(seen)
        .filter(|(_, (attempts, ok, _))| *attempts > 0 && *ok == 0)
        .map(|(entry, (attempts, _, error))| NeverApplied {
            fault: entry.name,
            attempts,
            first_error: error.unwrap_or_default(),
        })
        .collect())
}

/// The OS packages the faults `names` need on every node, sorted, without repeats.
pub fn packages(names: &[String]) -> Result<Vec<&'static str>, NemesisError> {
    let mut packages: Vec<&str> = resolve_names(names)?
        .iter()
        .flat_map(|f| f.packages.iter().copied())
        .collect();
    packages.sort_unstable();
    packages.dedup();
    Ok(packages)
}

/// Whether `faults` can lose unsynced writes (perform `lose-unsynced`): the target must
/// then serve its data directories through lazyfs from before it starts. Decided by the
/// ops, not the names, so a schedule whose steps use `lose-unsynced` (its
/// [`schedule::fault_names`] resolved here) mounts lazyfs as `--nemesis disk` does.
pub fn needs_lazyfs(faults: &[&FaultEntry]) -> bool {
    faults.iter().any(|f| f.ops.contains(&disk::LOSE))
}

/// One nemesis from `names`; each may itself be a comma list (`partition,kill`). `all` is
/// every fault `in_all`, `none` nothing (alone; next to others it adds nothing). Repeats
/// count once.
pub fn build(names: &[String], ctx: NemesisContext) -> Result<Box<dyn Nemesis>, NemesisError> {
    let faults = resolve_names(names)?;
    let is_all = faults
        .iter()
        .map(|f| f.name)
        .eq(FAULTS.iter().filter(|f| f.in_all).map(|f| f.name));
    let parts: Vec<Box<dyn Nemesis>> = faults.iter().map(|f| (f.build)(&ctx)).collect();
    match parts.len() {
        0 => Ok(Box::new(NoFault)),
        1 => Ok(parts.into_iter().next().expect("one part")),
        _ => {
            let name = if is_all {
                "all".to_string()
            } else {
                parts
                    .iter()
                    .map(|p| p.name().to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            Ok(Box::new(Composite::new(name, ctx.seed, parts)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{self, FakeTarget};
    use std::sync::Arc;

    fn ctx(n: u8, seed: u64) -> NemesisContext {
        let (nodes, target) = fake::cluster(n);
        NemesisContext {
            nodes: fake::shells(&nodes),
            target,
            seed,
        }
    }

    fn schedule(names: &str, seed: u64, len: usize) -> Vec<FaultOp> {
        let mut nemesis = build(&[names.to_string()], ctx(5, seed)).unwrap();
        (0..len).map(|_| nemesis.next_op()).collect()
    }

    #[test]
    fn each_entry_lists_the_ops_its_nemesis_performs() {
        for fault in FAULTS.iter() {
            let nemesis = build(&[fault.name.to_string()], ctx(3, 1)).unwrap();
            assert_eq!(nemesis.performs(), fault.ops, "{}", fault.name);
            assert!(!fault.about.is_empty());
        }
        assert_eq!(
            packages(&["all".to_string()]).unwrap(),
            vec!["iptables", "libfaketime"]
        );
        assert!(packages(&["none".to_string()]).unwrap().is_empty());
    }

    #[test]
    fn a_fault_is_never_applied_only_when_every_start_failed() {
        let names = ["all".to_string()];
        let completions = [
            (
                "start-latency",
                Some("latency needs NFQUEUE, which this machine lacks."),
            ),
            ("start-partition", None),
            ("stop-partition", Some("a heal that failed is not a start")),
            ("kill", Some("n1 is not running")),
            ("kill", None),
            ("start-latency", Some("the same again")),
            ("stop-latency", None),
            ("bump-clock", Some("no libfaketime")),
        ];
        let never = never_applied(&names, completions).unwrap();
        let faults: Vec<&str> = never.iter().map(|n| n.fault).collect();
        assert_eq!(
            faults,
            ["latency", "clock"],
            "kill worked once; pause, loss never tried"
        );
        assert_eq!(never[0].attempts, 2);
        assert_eq!(
            never[0].sentence(),
            "the latency fault was requested but never applied (all 2 of its start ops failed: latency needs NFQUEUE, which this machine lacks), so this run cannot pass as having survived it; fix that or leave latency out of --nemesis"
        );
        assert!(never_applied(&["partition".to_string()], completions)
            .unwrap()
            .is_empty());
        for fault in FAULTS.iter() {
            assert!(!fault.start_ops().is_empty(), "{}", fault.name);
            assert!(
                !fault.start_ops().contains(fault.ops.last().unwrap()),
                "{}",
                fault.name
            );
        }
    }

    #[test]
    fn unknown_names_are_refused_with_the_valid_ones_listed() {
        let err = build(&["partition,chaos".to_string()], ctx(3, 1))
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "unknown nemesis `chaos`; valid names are: partition, loss, latency, clock, kill, pause, disk, corrupt-file, membership, all, none"
        );
    }

    #[test]
    fn comma_lists_and_separate_names_build_the_same_composite() {
        let a = build(&["kill, partition".to_string()], ctx(3, 1)).unwrap();
        let b = build(
            &[
                "partition".to_string(),
                "kill".to_string(),
                "kill".to_string(),
            ],
            ctx(3, 1),
        )
        .unwrap();
        assert_eq!(a.name(), "partition,kill");
        assert_eq!(a.performs(), b.performs());
        assert_eq!(
            a.performs(),
            vec!["start-partition", "stop-partition", "kill", "start"]
        );
        assert_eq!(
            build(&["all".to_string()], ctx(3, 1)).unwrap().name(),
            "all"
        );
    }

    #[test]
    fn all_leaves_the_disk_faults_out_and_they_compose_when_named() {
        let all = build(&["all".to_string()], ctx(3, 1)).unwrap();
        assert!(!all.performs().contains(&"lose-unsynced"));
        assert!(!all.performs().contains(&"corrupt-file"));
        let mixed = build(&["corrupt-file,kill,disk".to_string()], ctx(3, 1)).unwrap();
        assert_eq!(mixed.name(), "kill,disk,corrupt-file");
        assert_eq!(
            mixed.performs(),
            vec![
                "kill",
                "start",
                "lose-unsynced",
                "restart-disk",
                "corrupt-file",
                "restart-corrupt"
            ]
        );
        let everything = build(&["all,disk".to_string()], ctx(3, 1)).unwrap();
        assert_ne!(everything.name(), "all");
        assert!(everything.performs().contains(&"lose-unsynced"));
    }

    #[test]
    fn lazyfs_is_needed_exactly_when_a_fault_can_lose_unsynced_writes() {
        let needs = |names: &[String]| needs_lazyfs(&resolve_names(names).unwrap());
        assert!(needs(&["disk".to_string()]));
        assert!(needs(&["kill,disk".to_string()]));
        for other in ["all", "corrupt-file", "none", "partition,kill"] {
            assert!(!needs(&[other.to_string()]), "{other}");
        }
        assert_eq!(packages(&["disk".to_string()]).unwrap(), vec!["fuse3"]);
        // A schedule naming the op (not the nemesis) needs it too.
        let steps = vec![distest_generator::schedule::Step {
            at: std::time::Duration::from_secs(3),
            op: FaultOp::new(disk::LOSE, serde_json::json!({"targets": "one"})),
        }];
        let names = schedule::fault_names(&steps).unwrap();
        assert_eq!(names, vec!["disk"]);
        assert!(needs(&names));
    }

    #[test]
    fn none_performs_nothing() {
        let mut none = build(&["none".to_string()], ctx(3, 1)).unwrap();
        assert!(none.performs().is_empty());
        let op = none.next_op();
        assert!(none.invoke(&op).is_ok());
        assert!(none.heal().is_empty());
    }

    #[test]
    fn same_seed_same_schedule_and_another_seed_another() {
        assert_eq!(schedule("all", 7, 300), schedule("all", 7, 300));
        assert_ne!(schedule("all", 7, 300), schedule("all", 8, 300));
    }

    #[test]
    fn adding_a_fault_does_not_change_another_faults_draws() {
        let alone: Vec<FaultOp> = schedule("partition", 7, 40);
        let mixed: Vec<FaultOp> = schedule("partition,kill", 7, 80)
            .into_iter()
            .filter(|op| op.f.ends_with("-partition"))
            .collect();
        assert_eq!(alone[..mixed.len().min(40)], mixed[..mixed.len().min(40)]);
    }

    #[test]
    fn composed_faults_alternate_and_at_most_two_are_open_at_once() {
        let ops = schedule("all", 11, 500);
        let starts = [
            "start-partition",
            "start-loss",
            "start-latency",
            "kill",
            "pause",
            "bump-clock",
            "strobe-clock",
            "skew-clock",
        ];
        let stop_of = |f: &str| match f {
            "start-partition" => "stop-partition",
            "start-loss" => "stop-loss",
            "start-latency" => "stop-latency",
            "kill" => "start",
            "pause" => "resume",
            _ => "reset-clock",
        };
        let mut open: Vec<&str> = Vec::new();
        let mut kinds = std::collections::BTreeSet::new();
        for op in &ops {
            kinds.insert(op.f.clone());
            if starts.contains(&op.f.as_str()) {
                assert!(!open.contains(&stop_of(&op.f)), "{} started twice", op.f);
                open.push(stop_of(&op.f));
            } else {
                let i = open
                    .iter()
                    .position(|s| *s == op.f)
                    .unwrap_or_else(|| panic!("{} without start", op.f));
                open.remove(i);
            }
            assert!(open.len() <= compose::MAX_OPEN_FAULTS, "{open:?}");
        }
        assert!(kinds.len() >= 12, "every kind of op shows up: {kinds:?}");
    }

    #[test]
    fn composite_dispatches_ops_and_heals_every_part() {
        let (nodes, target) = fake::cluster(3);
        *target.primaries.lock().unwrap() = vec!["n1".to_string()];
        let ctx = NemesisContext {
            nodes: fake::shells(&nodes),
            target: target.clone() as Arc<FakeTarget>,
            seed: 2,
        };
        let mut all = build(&["all".to_string()], ctx).unwrap();
        all.invoke(&FaultOp::new("kill", serde_json::json!({"nodes": ["n2"]})))
            .unwrap();
        all.invoke(&FaultOp::new(
            "start-partition",
            serde_json::json!({"shape": "isolate-leader"}),
        ))
        .unwrap();
        all.invoke(&FaultOp::new(
            "pause",
            serde_json::json!({"targets": "primaries"}),
        ))
        .unwrap();
        assert_eq!(
            all.active(),
            vec!["partition isolate-leader", "n2 killed", "n1 paused"]
        );
        let healed: Vec<String> = all
            .heal()
            .into_iter()
            .map(|(op, r)| {
                assert!(r.is_ok(), "{op:?}: {r:?}");
                op.f
            })
            .collect();
        assert_eq!(healed, vec!["stop-partition", "start", "resume"]);
        assert!(all.active().is_empty());
        assert!(all.heal().is_empty());
        assert!(matches!(
            all.invoke(&FaultOp::new("reboot", serde_json::Value::Null)),
            Err(NemesisError::UnknownOp { .. })
        ));
    }

    /// Fake nodes where every command works (latency's delayers included); the target
    /// reports n1 as leader and every clock as a faketime file.
    fn realistic(n: u8, seed: u64) -> (Vec<Arc<fake::FakeNode>>, Arc<FakeTarget>, NemesisContext) {
        let nodes: Vec<Arc<fake::FakeNode>> =
            (1..=n).map(|i| Arc::new(fake::FakeNode::ok(i))).collect();
        let target = Arc::new(FakeTarget::default());
        *target.primaries.lock().unwrap() = vec!["n1".to_string()];
        for node in &nodes {
            let path = std::path::PathBuf::from(format!("/tmp/dt-{}/faketime", node.name()));
            target
                .clock
                .lock()
                .unwrap()
                .insert(node.name().to_string(), ClockSupport::FaketimeFile(path));
        }
        let ctx = NemesisContext {
            nodes: fake::shells(&nodes),
            target: target.clone(),
            seed,
        };
        (nodes, target, ctx)
    }

    /// The last command on `node` that mentions `needle`.
    fn last_with(node: &fake::FakeNode, needle: &str) -> Option<String> {
        node.commands()
            .into_iter()
            .rev()
            .find(|c| c.contains(needle))
    }

    #[test]
    fn heal_after_any_prefix_of_a_schedule_leaves_every_node_whole() {
        for seed in 0..12 {
            let (nodes, target, ctx) = realistic(5, seed);
            let mut all = build(&["all".to_string()], ctx).unwrap();
            let mut failures = 0;
            for _ in 0..(seed as usize * 5 + 3) {
                let op = all.next_op();
                failures += usize::from(all.invoke(&op).is_err());
            }
            assert_eq!(
                failures, 0,
                "seed {seed}: every drawn op works on a healthy cluster"
            );
            for (op, outcome) in all.heal() {
                assert!(outcome.is_ok(), "seed {seed}: {op:?}: {outcome:?}");
            }
            assert!(all.active().is_empty(), "seed {seed}: {:?}", all.active());
            assert!(
                all.heal().is_empty(),
                "seed {seed}: second heal did something"
            );
            for node in &nodes {
                let name = node.name();
                for (chain, remove) in [
                    (
                        "DISTEST-PARTITION",
                        iptables::PARTITION.remove_command(iptables::Family::V4),
                    ),
                    (
                        "DISTEST-LOSS",
                        iptables::LOSS.remove_command(iptables::Family::V4),
                    ),
                    (
                        "DISTEST-LATENCY",
                        iptables::LATENCY.remove_command(iptables::Family::V4),
                    ),
                ] {
                    if let Some(last) = last_with(node, chain) {
                        assert_eq!(last, remove, "seed {seed}: {name} left {chain} in place");
                    }
                }
                if let Some(last) = last_with(node, "latency-delayer") {
                    assert!(
                        last.contains("latency-delayer stop"),
                        "seed {seed}: {name}: {last}"
                    );
                }
                if let Some(last) = last_with(node, "faketime") {
                    assert!(last.ends_with("w '+0.000'"), "seed {seed}: {name}: {last}");
                }
                let calls = target.calls();
                let last_of = |a: &str, b: &str| {
                    calls
                        .iter()
                        .rev()
                        .find(|c| *c == &format!("{a} {name}") || *c == &format!("{b} {name}"))
                        .cloned()
                };
                if let Some(last) = last_of("kill", "start") {
                    assert_eq!(last, format!("start {name}"), "seed {seed}");
                }
                if let Some(last) = last_of("pause", "resume") {
                    assert_eq!(last, format!("resume {name}"), "seed {seed}");
                }
            }
        }
    }

    #[test]
    fn all_names_every_fault_that_cannot_apply_in_one_error() {
        let target = Arc::new(FakeTarget {
            no_process: Some("it runs in-process".to_string()),
            ..FakeTarget::default()
        });
        let ctx = NemesisContext {
            nodes: Vec::new(),
            target,
            seed: 1,
        };
        let all = build(&["all".to_string()], ctx.clone()).unwrap();
        let text = all.preflight().unwrap_err().to_string();
        for fault in ["partition", "loss", "latency"] {
            assert!(
                text.contains(&format!(
                    "`{fault}` needs at least 2 nodes but the run has 0"
                )),
                "{text}"
            );
        }
        assert!(text.contains("`clock` needs at least 1"), "{text}");
        assert!(
            text.contains("kill cannot act on this target: it runs in-process"),
            "{text}"
        );
        assert!(
            text.contains("pause cannot act on this target: it runs in-process"),
            "{text}"
        );
        assert!(build(&["none".to_string()], ctx)
            .unwrap()
            .preflight()
            .is_ok());
    }

    #[test]
    fn a_healthy_cluster_passes_every_preflight() {
        let (_, _, ctx) = realistic(3, 1);
        build(&["all".to_string()], ctx)
            .unwrap()
            .preflight()
            .unwrap();
    }

    #[test]
    fn an_empty_node_set_gives_errors_not_panics() {
        let target = Arc::new(FakeTarget::default());
        let ctx = NemesisContext {
            nodes: Vec::new(),
            target,
            seed: 1,
        };
        let mut all = build(&["all".to_string()], ctx).unwrap();
        for _ in 0..100 {
            let op = all.next_op();
            let _ = all.invoke(&op);
        }
        all.heal();
        assert!(all.heal().is_empty());
    }
}
