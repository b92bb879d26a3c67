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
/// and for a run checked online the first anomaly it reported while it went.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub valid: Validity,
    pub checkers: BTreeMap<String, Verdict>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_anomaly: Option<crate::online::Anomaly>,
}

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
            first_anomaly: None,
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
    fn empty_results_are_unknown() {
        assert_eq!(
            Results::from_verdicts(BTreeMap::new()).valid,
            Validity::Unknown
        );
    }
}
