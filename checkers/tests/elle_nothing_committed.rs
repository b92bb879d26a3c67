//! A transactional history where nothing committed proves nothing: unknown, not valid.

use distest_checkers::{
    build, CheckContext, CheckerOptions, History, Op, OpType, Process, Validity,
};
use serde_json::json;

#[test]
fn a_history_where_no_transaction_committed_is_unknown() {
    for (name, write) in [("list-append", "append"), ("rw-register", "w")] {
        let mut ops = Vec::new();
        for p in 0..3u64 {
            let inv = Op::invoke(
                Process::Client(p),
                "txn",
                json!([[write, 1, p], ["r", 1, null]]),
            );
            let kind = if p == 0 { OpType::Info } else { OpType::Fail };
            ops.push(inv.clone());
            ops.push(inv.complete(kind, inv.value.clone()));
        }
        let history = History::reindexed(ops).unwrap();
        let checker = build(name, &CheckerOptions::default()).unwrap();
        let verdict = checker.check(&history, &CheckContext::default());
        assert_eq!(verdict.valid, Validity::Unknown, "{name}: {verdict:?}");
        assert!(verdict.summary.contains("committed"), "{}", verdict.summary);
    }
}
