//! `test.json`: every option of a run, as `distest run` records it and as `check`,
//! `report`, `compare` and the store index read it back.
//!
//! Reading is lenient on purpose: a report must come out of whatever is there (an older
//! distest's file, one written by hand, one with a broken field). A known key whose value
//! has the wrong type, and any key this version does not know, is kept in
//! [`TestJson::extra`] instead of failing the whole file; [`TestJson::to_value`] writes
//! both back. Keys may be added (a later distest records more), never renamed.

use distest_checkers::CheckerSpec;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The run's options. A missing key reads as its default.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TestJson {
    /// The target's registry name (`kv`, `etcd`, ...), or the `name` of a target file.
    pub target: String,
    /// The target file (absolute path) of a target described in one; `null` otherwise.
    pub target_file: Option<String>,
    pub workload: String,
    /// Enabled faults (`partition`, `kill`, ...); empty for none.
    pub nemesis: Vec<String>,
    /// Node names (`n1`...), filled in once nodes are provisioned.
    pub nodes: Vec<String>,
    /// How nodes were asked for: `local:5`, `ssh:host1,host2`, `in-process:5`.
    pub nodes_spec: String,
    pub concurrency: usize,
    /// Target rate over all clients, ops per second; `null` = as fast as possible.
    pub rate: Option<f64>,
    pub time_limit_s: f64,
    pub nemesis_interval_s: f64,
    /// The schedule file performed besides (or instead of) `nemesis`, as given on the
    /// command line; its text is in the run directory (`nemesis-schedule.toml`).
    pub nemesis_schedule: Option<String>,
    /// Wait after the heal before final reads, so the system can recover.
    pub recovery_s: f64,
    /// A single op taking longer than this is recorded as `info`.
    pub op_timeout_s: f64,
    /// The one seed every random stream of the run is derived from.
    pub seed: u64,
    /// Bugs switched on in a bundled target (`--bug`).
    pub bug: Vec<String>,
    pub consistency_model: Option<String>,
    pub key_count: u64,
    pub ops_per_key: u64,
    pub leave_running: bool,
    /// End the main phase at the first anomaly found online (`--stop-on-anomaly`).
    pub stop_on_anomaly: bool,
    /// The checkers that judge the history (`distest check RUN_DIR` reruns these). A
    /// Maelstrom run's `net` verdict is not among them: it judges the message journal, not
    /// the history, and both `run` and `check` add it whenever the run has a journal.
    pub checkers: Vec<CheckerSpec>,
    /// RFC 3339, the control node's wall clock when the run began.
    pub started_at: String,
    pub distest_version: String,
    /// The command line, for a person rerunning it.
    pub command: String,
    /// Target settings (`--set KEY=VALUE`: `isolation`, `read-mode`...).
    pub settings: BTreeMap<String, String>,
    /// Keys this version does not know, and known keys whose value did not have the
    /// expected type: kept as read.
    #[serde(skip)]
    pub extra: BTreeMap<String, Value>,
}

impl TestJson {
    /// Reads a `test.json` document; `None` when it is not a JSON object.
    pub fn from_value(value: Value) -> Option<TestJson> {
        let Value::Object(map) = value else {
            return None;
        };
        let known = known_keys();
        let mut typed = Map::new();
        let mut extra = BTreeMap::new();
        for (key, value) in map {
            let fits = known.contains(&key)
                && serde_json::from_value::<TestJson>(Value::Object(Map::from_iter([(
                    key.clone(),
                    value.clone(),
                )])))
                .is_ok();
            if fits {
                typed.insert(key, value);
            } else {
                extra.insert(key, value);
            }
        }
        let mut test: TestJson = serde_json::from_value(Value::Object(typed))
            .expect("every key was checked to deserialize on its own");
        test.extra = extra;
        Some(test)
    }

    /// The document to write: the typed keys, then `extra` (which wins on a clash, so a
    /// value read with the wrong type is written back as it was).
    pub fn to_value(&self) -> Value {
        let mut value = serde_json::to_value(self).expect("TestJson always serializes");
        if let Value::Object(map) = &mut value {
            for (k, v) in &self.extra {
                map.insert(k.clone(), v.clone());
            }
        }
        value
    }

    /// `<target>-<workload>-<nemesis>`'s last part: the faults and the schedule file's
    /// name (`partition+clock`, `figure-8`, `kill,figure-8`), or `none`.
    pub fn nemesis_label(&self) -> String {
        let mut parts = self.nemesis.clone();
        if let Some(path) = &self.nemesis_schedule {
            let stem = std::path::Path::new(path).file_stem().map_or_else(
                || "schedule".to_string(),
                |s| s.to_string_lossy().into_owned(),
            );
            parts.push(stem);
        }
        if parts.is_empty() {
            "none".to_string()
        } else {
            parts.join(",")
        }
    }
}

/// The keys [`TestJson`] types (everything but `extra`).
fn known_keys() -> Vec<String> {
    match serde_json::to_value(TestJson::default()) {
        Ok(Value::Object(map)) => map.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_written_document_reads_back_the_same() {
        let test = TestJson {
            target: "kv".into(),
            workload: "register".into(),
            nemesis: vec!["partition".into()],
            seed: 42,
            rate: Some(10.0),
            checkers: vec![CheckerSpec::named("linearizable").with_model("cas-register")],
            settings: BTreeMap::from([("read-mode".to_string(), "lease".to_string())]),
            ..TestJson::default()
        };
        let value = test.to_value();
        assert_eq!(
            value["checkers"][0],
            json!({"name": "linearizable", "model": "cas-register"})
        );
        assert_eq!(value["rate"], json!(10.0));
        assert_eq!(TestJson::from_value(value).unwrap(), test);
    }

    #[test]
    fn unknown_keys_and_mistyped_values_are_kept_not_fatal() {
        let read = TestJson::from_value(json!({
            "target": "kv", "seed": "not a number", "bug": null, "from_the_future": [1, 2]
        }))
        .unwrap();
        assert_eq!(read.target, "kv");
        assert_eq!(read.seed, 0);
        assert_eq!(read.extra["seed"], json!("not a number"));
        assert_eq!(read.extra["from_the_future"], json!([1, 2]));
        let back = read.to_value();
        assert_eq!(back["seed"], json!("not a number"));
        assert_eq!(back["bug"], Value::Null);
        assert!(TestJson::from_value(json!([1])).is_none());
    }

    #[test]
    fn rate_and_consistency_model_are_written_even_when_unset() {
        let value = TestJson::default().to_value();
        assert_eq!(value["rate"], Value::Null);
        assert!(value.as_object().unwrap().contains_key("rate"));
        assert!(value.as_object().unwrap().contains_key("consistency_model"));
    }
}
