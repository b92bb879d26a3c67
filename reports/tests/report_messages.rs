//! The message section of a run page: a run with a journal (`messages.jsonl`) gets the
//! network statistics and a message-flow diagram around its first anomaly; a run
//! without one gets neither.

mod common;

use common::TempDir;
use distest_checkers::net::{NetEvent, NetEventKind};
use distest_reports::render_run;
use serde_json::json;

fn event(
    time_ms: u64,
    kind: NetEventKind,
    id: u64,
    at: &str,
    src: &str,
    dest: &str,
    t: &str,
) -> String {
    serde_json::to_string(&NetEvent {
        time: time_ms * 1_000_000,
        event: kind,
        id,
        at: at.into(),
        src: src.into(),
        dest: dest.into(),
        body_type: Some(t.into()),
        msg_id: Some(id),
        in_reply_to: None,
        reason: None,
    })
    .unwrap()
}

/// A broadcast run: element 1 added at n1, read back at n2 without it; gossip to n2 cut.
fn write_run(dir: &std::path::Path, with_journal: bool) {
    let ops = [
        json!({"index": 0, "time": 1_000_000_000u64, "process": 0, "type": "invoke", "f": "add", "value": 1, "node": "n1"}),
        json!({"index": 1, "time": 1_010_000_000u64, "process": 0, "type": "ok", "f": "add", "value": 1, "node": "n1"}),
        json!({"index": 2, "time": 3_000_000_000u64, "process": 1, "type": "invoke", "f": "read", "value": {"final": true}, "node": "n2"}),
        json!({"index": 3, "time": 3_010_000_000u64, "process": 1, "type": "ok", "f": "read", "value": [], "node": "n2"}),
    ];
    let text: String = ops.iter().map(|o| format!("{o}\n")).collect();
    std::fs::write(dir.join("history.jsonl"), text).unwrap();
    std::fs::write(
        dir.join("test.json"),
        json!({"target": "maelstrom", "workload": "broadcast", "nodes": ["n1", "n2"]}).to_string(),
    )
    .unwrap();
    std::fs::write(
        dir.join("results.json"),
        json!({"valid": false, "checkers": {"set": {"valid": false, "anomalies": ["lost"], "summary": "lost 1", "evidence": {"lost": [{"element": 1, "known_index": 1, "last_absent_read_index": 3}]}}}}).to_string(),
    )
    .unwrap();
    if with_journal {
        use NetEventKind::*;
        let lines = [
            event(1000, Send, 1, "c1", "c1", "n1", "broadcast"),
            event(1001, Deliver, 1, "n1", "c1", "n1", "broadcast"),
            event(1002, Send, 2, "n1", "n1", "n2", "gossip"),
            event(1005, Send, 3, "n1", "n1", "c1", "broadcast_ok"),
            event(1006, Deliver, 3, "c1", "n1", "c1", "broadcast_ok"),
            event(3000, Send, 4, "c2", "c2", "n2", "read"),
            event(3001, Deliver, 4, "n2", "c2", "n2", "read"),
        ];
        std::fs::write(dir.join("messages.jsonl"), lines.join("\n") + "\n").unwrap();
    }
}

#[test]
fn a_run_with_a_journal_shows_msgs_per_op_and_the_message_diagram() {
    let dir = TempDir::new("messages");
    write_run(dir.path(), true);
    let page = std::fs::read_to_string(render_run(dir.path()).unwrap()).unwrap();
    assert!(page.contains("id=\"messages\""), "the section is there");
    assert!(page.contains("msgs-per-op"));
    assert!(
        page.contains("1 network"),
        "the lost gossip is counted as a network drop"
    );
    let svg = std::fs::read_to_string(dir.path().join("messages.svg")).unwrap();
    // The window is around the first anomaly op (the ok add at 1.01 s), widened since the
    // run has few messages: the gossip that never arrived is drawn as lost.
    assert!(svg.contains("class=\"msg lost\""), "{svg}");
    assert!(svg.contains("n1 → n2: gossip"));
    assert!(page.contains("around the first anomaly"));
}

#[test]
fn a_run_without_a_journal_has_no_message_section() {
    let dir = TempDir::new("nomessages");
    write_run(dir.path(), false);
    let page = std::fs::read_to_string(render_run(dir.path()).unwrap()).unwrap();
    assert!(!page.contains("id=\"messages\""));
    assert!(!dir.path().join("messages.svg").exists());
}

#[test]
fn a_broken_journal_is_a_note_not_a_failure() {
    let dir = TempDir::new("badmessages");
    write_run(dir.path(), false);
    std::fs::write(dir.path().join("messages.jsonl"), "{not json\n{}\n").unwrap();
    let page = std::fs::read_to_string(render_run(dir.path()).unwrap()).unwrap();
    assert!(
        page.contains("messages.jsonl is not valid: line 1 is not a journal event"),
        "{page}"
    );
}
