//! The registry every checker plugs into with one line, and [`CheckerSpec`]: a checker as
//! a run records it (`test.json`'s `checkers`) and as `distest check` is asked for it.

use crate::checker::Checker;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Options a checker may take from the command line or a run's `test.json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckerOptions {
    /// `--model` (linearizability, CRDT type, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `--consistency-model` (isolation checkers): any model of Elle's lattice; a
    /// comma-separated list holds the history to all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistency_model: Option<String>,
    /// `--anomalies` (isolation checkers): Elle anomaly names that fail the check, instead
    /// of (or besides) a consistency model.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub anomalies: Vec<String>,
    /// `--sequential-keys` (rw-register): infer version orders from each process's order.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sequential_keys: bool,
    /// `--linearizable-keys` (rw-register): infer version orders from real time.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub linearizable_keys: bool,
    /// `--wfr-keys` (rw-register): a transaction's writes follow its reads.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub wfr_keys: bool,
    /// `--transaction-order FILE` (rw-register): completion op index -> position in an
    /// external total order of transactions. The caller reads the file into
    /// [`CheckerOptions::transaction_order_map`] (checkers do no I/O).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_order: Option<String>,
    /// The loaded transaction order (not recorded: the file is).
    #[serde(skip)]
    pub transaction_order_map: Option<std::sync::Arc<std::collections::BTreeMap<u64, i64>>>,
}

/// A checker by name with its options: what a workload asks for, what `test.json`
/// records (`{"name", "model"?, "consistency_model"?}`) and what `distest check` builds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckerSpec {
    pub name: String,
    #[serde(flatten)]
    pub options: CheckerOptions,
}

impl CheckerSpec {
    pub fn named(name: &str) -> CheckerSpec {
        CheckerSpec {
            name: name.to_string(),
            options: CheckerOptions::default(),
        }
    }

    pub fn with_model(mut self, model: &str) -> CheckerSpec {
        self.options.model = Some(model.to_string());
        self
    }

    pub fn with_consistency_model(mut self, model: Option<&str>) -> CheckerSpec {
        self.options.consistency_model = model.map(str::to_string);
        self
    }

    /// Builds the checker from the registry.
    pub fn build(&self) -> Result<Box<dyn Checker>, RegistryError> {
        build(&self.name, &self.options)
    }
}

/// Why a checker could not be built from its name and options.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum RegistryError {
    #[error("unknown checker {name:?}; valid checkers are: {valid}")]
    UnknownChecker { name: String, valid: String },
    #[error("checker {checker:?} does not know {what} {given:?}; valid values are: {valid}")]
    UnknownOption {
        checker: String,
        what: &'static str,
        given: String,
        valid: String,
    },
    #[error("checker {checker:?} needs {what}; valid values are: {valid}")]
    MissingOption {
        checker: String,
        what: &'static str,
        valid: String,
    },
    #[error("checker {checker:?}: {message}")]
    Invalid { checker: String, message: String },
}

/// One registry line: a name, one sentence about it, and how to build it.
pub struct Entry {
    pub name: &'static str,
    pub about: &'static str,
    pub build: fn(&CheckerOptions) -> Result<Box<dyn Checker>, RegistryError>,
}

/// Every checker distest knows. Adding a checker is one line here.
pub fn registry() -> &'static [Entry] {
    &[
        Entry {
            name: "stats",
            about: "counts ops per f and outcome; invalid when some f never succeeded (Jepsen's stats checker)",
            build: |_| Ok(Box::new(crate::stats::Stats)),
        },
        // -- further checkers register below this line --
        Entry {
            name: "list-append",
            about: "Elle's list-append isolation checker: infers ww/wr/rw dependencies from appends and reads, finds G0/G1/G2 anomalies, judges --consistency-model (any model of Elle's lattice, default strict-serializable) or --anomalies",
            build: |o| crate::elle::build("list-append", o),
        },
        Entry {
            name: "rw-register",
            about: "Elle's rw-register isolation checker: infers dependencies from unique register writes and reads (plus --wfr-keys, --sequential-keys, --linearizable-keys, --transaction-order), finds G0/G1/G2 anomalies, judges --consistency-model (any model of Elle's lattice, default strict-serializable) or --anomalies",
            build: |o| crate::elle::build("rw-register", o),
        },
        Entry {
            name: "linearizable",
            about: "exact linearizability check (WGL/Porcupine search, per-key, parallel) against --model: register, cas-register, kv, set, queue, mutex",
            build: crate::linear::build,
        },
        Entry {
            name: "set",
            about: "Jepsen's set-full: every acknowledged add stays visible; reports lost, stale, never-read, unexpected, duplicated elements",
            build: |_| Ok(Box::new(crate::convergence::set::SetChecker)),
        },
        Entry {
            name: "counter",
            about: "every counter read lies within the bounds of the acknowledged and indeterminate adds (negative deltas allowed)",
            build: |_| Ok(Box::new(crate::convergence::counter::CounterChecker)),
        },
        Entry {
            name: "unique-ids",
            about: "no id returned by an ok generate op is returned twice",
            build: |_| Ok(Box::new(crate::convergence::unique_ids::UniqueIds)),
        },
        Entry {
            name: "total-queue",
            about: "every acknowledged enqueue is dequeued exactly once; nothing unexpected comes out",
            build: |_| Ok(Box::new(crate::convergence::total_queue::TotalQueue)),
        },
        Entry {
            name: "crdt-convergence",
            about: "after the heal all replicas agree on a state the CRDT (--model g-counter|pn-counter|or-set|lww-register) allows, and reads never go backwards",
            build: |o| Ok(Box::new(crate::convergence::crdt::CrdtConvergence::from_options(o)?)),
        },
        Entry {
            name: "echo",
            about: "Maelstrom's echo: every acknowledged echo returns exactly the payload it was sent",
            build: |_| Ok(Box::new(crate::echo::Echo)),
        },
        Entry {
            name: "kafka",
            about: "Jepsen's kafka analysis of send/poll logs: lost, unseen, duplicated, inconsistent, skipped or reordered offsets, aborted reads, and committed offsets that regress",
            build: |_| Ok(Box::new(crate::kafka::Kafka)),
        },
    ]
}

/// The names of all registered checkers, comma separated (for error messages and --help).
pub fn checker_names() -> String {
    registry()
        .iter()
        .map(|e| e.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Builds the checker called `name` with `options`.
pub fn build(name: &str, options: &CheckerOptions) -> Result<Box<dyn Checker>, RegistryError> {
    let entry = registry().iter().find(|e| e.name == name).ok_or_else(|| {
        RegistryError::UnknownChecker {
            name: name.to_string(),
            valid: checker_names(),
        }
    })?;
    (entry.build)(options)
}

/// Helper for checkers that take a named option from a fixed list (models, CRDT kinds...).
pub fn pick_option<'a>(
    checker: &str,
    what: &'static str,
    given: Option<&str>,
    default: Option<&'a str>,
    valid: &[&'a str],
) -> Result<&'a str, RegistryError> {
    let joined = || valid.join(", ");
    match given {
        None => default.ok_or_else(|| RegistryError::MissingOption {
            checker: checker.to_string(),
            what,
            valid: joined(),
        }),
        Some(g) => {
            valid
                .iter()
                .copied()
                .find(|v| *v == g)
                .ok_or_else(|| RegistryError::UnknownOption {
                    checker: checker.to_string(),
                    what,
                    given: g.to_string(),
                    valid: joined(),
                })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_checker_lists_the_valid_names() {
        let err = build("linearisable-typo", &CheckerOptions::default())
            .err()
            .unwrap();
        let text = err.to_string();
        assert!(text.contains("stats"), "{text}");
    }

    #[test]
    fn registry_names_are_unique() {
        let mut names: Vec<_> = registry().iter().map(|e| e.name).collect();
        names.sort();
        let n = names.len();
        names.dedup();
        assert_eq!(n, names.len());
    }
}
