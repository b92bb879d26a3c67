//! What a checker says about a history: valid, invalid or unknown, with evidence.

use serde::de::{self, Deserializer};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

/// Jepsen's `:valid?`: `true`, `false` or `:unknown` (serialized as `"unknown"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Validity {
    Valid,
    Invalid,
    /// The checker gave up (time or memory limit) or the history is too incomplete to say.
    /// Never a guess.
    Unknown,
}

impl Validity {
    /// The meet used to compose checkers: any invalid → invalid; else any unknown → unknown.
    pub fn meet(self, other: Validity) -> Validity {
        use Validity::*;
        match (self, other) {
            (Invalid, _) | (_, Invalid) => Invalid,
            (Unknown, _) | (_, Unknown) => Unknown,
            _ => Valid,
        }
    }

    /// The process exit code for this verdict (design: 0 valid, 1 invalid, 2 unknown).
    pub fn exit_code(self) -> i32 {
        match self {
            Validity::Valid => 0,
            Validity::Invalid => 1,
            Validity::Unknown => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Validity::Valid => "valid",
            Validity::Invalid => "invalid",
            Validity::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Validity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Validity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Validity::Valid => s.serialize_bool(true),
            Validity::Invalid => s.serialize_bool(false),
            Validity::Unknown => s.serialize_str("unknown"),
        }
    }
}

impl<'de> Deserialize<'de> for Validity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Bool(true) => Ok(Validity::Valid),
            Value::Bool(false) => Ok(Validity::Invalid),
            Value::String(s) if s == "unknown" || s == ":unknown" => Ok(Validity::Unknown),
            other => Err(de::Error::custom(format!(
                "expected true, false or \"unknown\" for valid, got {other}"
            ))),
        }
    }
}

/// One checker's result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub valid: Validity,
    /// Names of the anomaly classes found (`G-single`, `stale-read`, `lost`, ...), sorted, unique.
    #[serde(default)]
    pub anomalies: Vec<String>,
    /// A few human sentences: what was checked and what was found.
    #[serde(default)]
    pub summary: String,
    /// A readable, step-by-step explanation (counterexample, cycle walk-through); may be empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub explanation: String,
    /// Checker-specific structured evidence, drawn by the report.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub evidence: Value,
}

impl Verdict {
    pub fn valid(summary: impl Into<String>) -> Verdict {
        Verdict {
            valid: Validity::Valid,
            anomalies: Vec::new(),
            summary: summary.into(),
            explanation: String::new(),
            evidence: Value::Null,
        }
    }

    pub fn invalid(anomalies: Vec<String>, summary: impl Into<String>) -> Verdict {
        let mut anomalies = anomalies;
        anomalies.sort();
        anomalies.dedup();
        Verdict {
            valid: Validity::Invalid,
            anomalies,
            summary: summary.into(),
            explanation: String::new(),
            evidence: Value::Null,
        }
    }

    pub fn unknown(summary: impl Into<String>) -> Verdict {
        Verdict {
            valid: Validity::Unknown,
            anomalies: Vec::new(),
            summary: summary.into(),
            explanation: String::new(),
            evidence: Value::Null,
        }
    }

    pub fn with_explanation(mut self, text: impl Into<String>) -> Verdict {
        self.explanation = text.into();
        self
    }

    pub fn with_evidence(mut self, evidence: Value) -> Verdict {
        self.evidence = evidence;
        self
    }
}

/// The results document of a check or run: `{"valid": ..., "checkers": {name: verdict}}`,
/// for a run checked online the first anomaly it reported while it went, and for a run
/// that did not run its course `"interrupted": true` and/or `"error"`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub valid: Validity,
    pub checkers: BTreeMap<String, Verdict>,
    /// The run was cut short (SIGINT/SIGTERM): what was recorded was checked, but the test
    /// did not run its course, so the verdict is at best unknown.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
    /// Why the run itself failed, one sentence (e.g. a requested fault was never applied):
    /// the verdict is then at best unknown and the exit code 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_anomaly: Option<crate::online::Anomaly>,
}

/// The verdict of a run's nodes restarting after disk faults: judged by the run (from what
/// the nodes did), not from the history, and kept when the history is checked again.
pub const RECOVERY: &str = "recovery";

impl Results {
    /// Composes verdicts with [`Validity::meet`]. No checker at all is `unknown`, not valid.
    pub fn from_verdicts(checkers: BTreeMap<String, Verdict>) -> Results {
        let valid = if checkers.is_empty() {
            Validity::Unknown
        } else {
            checkers
                .values()
                .fold(Validity::Valid, |acc, v| acc.meet(v.valid))
        };
        Results {
            valid,
            checkers,
            interrupted: false,
            error: None,
            first_anomaly: None,
        }
    }

    /// Marks the run as cut short: a valid verdict becomes unknown. An anomaly found in
    /// what was recorded stays invalid (it happened), except liveness ones
    /// ([`LIVENESS_ANOMALIES`](crate::stats::LIVENESS_ANOMALIES): "an f never
    /// succeeded"), which a run stopped early earns by itself: those verdicts become
    /// unknown.
    pub fn mark_interrupted(&mut self) {
        self.interrupted = true;
        for verdict in self.checkers.values_mut() {
            let liveness_only = verdict.valid == Validity::Invalid
                && verdict
                    .anomalies
                    .iter()
                    .all(|a| crate::stats::LIVENESS_ANOMALIES.contains(&a.as_str()));
            if liveness_only {
                verdict.valid = Validity::Unknown;
                verdict.summary = format!(
                    "{} Not held against the system: the run was interrupted before it could exercise every op.",
                    verdict.summary
                );
                verdict.anomalies.clear();
            }
        }
        self.valid = self
            .checkers
            .values()
            .fold(Validity::Valid, |acc, v| acc.meet(v.valid))
            .meet(Validity::Unknown);
    }

    /// Records why the run itself failed (the first reason is kept); a valid verdict
    /// becomes unknown, an invalid one stays.
    pub fn mark_failed(&mut self, sentence: impl Into<String>) {
        self.error.get_or_insert_with(|| sentence.into());
        self.valid = self.valid.meet(Validity::Unknown);
    }

    /// The exit code of the run or check: 1 when an anomaly was found, else 3 when the run
    /// failed, else 2 when unknown (interrupted runs included), else 0.
    pub fn exit_code(&self) -> i32 {
        match (self.valid, &self.error) {
            (Validity::Invalid, _) => 1,
            (_, Some(_)) => 3,
            (v, None) => v.exit_code(),
        }
    }

    /// Adds a verdict judged from something other than the history's ops (the `net`
    /// statistics of a journal, the `recovery` of nodes after disk faults); the overall
    /// verdict meets it.
    pub fn add_verdict(&mut self, name: &str, verdict: Verdict) {
        self.valid = self.valid.meet(verdict.valid);
        self.checkers.insert(name.to_string(), verdict);
    }

    /// Carries what a run recorded about itself (interrupted, error, the `recovery` of its
    /// nodes) over to a fresh check of its history: re-checking does not make a cut-short
    /// run whole, nor a node that did not restart one that did.
    pub fn keep_run_facts(&mut self, recorded: &Results) {
        if let Some(recovery) = recorded.checkers.get(RECOVERY) {
            self.add_verdict(RECOVERY, recovery.clone());
        }
        if recorded.interrupted {
            self.mark_interrupted();
        }
        if let Some(e) = &recorded.error {
            self.mark_failed(e.clone());
        }
    }

    /// All anomaly names across checkers, sorted and unique.
    pub fn anomalies(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .checkers
            .values()
            .flat_map(|v| v.anomalies.iter().cloned())
            .collect();
        all.sort();
        all.dedup();
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meet_prefers_invalid_then_unknown() {
        use Validity::*;
        assert_eq!(Valid.meet(Valid), Valid);
        assert_eq!(Valid.meet(Unknown), Unknown);
        assert_eq!(Unknown.meet(Invalid), Invalid);
        assert_eq!(Invalid.meet(Valid), Invalid);
    }

    #[test]
    fn validity_serializes_like_jepsen() {
        assert_eq!(serde_json::to_string(&Validity::Valid).unwrap(), "true");
        assert_eq!(serde_json::to_string(&Validity::Invalid).unwrap(), "false");
        assert_eq!(
            serde_json::to_string(&Validity::Unknown).unwrap(),
            "\"unknown\""
        );
        let v: Validity = serde_json::from_str("\"unknown\"").unwrap();
        assert_eq!(v, Validity::Unknown);
    }

    #[test]
    fn interrupted_or_failed_runs_are_never_valid_but_anomalies_stay() {
        let verdicts = |v: Verdict| BTreeMap::from([("c".to_string(), v)]);
        let mut r = Results::from_verdicts(verdicts(Verdict::valid("ok")));
        assert_eq!(r.exit_code(), 0);
        r.mark_interrupted();
        assert_eq!((r.valid, r.exit_code()), (Validity::Unknown, 2));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["interrupted"], true);
        assert!(json.get("error").is_none());
        r.mark_failed("latency was never applied");
        r.mark_failed("a second reason is not kept");
        assert_eq!(r.exit_code(), 3);
        assert_eq!(r.error.as_deref(), Some("latency was never applied"));
        let back: Results = serde_json::from_value(serde_json::to_value(&r).unwrap()).unwrap();
        assert_eq!(back, r);

        let mut bad = Results::from_verdicts(verdicts(Verdict::invalid(vec!["G0".into()], "")));
        bad.mark_interrupted();
        bad.mark_failed("x");
        assert_eq!((bad.valid, bad.exit_code()), (Validity::Invalid, 1));

        // "An f never succeeded" in a run cut short is the run's doing, not the system's.
        let mut short = Results::from_verdicts(BTreeMap::from([
            (
                "stats".to_string(),
                Verdict::invalid(vec!["never-succeeded".into()], "No cas op ever succeeded."),
            ),
            ("linear".to_string(), Verdict::valid("ok")),
        ]));
        assert_eq!(short.exit_code(), 1);
        short.mark_interrupted();
        assert_eq!((short.valid, short.exit_code()), (Validity::Unknown, 2));
        assert!(short.anomalies().is_empty());
        assert!(short.checkers["stats"].summary.contains("interrupted"));

        let mut fresh = Results::from_verdicts(verdicts(Verdict::valid("ok")));
        fresh.keep_run_facts(&r);
        assert_eq!(fresh.exit_code(), 3);
        assert!(fresh.interrupted);
        // Plain results documents (no run facts) read as before.
        let plain: Results = serde_json::from_str(r#"{"valid": true, "checkers": {}}"#).unwrap();
        assert!(!plain.interrupted && plain.error.is_none());
    }

    #[test]
    fn a_verdict_not_from_the_history_is_met_and_a_recovery_verdict_survives_a_recheck() {
        let verdicts = |v: Verdict| BTreeMap::from([("c".to_string(), v)]);
        let mut run = Results::from_verdicts(verdicts(Verdict::valid("ok")));
        run.add_verdict("net", Verdict::valid("12 msgs per op"));
        assert_eq!(run.exit_code(), 0);
        run.add_verdict(
            RECOVERY,
            Verdict::invalid(vec!["node-not-recovered".into()], "n2 did not start again"),
        );
        assert_eq!((run.valid, run.exit_code()), (Validity::Invalid, 1));
        // `distest check RUN_DIR` judges the history again; the run's recovery verdict
        // is not in the history, so it is carried over, with the history's own verdicts.
        let mut fresh = Results::from_verdicts(verdicts(Verdict::valid("ok")));
        fresh.keep_run_facts(&run);
        assert_eq!(fresh.exit_code(), 1);
        assert_eq!(fresh.checkers[RECOVERY].anomalies, ["node-not-recovered"]);
        assert!(
            !fresh.checkers.contains_key("net"),
            "net is judged again, not carried"
        );
    }

    #[test]
    fn empty_results_are_unknown() {
        assert_eq!(
            Results::from_verdicts(BTreeMap::new()).valid,
            Validity::Unknown
        );
    }
}
