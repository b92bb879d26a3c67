//! The kafka checker on Jepsen EDN, as `distest check` reads it: the poll-skip example of
//! Maelstrom's kafka documentation (process 0 polls offsets 4 and 5 of key "56", then
//! jumps to 8 over the known messages at 6 and 7).

use distest_checkers::format::{read_history, Format};
use distest_checkers::kafka::Kafka;
use distest_checkers::{CheckContext, Checker, Validity};

#[test]
fn the_documented_poll_skip_is_found_in_an_edn_history() {
    let text = r#"{:type :invoke, :f :send, :value [[:send "56" 5]], :process 1}
{:type :ok, :f :send, :value [[:send "56" [4 5]]], :process 1}
{:type :invoke, :f :send, :value [[:send "56" 6]], :process 1}
{:type :ok, :f :send, :value [[:send "56" [5 6]]], :process 1}
{:type :invoke, :f :send, :value [[:send "56" 7]], :process 1}
{:type :ok, :f :send, :value [[:send "56" [6 7]]], :process 1}
{:type :invoke, :f :send, :value [[:send "56" 8]], :process 1}
{:type :ok, :f :send, :value [[:send "56" [7 8]]], :process 1}
{:type :invoke, :f :send, :value [[:send "56" 9]], :process 1}
{:type :ok, :f :send, :value [[:send "56" [8 9]]], :process 1}
{:type :invoke, :f :poll, :value [[:poll]], :process 0}
{:type :ok, :f :poll, :value [[:poll {"56" [[4 5] [5 6]]}]], :process 0}
{:type :invoke, :f :poll, :value [[:poll]], :process 0}
{:type :ok, :f :poll, :value [[:poll {"56" [[8 9]]}]], :process 0}
{:type :invoke, :f :poll, :value [[:poll]], :process 2}
{:type :ok, :f :poll, :value [[:poll {"56" [[6 7] [7 8]]}]], :process 2}
"#;
    let h = read_history(text.as_bytes(), Some(Format::Edn), "kafka.edn").unwrap();
    let v = Kafka.check(&h, &CheckContext::default());
    assert_eq!(v.valid, Validity::Invalid, "{v:#?}");
    assert_eq!(v.anomalies, vec!["poll-skip"]);
    let case = &v.evidence["poll_skip"]["cases"][0];
    assert_eq!(case["delta"], 3);
    assert_eq!(case["skipped"], serde_json::json!([[6, 7], [7, 8]]));
}
