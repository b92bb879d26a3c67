//! Property: whatever is done to a valid history file (truncation, swapped lines, garbage
//! bytes, values of the wrong type, duplicated invocations), `read_history` answers with
//! a history or a clean `ParseError`, never a panic; and a history it accepts can be
//! checked (`Stats`) without panicking.

use distest_checkers::format::{read_history, write_jsonl_line, Format, ParseError};
use distest_checkers::stats::Stats;
use distest_checkers::{CheckContext, Checker, Op, OpType, Process};
use proptest::prelude::*;
use serde_json::{json, Value};

/// One op as the test builds it: enough to render every format.
#[derive(Clone, Debug)]
struct Spec {
    process: Option<u64>,
    kind: OpType,
    f: &'static str,
    value: Value,
    error: bool,
}

/// A valid history: pairs on a few processes, some info (the process then retires),
/// and nemesis info pairs in between.
fn history() -> impl Strategy<Value = Vec<Spec>> {
    prop::collection::vec((0u8..4, 0u8..5, 0u64..5, any::<bool>()), 1..24).prop_map(|steps| {
        let mut out = Vec::new();
        let mut next_process = 0u64;
        for (i, (f_pick, outcome, v, nemesis)) in steps.into_iter().enumerate() {
            if nemesis && i % 5 == 0 {
                for _ in 0..2 {
                    out.push(Spec {
                        process: None,
                        kind: OpType::Info,
                        f: "start-partition",
                        value: json!("majority"),
                        error: false,
                    });
                }
                continue;
            }
            let (f, invoke_value, ok_value) = match f_pick {
                0 => ("read", Value::Null, json!(v)),
                1 => ("write", json!(v), json!(v)),
                2 => ("cas", json!([v, v + 1]), json!([v, v + 1])),
                _ => (
                    "txn",
                    json!([["append", v, i], ["r", v, null]]),
                    json!([["append", v, i], ["r", v, [i]]]),
                ),
            };
            let p = next_process;
            let kind = [
                OpType::Ok,
                OpType::Ok,
                OpType::Fail,
                OpType::Info,
                OpType::Ok,
            ][outcome as usize];
            if kind == OpType::Info {
                next_process += 1;
            }
            out.push(Spec {
                process: Some(p),
                kind: OpType::Invoke,
                f,
                value: invoke_value.clone(),
                error: false,
            });
            let value = if kind == OpType::Ok {
                ok_value
            } else {
                invoke_value
            };
            out.push(Spec {
                process: Some(p),
                kind,
                f,
                value,
                error: kind == OpType::Info,
            });
        }
        out
    })
}

fn to_op(i: usize, s: &Spec) -> Op {
    let process = s.process.map_or(Process::Nemesis, Process::Client);
    let mut op = Op::invoke(process, s.f, s.value.clone()).with_time(i as u64 * 1_000_000);
    op.kind = s.kind;
    op.index = i as u64;
    op.error = s.error.then(|| json!("timed-out"));
    op
}

fn edn_value(v: &Value) -> String {
    match v {
        Value::Null => "nil".into(),
        Value::String(s) => format!(":{s}"),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(edn_value).collect::<Vec<_>>().join(" ")
        ),
        other => other.to_string(),
    }
}

fn render(specs: &[Spec], format: Format, as_vector: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let ops: Vec<Op> = specs.iter().enumerate().map(|(i, s)| to_op(i, s)).collect();
    match format {
        Format::Jsonl => ops.iter().for_each(|op| write_jsonl_line(op, &mut out)),
        Format::Edn => {
            let lines: Vec<String> = ops
                .iter()
                .map(|op| {
                    let process = match op.process {
                        Process::Nemesis => ":nemesis".to_string(),
                        Process::Client(p) => p.to_string(),
                    };
                    let error = op.error.as_ref().map_or(String::new(), |e| format!(", :error {}", edn_value(e)));
                    format!(
                        "{{:index {}, :time {}, :type :{}, :process {process}, :f :{}, :value {}{error}}}",
                        op.index, op.time, op.kind, op.f, edn_value(&op.value)
                    )
                })
                .collect();
            let text = if as_vector {
                format!("[{}]\n", lines.join("\n "))
            } else {
                lines.join("\n") + "\n"
            };
            out.extend_from_slice(text.as_bytes());
        }
        Format::JepsenLog => {
            for op in &ops {
                let process = match op.process {
                    Process::Nemesis => ":nemesis".to_string(),
                    Process::Client(p) => p.to_string(),
                };
                let error = op
                    .error
                    .as_ref()
                    .map_or(String::new(), |e| format!("\t{}", edn_value(e)));
                let line = format!(
                    "2024-05-01 10:00:{:02},{:03}{{GMT}}\tINFO\t[jepsen worker 0] jepsen.util: {process}\t:{}\t:{}\t{}{error}\n",
                    op.index / 1000 % 60, op.index % 1000, op.kind, op.f, edn_value(&op.value)
                );
                out.extend_from_slice(line.as_bytes());
            }
        }
    }
    out
}

#[derive(Clone, Debug)]
enum Mutation {
    Truncate(usize),
    SwapLines(usize, usize),
    InsertGarbage(usize, Vec<u8>),
    WrongType(usize, &'static str),
    DuplicateLine(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let garbage = prop_oneof![
        prop::collection::vec(any::<u8>(), 1..6),
        prop::sample::select(vec![
            b"{".to_vec(),
            b"}".to_vec(),
            b"[".to_vec(),
            b"\"".to_vec(),
            b"\\".to_vec(),
            b"#".to_vec(),
            b"#_".to_vec(),
            b"\n".to_vec(),
            b"\t".to_vec(),
            b":".to_vec(),
            b"\xff\xfe".to_vec(),
            b"1/0".to_vec(),
            b"99999999999999999999999".to_vec(),
            b"nil".to_vec(),
        ]),
    ];
    prop_oneof![
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        (any::<usize>(), garbage).prop_map(|(at, g)| Mutation::InsertGarbage(at, g)),
        (
            any::<usize>(),
            prop::sample::select(vec![
                "\"x\"", "-1", "1.5", "nil", "[]", "{}", ":bogus", "true"
            ])
        )
            .prop_map(|(at, t)| Mutation::WrongType(at, t)),
        any::<usize>().prop_map(Mutation::DuplicateLine),
    ]
}

fn apply(text: &mut Vec<u8>, m: &Mutation) {
    if text.is_empty() {
        return;
    }
    let mut lines: Vec<Vec<u8>> = text
        .split_inclusive(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect();
    let n = lines.len();
    match m {
        Mutation::Truncate(at) => text.truncate(at % text.len()),
        Mutation::SwapLines(a, b) => {
            lines.swap(a % n, b % n);
            *text = lines.concat();
        }
        Mutation::InsertGarbage(at, g) => {
            let at = at % (text.len() + 1);
            text.splice(at..at, g.iter().copied());
        }
        Mutation::WrongType(at, replacement) => {
            // Replace one value-ish token (a number, keyword or string) by a wrong-typed one.
            let starts: Vec<usize> = (1..text.len())
                .filter(|&i| {
                    matches!(text[i - 1], b' ' | b'\t' | b':')
                        && (text[i].is_ascii_alphanumeric() || text[i] == b'"')
                })
                .collect();
            if starts.is_empty() {
                return;
            }
            let start = starts[at % starts.len()];
            let end = (start..text.len())
                .find(|&i| matches!(text[i], b' ' | b'\t' | b',' | b'}' | b']' | b'\n'))
                .unwrap_or(text.len());
            text.splice(start..end, replacement.bytes());
        }
        Mutation::DuplicateLine(i) => {
            let line = lines[i % n].clone();
            lines.insert(i % n, line);
            *text = lines.concat();
        }
    }
}

fn check_outcome(text: &[u8], format: Format) -> Result<(), TestCaseError> {
    let line_count = text.iter().filter(|&&b| b == b'\n').count() + 1;
    for forced in [Some(format), None] {
        match read_history(text, forced, "fuzz") {
            Ok(history) => {
                let verdict = Stats.check(&history, &CheckContext::default());
                prop_assert!(!verdict.summary.is_empty() || history.is_empty());
            }
            Err(e) => {
                let message = e.to_string();
                prop_assert!(
                    message.starts_with("fuzz"),
                    "errors name the source: {message}"
                );
                if let ParseError::Syntax { line, .. } | ParseError::InvalidOp { line, .. } = e {
                    prop_assert!(
                        line >= 1 && line <= line_count,
                        "line {line} of {line_count}: {message}"
                    );
                }
            }
        }
    }
    Ok(())
}

fn fuzz(
    format: Format,
    specs: Vec<Spec>,
    as_vector: bool,
    mutations: Vec<Mutation>,
) -> Result<(), TestCaseError> {
    let mut text = render(&specs, format, as_vector);
    // Unmutated, every rendering is a valid history.
    let clean = read_history(&text[..], Some(format), "fuzz");
    prop_assert!(
        clean.is_ok(),
        "{:?}\n{}",
        clean.err(),
        String::from_utf8_lossy(&text)
    );
    for m in &mutations {
        apply(&mut text, m);
    }
    check_outcome(&text, format)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn mutated_jsonl_reads_or_fails_cleanly(specs in history(), ms in prop::collection::vec(mutation(), 1..4)) {
        fuzz(Format::Jsonl, specs, false, ms)?;
    }

    #[test]
    fn mutated_edn_reads_or_fails_cleanly(specs in history(), vector in any::<bool>(), ms in prop::collection::vec(mutation(), 1..4)) {
        fuzz(Format::Edn, specs, vector, ms)?;
    }

    #[test]
    fn mutated_jepsen_log_reads_or_fails_cleanly(specs in history(), ms in prop::collection::vec(mutation(), 1..4)) {
        fuzz(Format::JepsenLog, specs, false, ms)?;
    }

    #[test]
    fn random_bytes_read_or_fail_cleanly(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        for format in [Format::Jsonl, Format::Edn, Format::JepsenLog] {
            check_outcome(&bytes, format)?;
        }
    }
}

/// Fixed cases of the same mutations, with the exact error each must give.
#[test]
fn known_mutations_give_the_expected_errors() {
    let specs = vec![
        Spec {
            process: Some(0),
            kind: OpType::Invoke,
            f: "write",
            value: json!(1),
            error: false,
        },
        Spec {
            process: Some(0),
            kind: OpType::Ok,
            f: "write",
            value: json!(1),
            error: false,
        },
        Spec {
            process: Some(1),
            kind: OpType::Invoke,
            f: "read",
            value: Value::Null,
            error: false,
        },
    ];
    // A duplicated invocation: the process has two ops in flight (line 2 of the file).
    for format in [Format::Edn, Format::JepsenLog] {
        let mut text = render(&specs, format, false);
        apply(&mut text, &Mutation::DuplicateLine(0));
        let err = read_history(&text[..], Some(format), "dup").unwrap_err();
        assert!(
            matches!(err, ParseError::InvalidOp { line: 2, .. }),
            "{format}: {err}"
        );
    }
    // In distest's own format the copy also breaks the dense indices.
    let mut text = render(&specs, Format::Jsonl, false);
    apply(&mut text, &Mutation::DuplicateLine(0));
    let err = read_history(&text[..], Some(Format::Jsonl), "dup").unwrap_err();
    assert!(
        matches!(err, ParseError::InvalidOp { line: 2, .. }),
        "{err}"
    );
    // Truncation inside the last op: a syntax error on the last line, in every format.
    for format in [Format::Jsonl, Format::Edn, Format::JepsenLog] {
        let mut text = render(&specs, format, false);
        let cut = text.len() - 4;
        apply(&mut text, &Mutation::Truncate(cut));
        let err = read_history(&text[..], Some(format), "cut").unwrap_err();
        assert!(
            matches!(err, ParseError::Syntax { line: 3, .. }),
            "{format}: {err}"
        );
    }
}
