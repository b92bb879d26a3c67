//! Jepsen-format histories parse and check: the same cas-register history as a Jepsen
//! text log, as `history.edn` and as distest JSONL gives the same verdict and points at
//! the same failing op.

use distest_checkers::format::{read_history, Format};
use distest_checkers::linear::{check_history, ModelKind};
use distest_checkers::{CheckContext, Validity, Verdict};

/// (process, type, f, value, error) in Jepsen's printed (EDN) form.
type Line = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
);

/// A cas-register history whose last read returns `last_read`: a cas moves 1 to 2 and a
/// write of 3 times out, so a final read of 2 or 3 is fine and a read of 1 is not.
fn history(last_read: &'static str) -> Vec<Line> {
    vec![
        ("0", "invoke", "write", "1", None),
        ("0", "ok", "write", "1", None),
        (":nemesis", "info", "start", "nil", None),
        ("1", "invoke", "cas", "[1 2]", None),
        ("2", "invoke", "read", "nil", None),
        ("1", "ok", "cas", "[1 2]", None),
        ("2", "ok", "read", "2", None),
        ("3", "invoke", "write", "3", None),
        ("3", "info", "write", "3", Some(":timed-out")),
        (":nemesis", "info", "stop", "nil", None),
        ("0", "invoke", "read", "nil", None),
        ("0", "ok", "read", last_read, None),
        ("4", "invoke", "cas", "[7 8]", None),
        ("4", "fail", "cas", "[7 8]", None),
    ]
}

fn as_jepsen_log(lines: &[Line]) -> String {
    let mut out = String::from("INFO  jepsen.core - Running test\n");
    for (p, t, f, v, err) in lines {
        out.push_str(&format!("INFO  jepsen.util - {p}\t:{t}\t:{f}\t{v}"));
        if let Some(e) = err {
            out.push_str(&format!("\t{e}"));
        }
        out.push('\n');
    }
    out
}

fn as_edn(lines: &[Line]) -> String {
    let mut out = String::new();
    for (i, (p, t, f, v, err)) in lines.iter().enumerate() {
        let error = err.map(|e| format!(", :error {e}")).unwrap_or_default();
        out.push_str(&format!(
            "{{:type :{t}, :f :{f}, :value {v}, :process {p}, :time {}, :index {i}{error}}}\n",
            i * 1000
        ));
    }
    out
}

fn as_jsonl(lines: &[Line]) -> String {
    let mut out = String::new();
    for (i, (p, t, f, v, _)) in lines.iter().enumerate() {
        let process = if p.starts_with(':') {
            "\"nemesis\"".to_string()
        } else {
            p.to_string()
        };
        let value = match *v {
            "nil" => "null".to_string(),
            v if v.starts_with('[') => v.replace(' ', ","),
            v => v.to_string(),
        };
        out.push_str(&format!(
            "{{\"index\":{i},\"time\":{},\"process\":{process},\"type\":\"{t}\",\"f\":\"{f}\",\"value\":{value}}}\n",
            i * 1000
        ));
    }
    out
}

fn check(text: &str, format: Format) -> Verdict {
    let h = read_history(text.as_bytes(), Some(format), "test")
        .unwrap_or_else(|e| panic!("{format} history does not parse: {e}\n{text}"));
    check_history(&h, ModelKind::CasRegister, &CheckContext::default())
}

fn verdicts(last_read: &'static str) -> Vec<Verdict> {
    let lines = history(last_read);
    vec![
        check(&as_jepsen_log(&lines), Format::JepsenLog),
        check(&as_edn(&lines), Format::Edn),
        check(&as_jsonl(&lines), Format::Jsonl),
    ]
}

#[test]
fn jepsen_log_edn_and_jsonl_agree_on_a_valid_history() {
    for last_read in ["2", "3"] {
        for v in verdicts(last_read) {
            assert_eq!(v.valid, Validity::Valid, "{}", v.summary);
        }
    }
}

#[test]
fn jepsen_log_edn_and_jsonl_agree_on_an_invalid_history_and_its_failing_op() {
    let all = verdicts("1");
    for v in &all {
        assert_eq!(v.valid, Validity::Invalid, "{}", v.summary);
        assert_eq!(
            v.evidence["failing_op"]["index"],
            serde_json::json!(10),
            "{:#}",
            v.evidence
        );
        assert_eq!(
            v.evidence["possible_states"],
            serde_json::json!([2, 3]),
            "{:#}",
            v.evidence
        );
    }
    assert_eq!(all[0].explanation, all[1].explanation);
}
