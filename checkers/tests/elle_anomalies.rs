//! Table-driven proof of the Elle checkers: one minimal hand-built history per anomaly,
//! in list-append and in rw-register where both apply, each checked against a
//! representative set of Elle's models with the verdict each must give (written out by
//! hand from Elle's lattice), and against every model name Elle knows for consistency
//! with the lattice.

mod elle_support;
#[path = "online_support/mod.rs"]
mod online_support;

use distest_checkers::elle::{consistency, ElleOptions, Inference, ListAppend, RwRegister};
use distest_checkers::{CheckContext, Checker, History, Validity, Verdict};
use elle_support::H;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;

// Model abbreviations for the expected-verdict tables.
const RU: &str = "read-uncommitted";
const RC: &str = "read-committed";
const RR: &str = "repeatable-read";
const SI: &str = "snapshot-isolation";
const SER: &str = "serializable";
const SS: &str = "strict-serializable";
const CV: &str = "consistent-view";
const CS: &str = "cursor-stability";
const MAV: &str = "monotonic-atomic-view";
const RA: &str = "read-atomic";
const UA: &str = "update-atomic";
const PSI: &str = "parallel-snapshot-isolation";
const US: &str = "update-serializable";
const SSRU: &str = "strong-session-read-uncommitted";
const SSRC: &str = "strong-session-read-committed";
const SSSI: &str = "strong-session-snapshot-isolation";
const SSSER: &str = "strong-session-serializable";
const SRU: &str = "strong-read-uncommitted";
const SRC: &str = "strong-read-committed";
const SSI: &str = "strong-snapshot-isolation";
const LIN: &str = "linearizable";

/// The models every case is checked against with a hand-written expectation.
const REPS: &[&str] = &[
    RU, RC, RR, SI, SER, SS, CV, CS, MAV, RA, UA, PSI, US, SSRU, SSRC, SSSI, SSSER, SRU, SRC, SSI,
    LIN,
];
/// Every transactional model implies read uncommitted.
const ALL: &[&str] = &[
    RU, RC, RR, SI, SER, SS, CV, CS, MAV, RA, UA, PSI, US, SSRU, SSRC, SSSI, SSSER, SRU, SRC, SSI,
];
/// Models that proscribe G1 (G1a, G1b, G1c, and what implies them).
const G1: &[&str] = &[
    RC, RR, SI, SER, SS, CV, CS, MAV, RA, UA, PSI, US, SSRC, SSSI, SSSER, SRC, SSI,
];
/// G-single-item: consistent view (G-single) and repeatable read (G2-item) upwards.
const GSINGLE: &[&str] = &[RR, SI, SER, SS, CV, US, SSSI, SSSER, SSI];
/// G-nonadjacent-item: snapshot isolation (G-nonadjacent) and repeatable read upwards.
const GNONADJ: &[&str] = &[RR, SI, SER, SS, SSSI, SSSER, SSI];
/// G2-item: repeatable read upwards, not snapshot isolation.
const G2ITEM: &[&str] = &[RR, SER, SS, SSSER];
/// Lost update: cursor stability and update atomic upwards (so snapshot isolation too).
const LOST: &[&str] = &[RR, SI, SER, SS, CV, CS, UA, PSI, US, SSSI, SSSER, SSI];
/// Internal inconsistency: read atomic, snapshot isolation, serializable upwards.
const INTERNAL: &[&str] = &[SI, SER, SS, RA, UA, PSI, SSSI, SSSER, SSI];

#[derive(Clone, Copy)]
enum Kind {
    List,
    Register,
}

struct Case {
    name: &'static str,
    kind: Kind,
    history: History,
    /// The model under which the anomaly list is checked.
    model: &'static str,
    inference: Inference,
    /// The anomaly types the checker must report under `model`, exactly.
    anomalies: &'static [&'static str],
    /// The weakest models ruled out, under `model`.
    not: &'static [&'static str],
    /// The representative models under which the verdict must be invalid.
    invalid_under: &'static [&'static str],
}

fn case(
    name: &'static str,
    kind: Kind,
    h: &H,
    anomalies: &'static [&'static str],
    not: &'static [&'static str],
    invalid_under: &'static [&'static str],
) -> Case {
    Case {
        name,
        kind,
        history: h.history(),
        model: SS,
        inference: Inference::default(),
        anomalies,
        not,
        invalid_under,
    }
}

fn under(mut c: Case, model: &'static str) -> Case {
    c.model = model;
    c
}

fn with(mut c: Case, inference: Inference) -> Case {
    c.inference = inference;
    c
}

fn list_append_cases() -> Vec<Case> {
    use Kind::List;
    let mut v = Vec::new();
    // Two writers order their appends differently on two keys.
    let mut h = H::new();
    h.invoke(0, json!([["append", "x", 1], ["append", "y", 1]]))
        .invoke(1, json!([["append", "x", 2], ["append", "y", 2]]))
        .ok(0, json!([["append", "x", 1], ["append", "y", 1]]))
        .ok(1, json!([["append", "x", 2], ["append", "y", 2]]))
        .txn(2, json!([["r", "x", [1, 2]], ["r", "y", [2, 1]]]));
    v.push(case("G0", List, &h, &["G0"], &[RU], ALL));
    let mut h = H::new();
    h.invoke(0, json!([["append", 1, 1]]))
        .fail(0, json!([["append", 1, 1]]))
        .txn(1, json!([["r", 1, [1]]]));
    v.push(case("G1a", List, &h, &["G1a"], &[RC], G1));
    let mut h = H::new();
    h.txn(0, json!([["append", 1, 1], ["append", 1, 2]]))
        .txn(1, json!([["r", 1, [1]]]))
        .txn(2, json!([["r", 1, [1, 2]]]));
    v.push(case("G1b", List, &h, &["G1b"], &[RC], G1));
    let mut h = H::new();
    h.invoke(0, json!([["append", "x", 1], ["r", "y", [1]]]))
        .invoke(1, json!([["append", "y", 1], ["r", "x", [1]]]))
        .ok(0, json!([["append", "x", 1], ["r", "y", [1]]]))
        .ok(1, json!([["append", "y", 1], ["r", "x", [1]]]));
    v.push(case("G1c", List, &h, &["G1c"], &[RC], G1));
    let mut h = H::new();
    h.invoke(0, json!([["append", "x", 1], ["append", "y", 1]]))
        .invoke(1, json!([["r", "x", []], ["r", "y", [1]]]))
        .ok(0, json!([["append", "x", 1], ["append", "y", 1]]))
        .ok(1, json!([["r", "x", []], ["r", "y", [1]]]))
        .txn(2, json!([["r", "x", [1]]]));
    v.push(case(
        "G-single-item",
        List,
        &h,
        &["G-single-item"],
        &[CV, RR],
        GSINGLE,
    ));
    // T1 -rw-> T2 -wr-> T3 -rw-> T4 -wr-> T1
    let t1 = json!([["r", "x", []], ["r", "w", [1]]]);
    let t2 = json!([["append", "x", 1], ["append", "y", 1]]);
    let t3 = json!([["r", "y", [1]], ["r", "z", []]]);
    let t4 = json!([["append", "z", 1], ["append", "w", 1]]);
    let mut h = H::new();
    h.invoke(1, t1.clone())
        .invoke(2, t2.clone())
        .invoke(3, t3.clone())
        .invoke(4, t4.clone())
        .ok(1, t1)
        .ok(2, t2)
        .ok(3, t3)
        .ok(4, t4)
        .txn(5, json!([["r", "x", [1]], ["r", "z", [1]]]));
    v.push(case(
        "G-nonadjacent-item",
        List,
        &h,
        &["G-nonadjacent-item"],
        &[RR, SI],
        GNONADJ,
    ));
    let t1 = json!([["r", "x", []], ["r", "y", []], ["append", "x", 1]]);
    let t2 = json!([["r", "x", []], ["r", "y", []], ["append", "y", 1]]);
    let mut h = H::new();
    h.invoke(0, t1.clone())
        .invoke(1, t2.clone())
        .ok(0, t1)
        .ok(1, t2)
        .txn(2, json!([["r", "x", [1]], ["r", "y", [1]]]));
    v.push(case(
        "G2-item (write skew)",
        List,
        &h,
        &["G2-item"],
        &[RR],
        G2ITEM,
    ));
    let t1 = json!([["r", "x", []], ["append", "x", 1]]);
    let t2 = json!([["r", "x", []], ["append", "x", 2]]);
    let mut h = H::new();
    h.invoke(0, t1.clone())
        .invoke(1, t2.clone())
        .ok(0, t1)
        .ok(1, t2);
    v.push(case(
        "lost-update",
        List,
        &h,
        &["G2-item", "lost-update"],
        &[CS, UA],
        LOST,
    ));
    let mut h = H::new();
    h.txn(0, json!([["append", "x", 1], ["r", "x", []]]));
    v.push(case("internal", List, &h, &["internal"], &[RA], INTERNAL));
    let mut h = H::new();
    h.invoke(0, json!([["append", "x", 1]]))
        .fail(0, json!([["append", "x", 1]]))
        .txn(1, json!([["append", "x", 2]]))
        .txn(2, json!([["r", "x", [1, 2]]]));
    v.push(case(
        "dirty-update",
        List,
        &h,
        &["G1a", "dirty-update"],
        &[RC],
        G1,
    ));
    let mut h = H::new();
    h.txn(0, json!([["r", "x", [1]], ["append", "x", 1]]));
    v.push(case("future-read", List, &h, &["future-read"], &[RC], G1));
    let mut h = H::new();
    h.txn(0, json!([["append", "x", 1]]))
        .txn(1, json!([["r", "x", [1, 1]]]));
    v.push(case(
        "duplicate-elements",
        List,
        &h,
        &["duplicate-elements"],
        &[RU],
        ALL,
    ));
    let mut h = H::new();
    h.txn(0, json!([["r", "x", [9]]]));
    v.push(case(
        "garbage-read",
        List,
        &h,
        &["garbage-read"],
        &[RU],
        ALL,
    ));
    let mut h = H::new();
    h.txn(0, json!([["append", "x", 1]]))
        .txn(1, json!([["append", "x", 2]]))
        .txn(2, json!([["r", "x", [1, 2]]]))
        .txn(3, json!([["r", "x", [2, 1]]]));
    v.push(case(
        "incompatible-order",
        List,
        &h,
        &["incompatible-order"],
        &[RC],
        G1,
    ));
    // One transaction's appends read back in the reverse order: the read's version order
    // contradicts the transaction's own (and the read ends on its first append).
    let mut h = H::new();
    h.txn(0, json!([["append", "x", 1], ["append", "x", 2]]))
        .txn(1, json!([["r", "x", [2, 1]]]));
    v.push(case(
        "cyclic-versions (appends out of their transaction's order)",
        List,
        &h,
        &["G1b", "cyclic-versions"],
        &[RU],
        ALL,
    ));
    // An append missing from before the next transaction's version.
    let mut h = H::new();
    h.txn(0, json!([["append", "x", 1], ["append", "x", 2]]))
        .txn(1, json!([["append", "x", 3]]))
        .txn(2, json!([["r", "x", [1, 3]]]));
    v.push(case(
        "cyclic-versions (an append missing between versions)",
        List,
        &h,
        &["cyclic-versions"],
        &[RU],
        ALL,
    ));
    // A stale read: T2 starts after T1 finished yet misses T1's append.
    let mut h = H::new();
    h.txn(0, json!([["append", "x", 1]]))
        .txn(1, json!([["r", "x", []]]))
        .txn(2, json!([["r", "x", [1]]]));
    v.push(case(
        "G-single-item-realtime",
        List,
        &h,
        &["G-single-item-realtime"],
        &[SSI],
        &[SSI, SS],
    ));
    // A process misses its own earlier append: process order under the session
    // models, realtime order under the strong ones.
    let mut h = H::new();
    h.txn(0, json!([["append", "x", 1]]))
        .txn(0, json!([["r", "x", []]]))
        .txn(1, json!([["r", "x", [1]]]));
    v.push(under(
        case(
            "G-single-item-process",
            List,
            &h,
            &["G-single-item-process"],
            &[SSSI],
            &[SSSI, SSSER, SSI, SS],
        ),
        SSSI,
    ));
    let mut h = H::new();
    h.txn(0, json!([["r", "x", [1]]]))
        .txn(1, json!([["append", "x", 1]]));
    v.push(case(
        "G1c-realtime",
        List,
        &h,
        &["G1c-realtime"],
        &[SRC],
        &[SRC, SSI, SS],
    ));
    let mut h = H::new();
    h.txn(0, json!([["r", "x", [1]]]))
        .txn(0, json!([["append", "x", 1]]));
    v.push(under(
        case(
            "G1c-process",
            List,
            &h,
            &["G1c-process"],
            &[SSRC],
            &[SSRC, SSSI, SSSER, SRC, SSI, SS],
        ),
        SSRC,
    ));
    let mut h = H::new();
    h.txn(0, json!([["append", "x", 1]]))
        .txn(1, json!([["append", "x", 2]]))
        .txn(2, json!([["r", "x", [2, 1]]]));
    v.push(case(
        "G0-realtime",
        List,
        &h,
        &["G0-realtime"],
        &[SRU],
        &[SRU, SRC, SSI, SS],
    ));
    let mut h = H::new();
    h.txn(0, json!([["append", "x", 1]]))
        .txn(0, json!([["append", "x", 2]]))
        .txn(1, json!([["r", "x", [2, 1]]]));
    v.push(under(
        case(
            "G0-process",
            List,
            &h,
            &["G0-process"],
            &[SSRU],
            &[SSRU, SSRC, SSSI, SSSER, SRU, SRC, SSI, SS],
        ),
        SSRU,
    ));
    // T1 -rw-> T2 -rw-> T3, and T3 completed before T1 began: two adjacent rw edges
    // and a realtime one. Strict serializability forbids it, strong SI allows it.
    let h = adjacent_rw_closed_by_time([1, 2, 3]);
    v.push(case(
        "G2-item-realtime",
        List,
        &h,
        &["G2-item-realtime"],
        &[SS],
        &[SS],
    ));
    // T1 -rw-> T2 -wr-> T3 -rw-> T4, and T4 completed before T1 began: non-adjacent rw
    // edges closed by real time.
    let t1 = json!([["r", "x", []]]);
    let t2 = json!([["append", "x", 1], ["append", "y", 1]]);
    let t3 = json!([["r", "y", [1]], ["r", "z", []]]);
    let t4 = json!([["append", "z", 1]]);
    let mut h = H::new();
    h.invoke(2, t2.clone())
        .invoke(3, t3.clone())
        .invoke(4, t4.clone())
        .ok(4, t4)
        .invoke(1, t1.clone())
        .ok(1, t1)
        .ok(2, t2)
        .ok(3, t3)
        .txn(5, json!([["r", "x", [1]], ["r", "z", [1]]]));
    v.push(case(
        "G-nonadjacent-item-realtime",
        List,
        &h,
        &["G-nonadjacent-item-realtime"],
        &[SSI],
        &[SSI, SS],
    ));
    // T1 -rw-> T2 -rw-> T3, T3 before T1 on process 0: adjacent rw edges closed by the
    // process order (realtime order under the strong models).
    let h = adjacent_rw_closed_by_time([0, 1, 0]);
    v.push(under(
        case(
            "G2-item-process",
            List,
            &h,
            &["G2-item-process"],
            &[SSSER],
            &[SSSER, SS],
        ),
        SSSER,
    ));
    let mut h = H::new();
    h.txn(0, json!([["append", "x", 1], ["r", "x", [1]]]))
        .txn(
            1,
            json!([["r", "x", [1]], ["append", "x", 2], ["r", "y", []]]),
        )
        .txn(0, json!([["r", "x", [1, 2]]]));
    v.push(case("serial history", List, &h, &[], &[], &[]));
    let mut h = H::new();
    h.invoke(0, json!([["append", "x", 1]]))
        .info(0, json!([["append", "x", 1]]))
        .txn(1, json!([["r", "x", [1]]]));
    v.push(case("info append explains a read", List, &h, &[], &[], &[]));
    v
}

fn rw_register_cases() -> Vec<Case> {
    use Kind::Register;
    let mut v = Vec::new();
    let sequential = Inference {
        sequential_keys: true,
        ..Inference::default()
    };
    // Elle's own G0 case: T1 < T2 on x, T2 < T1 on y, each process reading back the
    // other's value afterwards; only sequential keys order the writes.
    let mut h = H::new();
    h.txn(0, json!([["w", "x", 1], ["w", "y", 2]]))
        .txn(1, json!([["w", "x", 2], ["w", "y", 1]]))
        .txn(0, json!([["r", "x", 2]]))
        .txn(1, json!([["r", "y", 2]]));
    v.push(under(
        with(case("G0", Register, &h, &["G0"], &[RU], ALL), sequential),
        RU,
    ));
    let mut h = H::new();
    h.invoke(0, json!([["w", 1, 1]]))
        .fail(0, json!([["w", 1, 1]]))
        .txn(1, json!([["r", 1, 1]]));
    v.push(case("G1a", Register, &h, &["G1a"], &[RC], G1));
    let mut h = H::new();
    h.txn(0, json!([["w", 1, 1], ["w", 1, 2]]))
        .txn(1, json!([["r", 1, 1]]));
    v.push(case("G1b", Register, &h, &["G1b"], &[RC], G1));
    let t1 = json!([["w", "x", 1], ["r", "y", 1]]);
    let t2 = json!([["w", "y", 1], ["r", "x", 1]]);
    let mut h = H::new();
    h.invoke(0, t1.clone())
        .invoke(1, t2.clone())
        .ok(0, t1)
        .ok(1, t2);
    v.push(case("G1c", Register, &h, &["G1c"], &[RC], G1));
    let t1 = json!([["w", "x", 1], ["w", "y", 1]]);
    let t2 = json!([["r", "x", null], ["r", "y", 1]]);
    let mut h = H::new();
    h.invoke(0, t1.clone())
        .invoke(1, t2.clone())
        .ok(0, t1)
        .ok(1, t2);
    v.push(case(
        "G-single-item",
        Register,
        &h,
        &["G-single-item"],
        &[CV, RR],
        GSINGLE,
    ));
    let t1 = json!([["r", "x", null], ["r", "w", 1]]);
    let t2 = json!([["w", "x", 1], ["w", "y", 1]]);
    let t3 = json!([["r", "y", 1], ["r", "z", null]]);
    let t4 = json!([["w", "z", 1], ["w", "w", 1]]);
    let mut h = H::new();
    h.invoke(1, t1.clone())
        .invoke(2, t2.clone())
        .invoke(3, t3.clone())
        .invoke(4, t4.clone())
        .ok(1, t1)
        .ok(2, t2)
        .ok(3, t3)
        .ok(4, t4);
    v.push(case(
        "G-nonadjacent-item",
        Register,
        &h,
        &["G-nonadjacent-item"],
        &[RR, SI],
        GNONADJ,
    ));
    let t1 = json!([["r", "x", null], ["r", "y", null], ["w", "x", 1]]);
    let t2 = json!([["r", "x", null], ["r", "y", null], ["w", "y", 1]]);
    let mut h = H::new();
    h.invoke(0, t1.clone())
        .invoke(1, t2.clone())
        .ok(0, t1)
        .ok(1, t2);
    v.push(case(
        "G2-item (write skew)",
        Register,
        &h,
        &["G2-item"],
        &[RR],
        G2ITEM,
    ));
    let mut h = H::new();
    h.txn(0, json!([["w", "x", 1], ["r", "x", null]]));
    v.push(case(
        "internal",
        Register,
        &h,
        &["internal"],
        &[RA],
        INTERNAL,
    ));
    let t1 = json!([["r", "x", null], ["w", "x", 1]]);
    let t2 = json!([["r", "x", null], ["w", "x", 2]]);
    let mut h = H::new();
    h.invoke(0, t1.clone())
        .invoke(1, t2.clone())
        .ok(0, t1)
        .ok(1, t2);
    v.push(case(
        "lost-update",
        Register,
        &h,
        &["G2-item", "lost-update"],
        &[CS, UA],
        LOST,
    ));
    let mut h = H::new();
    h.txn(0, json!([["r", "x", 1], ["w", "x", 1]]));
    v.push(case(
        "future-read",
        Register,
        &h,
        &["future-read"],
        &[RC],
        G1,
    ));
    let mut h = H::new();
    h.txn(0, json!([["r", "x", 7]]));
    v.push(case(
        "garbage-read",
        Register,
        &h,
        &["garbage-read"],
        &[RU],
        ALL,
    ));
    let mut h = H::new();
    h.txn(0, json!([["w", "x", 1]]))
        .txn(1, json!([["r", "x", null]]));
    v.push(case(
        "G-single-item-realtime",
        Register,
        &h,
        &["G-single-item-realtime"],
        &[SSI],
        &[SSI, SS],
    ));
    let mut h = H::new();
    h.txn(0, json!([["w", "x", 1]]))
        .txn(0, json!([["r", "x", null]]));
    v.push(under(
        case(
            "G-single-item-process",
            Register,
            &h,
            &["G-single-item-process"],
            &[SSSI],
            &[SSSI, SSSER, SSI, SS],
        ),
        SSSI,
    ));
    let mut h = H::new();
    h.txn(0, json!([["r", "x", 1]]))
        .txn(1, json!([["w", "x", 1]]));
    v.push(case(
        "G1c-realtime",
        Register,
        &h,
        &["G1c-realtime"],
        &[SRC],
        &[SRC, SSI, SS],
    ));
    let mut h = H::new();
    h.txn(0, json!([["r", "x", 1]]))
        .txn(0, json!([["w", "x", 1]]));
    v.push(under(
        case(
            "G1c-process",
            Register,
            &h,
            &["G1c-process"],
            &[SSRC],
            &[SSRC, SSSI, SSSER, SRC, SSI, SS],
        ),
        SSRC,
    ));
    // One process wrote 1, then 2; the database says 2 was installed first.
    let mut h = H::new();
    h.txn(0, json!([["w", "x", 1]]))
        .txn(0, json!([["w", "x", 2]]));
    let order: BTreeMap<u64, i64> = [(1, 2), (3, 1)].into_iter().collect();
    v.push(under(
        with(
            case(
                "G0-process",
                Register,
                &h,
                &["G0-process"],
                &[SSRU],
                &[SSRU, SSRC, SSSI, SSSER, SRU, SRC, SSI, SS],
            ),
            Inference {
                transaction_order: Some(Arc::new(order)),
                ..Inference::default()
            },
        ),
        SSRU,
    ));
    // The database's own commit order says T1's write of 2 came before T0's 1, though
    // T0 completed before T1 began.
    let mut h = H::new();
    h.txn(0, json!([["w", "x", 1]]))
        .txn(1, json!([["w", "x", 2]]));
    let order: BTreeMap<u64, i64> = [(1, 2), (3, 1)].into_iter().collect();
    v.push(with(
        case(
            "G0-realtime",
            Register,
            &h,
            &["G0-realtime"],
            &[SRU],
            &[SRU, SRC, SSI, SS],
        ),
        Inference {
            transaction_order: Some(Arc::new(order)),
            ..Inference::default()
        },
    ));
    // Elle's cyclic version order: one process writes 1, then 2, then reads 1.
    let mut h = H::new();
    h.txn(0, json!([["w", "x", 1]]))
        .txn(0, json!([["w", "x", 2]]))
        .txn(0, json!([["r", "x", 1]]));
    v.push(under(
        with(
            case(
                "cyclic-versions",
                Register,
                &h,
                &["cyclic-versions"],
                &[RU],
                ALL,
            ),
            Inference {
                sequential_keys: true,
                ..Inference::default()
            },
        ),
        RU,
    ));
    let mut h = H::new();
    h.txn(0, json!([["w", "x", 1]]))
        .txn(1, json!([["r", "x", 1], ["w", "x", 2]]))
        .txn(0, json!([["r", "x", 2], ["r", "y", null]]));
    v.push(case("serial history", Register, &h, &[], &[], &[]));
    v
}

fn run(c: &Case, model: &str) -> Verdict {
    let options =
        ElleOptions::from_names("test", &[model.to_string()], &[], c.inference.clone()).unwrap();
    let ctx = CheckContext::default();
    match c.kind {
        Kind::List => ListAppend { options }.check(&c.history, &ctx),
        Kind::Register => RwRegister { options }.check(&c.history, &ctx),
    }
}

fn check_table(cases: Vec<Case>) {
    let mut failures = Vec::new();
    for c in &cases {
        let v = run(c, c.model);
        let mut want: Vec<&str> = c.anomalies.to_vec();
        want.sort_unstable();
        if v.anomalies != want {
            failures.push(format!(
                "{}: under {} expected anomalies {want:?}, got {:?}\n{}",
                c.name, c.model, v.anomalies, v.explanation
            ));
        }
        if v.evidence["not"] != json!(c.not) {
            failures.push(format!(
                "{}: expected not {:?}, got {}",
                c.name, c.not, v.evidence["not"]
            ));
        }
        for a in c.anomalies {
            let listed = v.evidence["anomalies"][a].as_array().map_or(0, Vec::len);
            if listed == 0 {
                failures.push(format!("{}: no evidence case for {a}", c.name));
            }
        }
        if !c.anomalies.is_empty() && v.explanation.is_empty() {
            failures.push(format!("{}: empty explanation", c.name));
        }
        for &model in REPS {
            let v = run(c, model);
            let expected = if c.invalid_under.contains(&model) {
                Validity::Invalid
            } else if v.evidence["stats"]["edges"] == json!(0) {
                // Elle's empty-transaction-graph: nothing tested.
                Validity::Unknown
            } else {
                Validity::Valid
            };
            if v.valid != expected {
                failures.push(format!(
                    "{}: under {model} expected {expected}, got {}: {}\n{}",
                    c.name, v.valid, v.summary, v.explanation
                ));
            }
        }
        // Every name of Elle's lattice: invalid exactly when an anomaly found under it
        // is one the model proscribes.
        for &model in consistency::model_names() {
            let v = run(c, model);
            let canonical = consistency::canonical(model).unwrap();
            let prohibited = consistency::prohibited(&[canonical], &[]);
            let fails = v.anomalies.iter().any(|a| prohibited.contains(a.as_str()));
            if (v.valid == Validity::Invalid) != fails {
                failures.push(format!(
                    "{}: under {model} got {} with {:?}",
                    c.name, v.valid, v.anomalies
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The online form, fed each case in recording order (keys retired and not), ends with
/// exactly the offline verdict under every representative model, and what it reports
/// on the way the offline check finds (see `online_support`).
#[test]
fn every_case_gets_the_offline_verdict_online_under_every_model() {
    for c in list_append_cases().iter().chain(rw_register_cases().iter()) {
        for &model in REPS {
            let options =
                ElleOptions::from_names("test", &[model.to_string()], &[], c.inference.clone())
                    .unwrap();
            let checker: Box<dyn Checker> = match c.kind {
                Kind::List => Box::new(ListAppend { options }),
                Kind::Register => Box::new(RwRegister { options }),
            };
            online_support::checked(checker, &c.history);
        }
    }
}

#[test]
fn every_list_append_anomaly_gets_the_right_verdict_under_every_model() {
    check_table(list_append_cases());
}

#[test]
fn every_rw_register_anomaly_gets_the_right_verdict_under_every_model() {
    check_table(rw_register_cases());
}

#[test]
fn g_single_evidence_walks_the_cycle_step_by_step() {
    let cases = list_append_cases();
    let c = cases.iter().find(|c| c.name == "G-single-item").unwrap();
    let v = run(c, SS);
    let case = &v.evidence["anomalies"]["G-single-item"][0];
    let cycle = case["cycle"].as_array().unwrap();
    let steps = case["steps"].as_array().unwrap();
    assert_eq!(cycle.len(), 2);
    assert_eq!(steps.len(), 2);
    let types: Vec<&str> = steps.iter().map(|s| s["type"].as_str().unwrap()).collect();
    assert!(types.contains(&"rw") && types.contains(&"wr"), "{types:?}");
    for s in steps {
        assert!(s["why"].as_str().unwrap().ends_with(")."), "{s}");
        assert!(!s["key"].is_null(), "{s}");
    }
    assert_eq!(
        v.evidence["not"],
        json!(["consistent-view", "repeatable-read"])
    );
    assert!(
        v.explanation.contains("appended 1 to key \"y\""),
        "{}",
        v.explanation
    );
    assert!(v.explanation.contains("without 1"), "{}", v.explanation);
}

#[test]
fn unknown_consistency_model_lists_the_valid_ones() {
    let err = distest_checkers::build(
        "list-append",
        &distest_checkers::CheckerOptions {
            consistency_model: Some("serialisable".into()),
            ..Default::default()
        },
    )
    .err()
    .expect("a typo is refused");
    let text = err.to_string();
    assert!(
        text.contains("strict-serializable") && text.contains("PL-2.99"),
        "{text}"
    );
    let default = distest_checkers::build("rw-register", &Default::default()).unwrap();
    assert_eq!(default.name(), "rw-register");
}

#[test]
fn malformed_or_empty_histories_are_unknown_not_a_panic() {
    let c = Case {
        history: {
            let mut h = H::new();
            h.txn(0, json!([["append", "x"]]));
            h.history()
        },
        ..case("malformed", Kind::List, &H::new(), &[], &[], &[])
    };
    let v = run(&c, SS);
    assert_eq!(v.valid, Validity::Unknown);
    assert!(v.summary.contains("3-element"), "{}", v.summary);
    let c = case("empty", Kind::Register, &H::new(), &[], &[], &[]);
    assert_eq!(run(&c, SS).valid, Validity::Unknown);
    let mut h = H::new();
    h.txn(0, json!([["w", "x", 1]]))
        .txn(1, json!([["w", "x", 1]]));
    let c = case("duplicate write", Kind::Register, &h, &[], &[], &[]);
    let v = run(&c, SS);
    assert_eq!(v.valid, Validity::Unknown);
    assert!(v.summary.contains("unique"), "{}", v.summary);
}

#[test]
fn a_history_with_no_dependency_is_unknown_as_in_elle() {
    // One transaction: nothing relates it to anything, so nothing was tested.
    let mut h = H::new();
    h.txn(0, json!([["append", "x", 1], ["r", "x", [1]]]));
    let c = case("single", Kind::List, &h, &[], &[], &[]);
    let v = run(&c, SER);
    assert_eq!(v.valid, Validity::Unknown, "{}", v.summary);
    assert_eq!(v.evidence["unknown"], json!(["empty-transaction-graph"]));
    assert!(
        v.summary.contains("empty-transaction-graph"),
        "{}",
        v.summary
    );
}

#[test]
fn explanation_text_reads_as_a_story() {
    let cases = list_append_cases();
    let c = cases
        .iter()
        .find(|c| c.name == "G-nonadjacent-item")
        .unwrap();
    let v = run(c, SS);
    assert!(
        v.explanation.starts_with(
            "G-nonadjacent-item: a cycle of 4 transactions, T1 -> T2 -> T3 -> T4 -> T1"
        ),
        "{}",
        v.explanation
    );
    // T1 is the earliest transaction of the cycle, and each step is one numbered sentence.
    assert!(v.explanation.contains("T1 = #4 p1 ok"), "{}", v.explanation);
    for i in 1..=4 {
        assert!(
            v.explanation.contains(&format!("  {i}. T{i} ")),
            "{}",
            v.explanation
        );
    }
    assert!(
        v.summary.contains("repeatable-read, snapshot-isolation"),
        "{}",
        v.summary
    );
}

/// T1 -rw-> T2 -rw-> T3, and T3 completes before T1 begins (T2 spans both); T1, T2, T3
/// on `processes` (T3 and T1 on one process: process order too). A last reader sees
/// every append.
fn adjacent_rw_closed_by_time(processes: [u64; 3]) -> H {
    let [p1, p2, p3] = processes;
    let t1 = json!([["r", "x", []]]);
    let t2 = json!([["append", "x", 1], ["r", "y", []]]);
    let t3 = json!([["append", "y", 1]]);
    let mut h = H::new();
    h.invoke(p2, t2.clone())
        .invoke(p3, t3.clone())
        .ok(p3, t3)
        .invoke(p1, t1.clone())
        .ok(p1, t1)
        .ok(p2, t2)
        .txn(
            p1.max(p2).max(p3) + 1,
            json!([["r", "x", [1]], ["r", "y", [1]]]),
        );
    h
}
