//! Jepsen imports end to end: the same history in every Jepsen form reads to the same
//! ops, and the samples in `testdata/jepsen/` (written in Jepsen's and Elle's shapes)
//! import into valid histories the checkers accept.

use distest_checkers::format::{read_history, write_jsonl_line, Format};
use distest_checkers::stats::Stats;
use distest_checkers::{CheckContext, Checker, History, Op, OpType, Process, Validity};
use serde_json::json;
use std::path::PathBuf;

fn sample_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/jepsen")
        .join(name)
}

fn read_sample(name: &str) -> History {
    let file = std::fs::File::open(sample_path(name)).expect("sample exists");
    read_history(file, None, name).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn read_text(text: &str, format: Option<Format>) -> History {
    read_history(text.as_bytes(), format, "inline").unwrap_or_else(|e| panic!("{e}\n{text}"))
}

const SMALL_LINES: &str = "\
{:index 0, :time 0, :type :invoke, :process 0, :f :write, :value 3}
{:index 1, :time 1000000, :type :invoke, :process 1, :f :cas, :value [3 4]}
{:index 2, :time 2000000, :type :ok, :process 0, :f :write, :value 3}
{:index 3, :time 2000000, :type :info, :process :nemesis, :f :start, :value nil}
{:index 4, :time 3000000, :type :info, :process :nemesis, :f :start, :value [:isolated {\"n1\" #{\"n2\" \"n3\"}}]}
{:index 5, :time 5000000, :type :info, :process 1, :f :cas, :value [3 4], :error :timed-out}
{:index 6, :time 6000000, :type :invoke, :process 6, :f :read, :value nil}
{:index 7, :time 8000000, :type :ok, :process 6, :f :read, :value 4}
";

const SMALL_LOG: &str = "\
2024-05-01 10:00:00,000{GMT}\tINFO\t[main] jepsen.core: Running test
2024-05-01 10:00:00,000{GMT}\tINFO\t[jepsen worker 0] jepsen.util: 0\t:invoke\t:write\t3
2024-05-01 10:00:00,001{GMT}\tINFO\t[jepsen worker 1] jepsen.util: 1\t:invoke\t:cas\t[3 4]
2024-05-01 10:00:00,002{GMT}\tINFO\t[jepsen worker 0] jepsen.util: 0\t:ok\t:write\t3
2024-05-01 10:00:00,002{GMT}\tINFO\t[jepsen nemesis] jepsen.util: :nemesis\t:info\t:start\tnil
2024-05-01 10:00:00,003{GMT}\tINFO\t[jepsen nemesis] jepsen.util: :nemesis\t:info\t:start\t[:isolated {\"n1\" #{\"n2\" \"n3\"}}]
2024-05-01 10:00:00,005{GMT}\tINFO\t[jepsen worker 1] jepsen.util: 1\t:info\t:cas\t[3 4]\t:timed-out
\tat clojure.core$ex_info.invokeStatic(core.clj:4617)
2024-05-01 10:00:00,006{GMT}\tINFO\t[jepsen worker 1] jepsen.util: 6\t:invoke\t:read\tnil
2024-05-01 10:00:00,008{GMT}\tINFO\t[jepsen worker 1] jepsen.util: 6\t:ok\t:read\t4
";

#[test]
fn the_same_history_as_edn_lines_edn_vector_and_text_log_imports_identically() {
    let lines = read_text(SMALL_LINES, None);
    let vector = read_text(&format!("[{}]", SMALL_LINES.trim_end()), None);
    let list = read_text(&format!("({})", SMALL_LINES.trim_end()), Some(Format::Edn));
    let log = read_text(SMALL_LOG, None);
    assert_eq!(lines.len(), 8);
    assert_eq!(lines.ops(), vector.ops());
    assert_eq!(lines.ops(), list.ops());
    assert_eq!(lines.ops(), log.ops());
    let ops = lines.ops();
    assert_eq!(ops[4].process, Process::Nemesis);
    assert_eq!(ops[4].value, json!(["isolated", {"n1": ["n2", "n3"]}]));
    assert_eq!(ops[5].error, Some(json!("timed-out")));
    assert_eq!(ops[7].time, 8_000_000);
}

#[test]
fn cas_register_sample_reads_the_same_from_edn_and_from_the_log() {
    let edn = read_sample("cas-register.edn");
    let log = read_sample("cas-register.log");
    assert_eq!(edn.len(), 140);
    assert_eq!(edn.ops(), log.ops());
    let nemesis: Vec<&Op> = edn.nemesis_ops().collect();
    assert_eq!(nemesis.len(), 4, "start and stop, each as an info pair");
    assert!(nemesis.iter().all(|op| op.kind == OpType::Info));
    let timed_out = edn
        .ops()
        .iter()
        .filter(|op| op.error == Some(json!("timed-out")))
        .count();
    assert!(timed_out > 0, "the sample has :timed-out ops");
    let verdict = Stats.check(&edn, &CheckContext::default());
    assert_eq!(verdict.valid, Validity::Valid, "{verdict:?}");
}

#[test]
fn elle_list_append_vector_sample_keeps_its_micro_ops() {
    let h = read_sample("list-append.edn");
    assert_eq!(h.len(), 80);
    assert!(h.ops().iter().all(|op| op.f == "txn"));
    let first_read = h
        .ops()
        .iter()
        .filter(|op| op.kind == OpType::Ok)
        .flat_map(|op| op.value.as_array().cloned().unwrap_or_default())
        .find(|mop| mop[0] == "r")
        .expect("the sample reads");
    assert!(
        first_read[2].is_array(),
        "ok reads carry lists: {first_read}"
    );
    assert_eq!(h.pairs().count(), 40);
}

#[test]
fn elle_bare_completions_get_synthetic_invocations() {
    let h = read_sample("elle-completions.edn");
    assert_eq!(h.len(), 10);
    let pairs: Vec<_> = h.pairs().collect();
    assert_eq!(pairs.len(), 5);
    assert!(pairs
        .iter()
        .all(|p| p.invoke.f == "txn" && p.completion.is_some()));
    let processes: std::collections::HashSet<_> = pairs.iter().map(|p| p.invoke.process).collect();
    assert_eq!(processes.len(), 5, "each completion gets its own process");
    assert_eq!(pairs[2].outcome(), OpType::Info);
}

#[test]
fn imported_history_round_trips_through_distest_jsonl() {
    let edn = read_sample("cas-register.edn");
    let mut jsonl = Vec::new();
    for op in edn.ops() {
        write_jsonl_line(op, &mut jsonl);
    }
    let back = read_history(&jsonl[..], None, "history.jsonl").unwrap();
    assert_eq!(back.ops(), edn.ops());
}

#[test]
fn sparse_jepsen_indices_are_renumbered_in_file_order() {
    let h = read_text(
        "{:index 10 :type :invoke :process 0 :f :read}\n{:index 12 :type :ok :process 0 :f :read :value 1}\n",
        None,
    );
    assert_eq!(h.ops()[0].index, 0);
    assert_eq!(h.ops()[1].index, 1);
    assert_eq!(h.ops()[1].value, json!(1));
}
