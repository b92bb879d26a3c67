//! Streaming a history op by op gives exactly the ops `read_history` gives, in every
//! format, while holding none of them.

use distest_checkers::format::{read_history, stream_history, write_jsonl_line, Format};
use distest_checkers::{Op, OpType, Process};
use serde_json::json;

fn streamed(bytes: &[u8], format: Option<Format>) -> Vec<Op> {
    // A first pass learns the hints, a second numbers the ops as read_history does.
    let first = stream_history(bytes, format, "h", None, |_| Ok(())).unwrap();
    let mut ops = Vec::new();
    let second = stream_history(bytes, format, "h", Some(first.hints), |op| {
        ops.push(op);
        Ok(())
    })
    .unwrap();
    assert_eq!(second, first);
    assert_eq!(second.ops, ops.len() as u64);
    ops
}

#[test]
fn streaming_reads_the_sample_histories_as_read_history_does() {
    let dir = format!("{}/../testdata/jepsen", env!("CARGO_MANIFEST_DIR"));
    for name in [
        "cas-register.edn",
        "cas-register.log",
        "list-append.edn",
        "elle-completions.edn",
    ] {
        let bytes = std::fs::read(format!("{dir}/{name}")).unwrap();
        let whole = read_history(&bytes[..], None, "h").unwrap();
        assert_eq!(streamed(&bytes, None), whole.ops(), "{name}");
    }
}

#[test]
fn streaming_jsonl_crosses_batches_and_an_invalid_op_names_its_line() {
    let mut text = Vec::new();
    for i in 0..200_000u64 {
        let mut op = Op::invoke(Process::Client(i % 7), "write", json!(i));
        op.index = 2 * i;
        write_jsonl_line(&op, &mut text);
        let mut done = op.complete(OpType::Ok, json!(i));
        done.index = 2 * i + 1;
        write_jsonl_line(&done, &mut text);
    }
    let whole = read_history(&text[..], Some(Format::Jsonl), "h").unwrap();
    assert_eq!(streamed(&text, None), whole.ops());
    // The sink's verdict on an op is placed at that op's line.
    let err = stream_history(&text[..], None, "h.jsonl", None, |op| {
        if op.index == 1234 {
            Err(distest_checkers::HistoryError::CompletionWithoutInvoke {
                index: op.index,
                process: op.process,
            })
        } else {
            Ok(())
        }
    })
    .unwrap_err();
    assert!(err.to_string().starts_with("h.jsonl:1235: "), "{err}");
}

#[test]
fn streaming_nothing_is_the_same_error_as_reading_nothing() {
    for bytes in [&b""[..], b"root:x:0:0\n"] {
        let read = read_history(bytes, None, "f").unwrap_err();
        let streamed = stream_history(bytes, None, "f", None, |_| Ok(())).unwrap_err();
        assert_eq!(read, streamed);
    }
}

#[test]
fn process_less_invocations_pair_with_their_completions_when_streamed_too() {
    // Elle's paper example style: invocations without :process, each directly followed
    // by its completion; a lone completion; a process that is given.
    let text = b"{:type :invoke, :value [[:append 1 1] [:r 2 nil]]}
{:type :ok, :value [[:append 1 1] [:r 2 [1]]]}
{:type :ok, :value [[:append 2 1]]}
{:process 0, :type :invoke, :f :txn, :value [[:r 1 nil]]}
{:process 0, :type :ok, :f :txn, :value [[:r 1 [1]]]}
{:type :invoke, :value [[:r 1 nil]]}
{:type :fail, :value [[:r 1 nil]]}
";
    let whole = read_history(&text[..], None, "h").unwrap();
    assert_eq!(whole.ops().len(), 8, "one synthetic invocation, no other");
    assert_eq!(whole.ops()[0].process, whole.ops()[1].process);
    assert_eq!(streamed(text, None), whole.ops());
    // An invocation without :process whose completion does not follow at once is
    // ambiguous, at the end of the input as in the middle: the same error both ways.
    for bad in [
        &b"{:type :invoke, :value [[:r 1 nil]]}\n"[..],
        b"{:type :invoke, :value [[:r 1 nil]]}\n{:process 0, :type :ok, :f :txn, :value [[:r 1 nil]]}\n",
    ] {
        let read = read_history(bad, None, "h").unwrap_err();
        let streamed = stream_history(bad, None, "h", None, |_| Ok(())).unwrap_err();
        assert_eq!(read, streamed);
        assert!(read.to_string().starts_with("h:1: "), "{read}");
        assert!(read.to_string().contains("no :process"), "{read}");
    }
}
