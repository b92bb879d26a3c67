//! JUnit XML for CI: one `<testsuite>` per run, one `<testcase>` per checker.
//!
//! Mapping (documented for CI users): `valid` passes; `invalid` is a `<failure>` (the
//! system under test broke: an anomaly was found) whose message is the summary and whose
//! text is the anomalies and explanation; `unknown` is an `<error>` (the test could not
//! decide) rather than `<skipped>`, because a CI job that treats undecided runs as green
//! hides checker time-outs and broken histories. A run without any checker result gets a
//! single `<error>` test case named `results`, for the same reason. A run that was
//! interrupted, or failed (e.g. a requested fault was never applied), gets a test case
//! named `run` in `<error>` (type `interrupted` / `run-failed`).

use crate::html::{esc, truncate};
use distest_checkers::{Results, Validity};
use std::fmt::Write;

/// Text bound per failure body; CI systems choke on megabyte-sized test output.
const MAX_BODY_CHARS: usize = 16_000;

/// One test case of a run: a checker's verdict, the placeholder for a run without any,
/// or the run itself when it did not run its course.
enum Case<'a> {
    Checker(&'a str, &'a distest_checkers::Verdict),
    NoVerdict,
    /// `(type, message)` of the run's `<error>`: interrupted, or the run failed.
    Run(&'static str, String),
}

impl Case<'_> {
    fn name(&self) -> &str {
        match self {
            Case::Checker(name, _) => name,
            Case::NoVerdict => "results",
            Case::Run(..) => "run",
        }
    }
}

/// The cases of one run: its checkers (or the placeholder), then a `run` case in error
/// when the run was interrupted or failed, so CI never reads a cut-short run as a pass.
fn cases(r: &Results) -> Vec<Case<'_>> {
    let mut cases: Vec<Case> = r
        .checkers
        .iter()
        .map(|(n, v)| Case::Checker(n.as_str(), v))
        .collect();
    if cases.is_empty() && r.error.is_none() && !r.interrupted {
        cases.push(Case::NoVerdict);
    }
    if let Some(error) = &r.error {
        cases.push(Case::Run("run-failed", error.clone()));
    }
    if r.interrupted {
        cases.push(Case::Run(
            "interrupted",
            "the run was interrupted (SIGINT/SIGTERM) before it ran its course; what was recorded was checked".into(),
        ));
    }
    cases
}

/// JUnit XML for `results`: `(suite name, results)` per run or suite.
pub fn junit(results: &[(String, Results)]) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let (mut tests, mut failures, mut errors) = (0, 0, 0);
    let mut suites = String::new();
    for (name, r) in results {
        let cases = cases(r);
        let f = cases
            .iter()
            .filter(|c| matches!(c, Case::Checker(_, v) if v.valid == Validity::Invalid))
            .count();
        let e = cases
            .iter()
            .filter(|c| !matches!(c, Case::Checker(_, v) if v.valid != Validity::Unknown))
            .count();
        tests += cases.len();
        failures += f;
        errors += e;
        let _ = writeln!(
            suites,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{f}\" errors=\"{e}\" skipped=\"0\">",
            esc(name),
            cases.len()
        );
        for case in &cases {
            let _ = write!(
                suites,
                "    <testcase classname=\"{}\" name=\"{}\"",
                esc(name),
                esc(case.name())
            );
            match case {
                Case::Checker(_, v) if v.valid == Validity::Valid => suites.push_str("/>\n"),
                Case::Checker(_, v) => {
                    let (tag, kind) = match v.valid {
                        Validity::Invalid => ("failure", "anomaly"),
                        _ => ("error", "unknown"),
                    };
                    let mut body = String::new();
                    if !v.anomalies.is_empty() {
                        let _ = writeln!(body, "anomalies: {}", v.anomalies.join(", "));
                    }
                    body.push_str(&v.explanation);
                    let _ = write!(
                        suites,
                        ">\n      <{tag} type=\"{kind}\" message=\"{}\">{}</{tag}>\n    </testcase>\n",
                        esc(&truncate(&v.summary, 1_000)),
                        esc(&truncate(&body, MAX_BODY_CHARS))
                    );
                }
                Case::NoVerdict => suites.push_str(">\n      <error type=\"unknown\" message=\"no checker produced a verdict\"/>\n    </testcase>\n"),
                Case::Run(kind, message) => {
                    let _ = write!(
                        suites,
                        ">\n      <error type=\"{kind}\" message=\"{}\"/>\n    </testcase>\n",
                        esc(&truncate(message, 1_000))
                    );
                }
            }
        }
        suites.push_str("  </testsuite>\n");
    }
    let _ = write!(
        out,
        "<testsuites name=\"distest\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\">\n{suites}</testsuites>\n"
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use distest_checkers::Verdict;
    use std::collections::BTreeMap;

    #[test]
    fn invalid_is_a_failure_unknown_an_error_valid_a_pass_and_text_is_escaped() {
        let mut checkers = BTreeMap::new();
        checkers.insert("stats".to_string(), Verdict::valid("ok"));
        checkers.insert(
            "linearizable".to_string(),
            Verdict::invalid(vec!["nonlinearizable".into()], "read <3> after \"4\"")
                .with_explanation("]]></failure><x>"),
        );
        checkers.insert("elle".to_string(), Verdict::unknown("timed out"));
        let xml = junit(&[("kv-register <p>".into(), Results::from_verdicts(checkers))]);
        assert!(
            xml.contains("tests=\"3\" failures=\"1\" errors=\"1\""),
            "{xml}"
        );
        assert!(xml
            .contains("<failure type=\"anomaly\" message=\"read &lt;3&gt; after &quot;4&quot;\">"));
        assert!(xml.contains("<error type=\"unknown\" message=\"timed out\">"));
        assert!(xml.contains("<testcase classname=\"kv-register &lt;p&gt;\" name=\"stats\"/>"));
        assert!(!xml.contains("]]></failure><x>"));
        assert!(!xml.contains("<x>"));
    }

    #[test]
    fn a_run_without_verdicts_is_an_error_not_a_pass() {
        let xml = junit(&[("empty".into(), Results::from_verdicts(BTreeMap::new()))]);
        assert!(xml.contains("errors=\"1\""), "{xml}");
        assert!(xml.contains("name=\"results\""));
    }

    #[test]
    fn an_interrupted_or_failed_run_has_a_run_case_in_error() {
        let mut checkers = BTreeMap::new();
        checkers.insert("stats".to_string(), Verdict::valid("ok"));
        let mut r = Results::from_verdicts(checkers);
        r.mark_interrupted();
        r.mark_failed("latency was requested but never applied");
        let xml = junit(&[("kv".into(), r)]);
        assert!(
            xml.contains("tests=\"3\" failures=\"0\" errors=\"2\""),
            "{xml}"
        );
        assert!(xml.contains("<error type=\"interrupted\""), "{xml}");
        assert!(
            xml.contains(
                "<error type=\"run-failed\" message=\"latency was requested but never applied\"/>"
            ),
            "{xml}"
        );
    }
}
