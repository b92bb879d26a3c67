//! Known-verdict histories for the kafka checker, one per anomaly.

use super::*;
use crate::convergence::testkit::history;
use crate::op::OpType::*;
use crate::verdict::Validity;
use serde_json::json;

/// The offline verdict, after the online form agreed with it.
fn check(h: &History) -> Verdict {
    crate::online::testkit::checked(Box::new(Kafka), h)
}

fn send(k: &str, m: i64) -> Value {
    json!([["send", k, m]])
}

fn sent(k: &str, offset: i64, m: i64) -> Value {
    json!([["send", k, [offset, m]]])
}

fn poll() -> Value {
    json!([["poll"]])
}

fn polled(k: &str, records: &[(i64, i64)]) -> Value {
    let records: Vec<Value> = records.iter().map(|(o, m)| json!([o, m])).collect();
    json!([["poll", {k: records}]])
}

/// Three acknowledged sends to key "a": messages 10, 11, 12 at offsets 0, 1, 2.
fn three_sends() -> Vec<(u64, OpType, &'static str, Value, &'static str)> {
    vec![
        (0, Invoke, "send", send("a", 10), ""),
        (0, Ok, "send", sent("a", 0, 10), ""),
        (0, Invoke, "send", send("a", 11), ""),
        (0, Ok, "send", sent("a", 1, 11), ""),
        (0, Invoke, "send", send("a", 12), ""),
        (0, Ok, "send", sent("a", 2, 12), ""),
    ]
}

fn with(
    mut lines: Vec<(u64, OpType, &'static str, Value, &'static str)>,
    more: &[(u64, OpType, &'static str, Value)],
) -> History {
    lines.extend(more.iter().map(|(p, t, f, v)| (*p, *t, *f, v.clone(), "")));
    history(&lines)
}

#[test]
fn a_clean_history_with_commits_and_a_final_poll_is_valid() {
    let h = with(
        three_sends(),
        &[
            (1, Invoke, "poll", poll()),
            (1, Ok, "poll", polled("a", &[(0, 10), (1, 11)])),
            (1, Invoke, "commit_offsets", json!(null)),
            (1, Ok, "commit_offsets", json!({"a": 1})),
            (1, Invoke, "poll", poll()),
            (1, Ok, "poll", polled("a", &[(2, 12)])),
            (2, Invoke, "list_committed_offsets", json!(["a"])),
            (2, Ok, "list_committed_offsets", json!({"a": 1})),
            (3, Invoke, "poll", json!({"final": true})),
            (3, Ok, "poll", polled("a", &[(0, 10), (1, 11), (2, 12)])),
        ],
    );
    let v = check(&h);
    assert_eq!(v.valid, Validity::Valid, "{v:#?}");
    assert_eq!(v.evidence["acknowledged_send_count"], 3);
    assert_eq!(v.evidence["polled_record_count"], 6);
}

#[test]
fn a_hole_inside_one_poll_is_an_internal_skip_and_a_lost_write() {
    let h = with(
        three_sends(),
        &[
            (1, Invoke, "poll", poll()),
            (1, Ok, "poll", polled("a", &[(0, 10), (2, 12)])),
        ],
    );
    let v = check(&h);
    assert_eq!(v.valid, Validity::Invalid);
    assert_eq!(v.anomalies, vec!["int-poll-skip", "lost-write"]);
    assert_eq!(v.evidence["lost_write"]["cases"][0]["message"], 11);
    assert_eq!(
        v.evidence["int_poll_skip"]["cases"][0]["skipped"],
        json!([[1, 11]])
    );
}

#[test]
fn sparse_offsets_nobody_wrote_are_not_skips() {
    let h = history(&[
        (0, Invoke, "send", send("a", 1), ""),
        (0, Ok, "send", sent("a", 5, 1), ""),
        (0, Invoke, "send", send("a", 2), ""),
        (0, Ok, "send", sent("a", 9, 2), ""),
        (1, Invoke, "poll", poll(), ""),
        (1, Ok, "poll", polled("a", &[(5, 1), (9, 2)]), ""),
    ]);
    let v = check(&h);
    assert_eq!(v.valid, Validity::Valid, "{v:#?}");
}

#[test]
fn a_jump_between_two_polls_of_one_process_is_a_poll_skip() {
    let h = with(
        three_sends(),
        &[
            (1, Invoke, "poll", poll()),
            (1, Ok, "poll", polled("a", &[(0, 10)])),
            (1, Invoke, "poll", poll()),
            (1, Ok, "poll", polled("a", &[(2, 12)])),
            // Someone else read 11, so it is not lost: only process 1 skipped it.
            (2, Invoke, "poll", poll()),
            (2, Ok, "poll", polled("a", &[(1, 11)])),
        ],
    );
    let v = check(&h);
    assert_eq!(v.anomalies, vec!["poll-skip"], "{v:#?}");
    assert_eq!(
        v.evidence["poll_skip"]["cases"][0]["skipped"],
        json!([[1, 11]])
    );
    assert_eq!(v.evidence["poll_skip"]["cases"][0]["ops"], json!([7, 9]));
}

#[test]
fn going_back_between_polls_is_nonmonotonic_unless_an_assign_came_between() {
    let going_back = [
        (1, Invoke, "poll", poll()),
        (1, Ok, "poll", polled("a", &[(0, 10), (1, 11)])),
        (1, Invoke, "poll", poll()),
        (1, Ok, "poll", polled("a", &[(1, 11), (2, 12)])),
    ];
    let v = check(&with(three_sends(), &going_back));
    assert_eq!(v.anomalies, vec!["nonmonotonic-poll"], "{v:#?}");

    let mut reassigned = going_back.to_vec();
    reassigned.insert(2, (1, Invoke, "assign", json!(["b"])));
    reassigned.insert(3, (1, Ok, "assign", json!(["b"])));
    let v = check(&with(three_sends(), &reassigned));
    assert_eq!(v.valid, Validity::Valid, "{v:#?}");
}

#[test]
fn one_offset_with_two_messages_and_one_message_at_two_offsets() {
    let h = history(&[
        (0, Invoke, "send", send("a", 1), ""),
        (0, Ok, "send", sent("a", 0, 1), ""),
        (1, Invoke, "send", send("a", 2), ""),
        (1, Ok, "send", sent("a", 0, 2), ""),
        (2, Invoke, "poll", poll(), ""),
        (2, Ok, "poll", polled("a", &[(0, 1), (1, 2), (2, 1)]), ""),
    ]);
    let v = check(&h);
    assert!(
        v.anomalies.contains(&"inconsistent-offsets".to_string()),
        "{v:#?}"
    );
    assert!(v.anomalies.contains(&"duplicate".to_string()), "{v:#?}");
    assert_eq!(
        v.evidence["duplicate"]["cases"][0]["offsets"],
        json!([0, 2])
    );
}

#[test]
fn sends_of_one_process_whose_offsets_go_back_are_nonmonotonic() {
    let h = history(&[
        (0, Invoke, "send", send("a", 1), ""),
        (0, Ok, "send", sent("a", 7, 1), ""),
        (0, Invoke, "send", send("a", 2), ""),
        (0, Ok, "send", sent("a", 3, 2), ""),
        (
            1,
            Invoke,
            "txn",
            json!([["send", "a", 3], ["send", "a", 4]]),
            "",
        ),
        (
            1,
            Ok,
            "txn",
            json!([["send", "a", [9, 3]], ["send", "a", [8, 4]]]),
            "",
        ),
    ]);
    let v = check(&h);
    assert_eq!(
        v.anomalies,
        vec!["int-nonmonotonic-send", "nonmonotonic-send"],
        "{v:#?}"
    );
}

#[test]
fn reading_a_failed_send_is_an_aborted_read_and_a_stranger_is_unexpected() {
    let h = history(&[
        (0, Invoke, "send", send("a", 1), ""),
        (0, Fail, "send", send("a", 1), ""),
        (1, Invoke, "poll", poll(), ""),
        (1, Ok, "poll", polled("a", &[(0, 1), (1, 99)]), ""),
    ]);
    let v = check(&h);
    assert_eq!(v.anomalies, vec!["aborted-read", "unexpected"], "{v:#?}");
}

#[test]
fn an_acknowledged_message_a_later_final_poll_misses_is_unseen() {
    let h = history(&[
        (0, Invoke, "send", send("a", 1), ""),
        (0, Ok, "send", sent("a", 0, 1), ""),
        (1, Invoke, "poll", json!({"final": true}), ""),
        (1, Ok, "poll", json!([["poll", {}]]), ""),
    ]);
    let v = check(&h);
    assert_eq!(v.anomalies, vec!["unseen"], "{v:#?}");
    // Without the final poll nothing was obliged to read it.
    let h = history(&[
        (0, Invoke, "send", send("a", 1), ""),
        (0, Ok, "send", sent("a", 0, 1), ""),
    ]);
    let v = check(&h);
    assert_eq!(v.valid, Validity::Valid, "{v:#?}");
    assert_eq!(v.evidence["unseen_without_final_poll_count"], 1);
}

#[test]
fn an_info_send_may_or_may_not_show_up() {
    let h = history(&[
        (0, Invoke, "send", send("a", 1), ""),
        (0, Info, "send", send("a", 1), ""),
        (1, Invoke, "send", send("a", 2), ""),
        (1, Ok, "send", sent("a", 1, 2), ""),
        (2, Invoke, "poll", json!({"final": true}), ""),
        (2, Ok, "poll", polled("a", &[(0, 1), (1, 2)]), ""),
        (3, Invoke, "poll", json!({"final": true}), ""),
        (3, Ok, "poll", polled("a", &[(1, 2)]), ""),
    ]);
    let v = check(&h);
    assert_eq!(v.valid, Validity::Valid, "{v:#?}");
}

#[test]
fn committed_offsets_that_go_back_or_vanish_are_regressions() {
    let h = history(&[
        (0, Invoke, "commit_offsets", json!(null), ""),
        (0, Ok, "commit_offsets", json!({"a": 5, "b": 2}), ""),
        (1, Invoke, "list_committed_offsets", json!(["a", "b"]), ""),
        (1, Ok, "list_committed_offsets", json!({"a": 3}), ""),
        (1, Invoke, "send", send("a", 1), ""),
        (1, Ok, "send", sent("a", 0, 1), ""),
    ]);
    let v = check(&h);
    assert_eq!(v.anomalies, vec!["committed-offset-regression"], "{v:#?}");
    assert_eq!(v.evidence["committed_offset_regression"]["count"], 2);
    assert_eq!(
        v.evidence["committed_offset_regression"]["cases"][0]["committed_index"],
        1
    );
}

#[test]
fn a_list_lower_than_an_earlier_list_is_a_regression_but_a_concurrent_commit_is_not() {
    let h = history(&[
        (0, Invoke, "commit_offsets", json!(null), ""),
        (0, Ok, "commit_offsets", json!({"a": 5}), ""),
        (2, Invoke, "commit_offsets", json!({"a": 8}), ""),
        (1, Invoke, "list_committed_offsets", json!(["a"]), ""),
        (1, Ok, "list_committed_offsets", json!({"a": 8}), ""),
        (2, Ok, "commit_offsets", json!({"a": 8}), ""),
        (1, Invoke, "list_committed_offsets", json!(["a"]), ""),
        (1, Ok, "list_committed_offsets", json!({"a": 6}), ""),
        (1, Invoke, "send", send("a", 1), ""),
        (1, Ok, "send", sent("a", 0, 1), ""),
    ]);
    let v = check(&h);
    // 8 while the commit of 8 was in flight is fine; 6 after 8 was listed is not.
    assert_eq!(v.anomalies, vec!["committed-offset-regression"], "{v:#?}");
    assert_eq!(v.evidence["committed_offset_regression"]["count"], 1);
}

#[test]
fn wrong_shapes_make_it_unknown_and_nothing_at_all_is_unknown() {
    let h = history(&[
        (0, Invoke, "send", send("a", 1), ""),
        (0, Ok, "send", sent("a", 0, 1), ""),
        (1, Invoke, "poll", poll(), ""),
        (1, Ok, "poll", json!([["poll", {"a": "garbage"}]]), ""),
    ]);
    let v = check(&h);
    assert_eq!(v.valid, Validity::Unknown, "{v:#?}");
    assert_eq!(v.evidence["malformed"]["count"], 1);
    let v = check(&history(&[(0, Invoke, "poll", poll(), "")]));
    assert_eq!(v.valid, Validity::Unknown);
}

#[test]
fn integer_and_string_keys_name_the_same_log() {
    let h = history(&[
        (0, Invoke, "send", json!([["send", 3, 1]]), ""),
        (0, Ok, "send", json!([["send", 3, [0, 1]]]), ""),
        (0, Invoke, "send", json!([["send", 3, 2]]), ""),
        (0, Ok, "send", json!([["send", 3, [1, 2]]]), ""),
        (1, Invoke, "poll", poll(), ""),
        (1, Ok, "poll", json!([["poll", {"3": [[1, 2]]}]]), ""),
    ]);
    let v = check(&h);
    assert_eq!(v.anomalies, vec!["lost-write"], "{v:#?}");
}

#[test]
fn a_listed_offset_nobody_tried_to_commit_is_unexpected() {
    let h = history(&[
        (0, Invoke, "commit_offsets", json!(null), ""),
        (0, Ok, "commit_offsets", json!({"a": 2}), ""),
        (1, Invoke, "list_committed_offsets", json!(["a"]), ""),
        (1, Ok, "list_committed_offsets", json!({"a": 40}), ""),
        (1, Invoke, "send", send("a", 1), ""),
        (1, Ok, "send", sent("a", 0, 1), ""),
    ]);
    let v = check(&h);
    assert_eq!(v.anomalies, vec!["unexpected-committed-offset"], "{v:#?}");
}
