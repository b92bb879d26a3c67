//! Schedule files (`--nemesis-schedule FILE`): fault ops written out with their times,
//! repeated if asked, performed exactly as written (node selectors resolved when a step
//! runs, see `select.rs`). The format is documented with examples in
//! `docs/nemesis-schedules.md`:
//!
//! ```toml
//! about = "isolate the leader; 0.5 s later step its wall clock back 2 s; heal after 5 s"
//! repeat_every = 10.0            # optional: start the steps over every 10 s
//!
//! [[step]]
//! at = 0.0                       # seconds after the round began
//! f = "start-partition"          # any fault op of the history's vocabulary
//! value = { isolate = ["@leader"] }
//! as = "cut"                     # names the nodes it resolved to, for later steps
//!
//! [[step]]
//! at = 0.5
//! f = "bump-clock"
//! value = { nodes = ["@cut"], delta_ms = -2000 }
//! ```
//!
//! Everything is checked when the file is read — unknown keys and ops, times, selectors
//! naming nothing bound before — so a mistake fails the run before any node exists.

use crate::error::NemesisError;
use crate::nemesis::FaultOp;
use crate::select::{self, AWAIT_LEADER};
use serde::Deserialize;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// The key a step's `as` travels under in its op's value (and the history).
pub const BIND_KEY: &str = "as";
/// Bound on steps per file and on one step's time: a schedule is read by people.
const MAX_STEPS: usize = 1_000;
const MAX_AT_S: f64 = 86_400.0;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    #[serde(default)]
    about: Option<String>,
    #[serde(default)]
    repeat_every: Option<f64>,
    #[serde(default, rename = "step")]
    steps: Vec<StepSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepSpec {
    at: f64,
    f: String,
    #[serde(default)]
    value: Option<toml::Value>,
    #[serde(default, rename = "as")]
    bind: Option<String>,
}

/// A parsed schedule file.
#[derive(Clone, Debug, PartialEq)]
pub struct Script {
    pub about: Option<String>,
    /// The steps of one round, in time order (stable for equal times).
    pub steps: Vec<(Duration, FaultOp)>,
    /// Rounds start this far apart; `None`: one round.
    pub repeat_every: Option<Duration>,
}

impl Script {
    /// Reads and checks `path`; `ops` are the fault ops the run can perform. Returns the
    /// script and the text it was parsed from (what the run directory records).
    pub fn load(path: &Path, ops: &[&str]) -> Result<(Script, String), NemesisError> {
        let text = std::fs::read_to_string(path).map_err(|e| NemesisError::BadSchedule {
            origin: path.display().to_string(),
            reason: format!("it cannot be read ({e})"),
        })?;
        let script = Script::parse(&text, &path.display().to_string(), ops)?;
        Ok((script, text))
    }

    /// Parses a schedule file's text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str, ops: &[&str]) -> Result<Script, NemesisError> {
        let bad = |reason: String| NemesisError::BadSchedule {
            origin: origin.to_string(),
            reason,
        };
        let spec: FileSpec =
            toml::from_str(text).map_err(|e| bad(e.to_string().trim().replace('\n', " ")))?;
        if spec.steps.is_empty() {
            return Err(bad("it has no [[step]]".into()));
        }
        if spec.steps.len() > MAX_STEPS {
            return Err(bad(format!("it has more than {MAX_STEPS} steps")));
        }
        let mut steps = Vec::new();
        let mut bound: Vec<String> = Vec::new();
        let mut known: Vec<&str> = ops.to_vec();
        if !known.contains(&AWAIT_LEADER) {
            known.push(AWAIT_LEADER);
        }
        for (i, step) in spec.steps.into_iter().enumerate() {
            let n = i + 1;
            if !(0.0..=MAX_AT_S).contains(&step.at) {
                return Err(bad(format!(
                    "step {n} has at = {}, not a time between 0 and {MAX_AT_S} s",
                    step.at
                )));
            }
            if !known.contains(&step.f.as_str()) {
                return Err(bad(format!(
                    "step {n} has f = {:?}, which no nemesis performs; valid ops are: {}",
                    step.f,
                    known.join(", ")
                )));
            }
            let mut value = match step.value {
                None => Value::Null,
                Some(v) => serde_json::to_value(v)
                    .map_err(|e| bad(format!("step {n}'s value is not plain data ({e})")))?,
            };
            if !(value.is_null() || value.is_object()) {
                return Err(bad(format!("step {n}'s value must be a table")));
            }
            for name in select::bound_names_used(&value) {
                if !bound.contains(&name) {
                    return Err(bad(format!(
                        "step {n} refers to @{name}, which no earlier step binds with `as = \"{name}\"`"
                    )));
                }
            }
            select::check_selectors(&value).map_err(|reason| bad(format!("step {n}: {reason}")))?;
            if let Some(name) = step.bind {
                if !select::is_bindable_name(&name) {
                    return Err(bad(format!(
                        "step {n} binds {name:?}; names are lowercase letters, digits and dashes, and not one of {}",
                        select::RESERVED.join(", ")
                    )));
                }
                if value.is_null() {
                    value = Value::Object(Default::default());
                }
                value[BIND_KEY] = Value::String(name.clone());
                bound.push(name);
            }
            steps.push((
                Duration::from_secs_f64(step.at),
                FaultOp::new(step.f, value),
            ));
        }
        steps.sort_by_key(|(at, _)| *at);
        let repeat_every = match spec.repeat_every {
            None => None,
            Some(s) => {
                let last = steps.last().map_or(Duration::ZERO, |(at, _)| *at);
                if !(s.is_finite() && s > 0.0 && s <= MAX_AT_S)
                    || Duration::from_secs_f64(s) <= last
                {
                    return Err(bad(format!(
                        "repeat_every = {s} must be longer than the last step's time ({} s)",
                        last.as_secs_f64()
                    )));
                }
                Some(Duration::from_secs_f64(s))
            }
        };
        Ok(Script {
            about: spec.about,
            steps,
            repeat_every,
        })
    }

    /// The fault ops the script uses (its own `await-leader` excluded), once each.
    pub fn fault_ops(&self) -> Vec<&str> {
        let mut ops: Vec<&str> = Vec::new();
        for (_, op) in &self.steps {
            if op.f != AWAIT_LEADER && !ops.contains(&op.f.as_str()) {
                ops.push(&op.f);
            }
        }
        ops
    }

    /// Every step in time order, round after round (endless when it repeats).
    pub fn rounds(&self) -> impl Iterator<Item = (Duration, FaultOp)> + '_ {
        let rounds = if self.repeat_every.is_some() {
            u32::MAX
        } else {
            1
        };
        (0..rounds).flat_map(move |round| {
            let start = self.repeat_every.unwrap_or(Duration::ZERO) * round;
            self.steps
                .iter()
                .map(move |(at, op)| (start + *at, op.clone()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const OPS: &[&str] = &[
        "start-partition",
        "stop-partition",
        "bump-clock",
        "reset-clock",
    ];

    fn parse(text: &str) -> Result<Script, NemesisError> {
        Script::parse(text, "test.toml", OPS)
    }

    const LEASE: &str = r#"
        about = "isolate the leader, step its clock back, heal"
        repeat_every = 10.0
        [[step]]
        at = 0.0
        f = "start-partition"
        value = { isolate = ["@leader"] }
        as = "cut"
        [[step]]
        at = 5.5
        f = "stop-partition"
        [[step]]
        at = 0.5
        f = "bump-clock"
        value = { nodes = ["@cut"], delta_ms = -2000 }
        [[step]]
        at = 5.5
        f = "reset-clock"
    "#;

    #[test]
    fn steps_are_sorted_by_time_and_repeat_by_round() {
        let s = parse(LEASE).unwrap();
        let fs: Vec<(f64, String)> = s
            .rounds()
            .take(6)
            .map(|(at, op)| (at.as_secs_f64(), op.f))
            .collect();
        let fs: Vec<(f64, &str)> = fs.iter().map(|(t, f)| (*t, f.as_str())).collect();
        assert_eq!(
            fs,
            vec![
                (0.0, "start-partition"),
                (0.5, "bump-clock"),
                (5.5, "stop-partition"),
                (5.5, "reset-clock"),
                (10.0, "start-partition"),
                (10.5, "bump-clock"),
            ]
        );
        assert_eq!(
            s.steps[0].1.value,
            json!({"isolate": ["@leader"], "as": "cut"})
        );
        assert_eq!(
            s.fault_ops(),
            vec![
                "start-partition",
                "bump-clock",
                "stop-partition",
                "reset-clock"
            ]
        );
        let once = parse(&LEASE.replace("repeat_every = 10.0", "")).unwrap();
        assert_eq!(once.rounds().count(), 4);
    }

    #[test]
    fn mistakes_are_refused_with_the_step_named() {
        let cases = [
            ("[[step]]\nat = 1\nf = \"reboot\"", "step 1 has f = \"reboot\""),
            ("[[step]]\nat = -1\nf = \"stop-partition\"", "step 1 has at = -1"),
            ("[[step]]\nat = 1\nf = \"stop-partition\"\nwhen = 2", "unknown field `when`"),
            ("about = \"x\"", "no [[step]]"),
            (
                "[[step]]\nat = 0\nf = \"bump-clock\"\nvalue = { nodes = [\"@cut\"], delta_ms = 5 }",
                "step 1 refers to @cut",
            ),
            (
                "[[step]]\nat = 0\nf = \"bump-clock\"\nvalue = { nodes = [\"@lead\"], delta_ms = 5 }",
                "step 1 refers to @lead",
            ),
            (
                "[[step]]\nat = 0\nf = \"stop-partition\"\nas = \"leader\"",
                "binds \"leader\"",
            ),
            (
                "repeat_every = 1.0\n[[step]]\nat = 2\nf = \"stop-partition\"",
                "repeat_every = 1",
            ),
            ("[[step]]\nat = 0\nf = \"stop-partition\"\nvalue = 3", "must be a table"),
            (
                "[[step]]\nat = 0\nf = \"start-partition\"\nvalue = { isolate = \"n1\" }",
                "`isolate` must be a list",
            ),
        ];
        for (text, needle) in cases {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
            assert!(err.starts_with("the nemesis schedule test.toml"), "{err}");
        }
    }
}
