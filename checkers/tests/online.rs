//! Online checking: every checker fed op by op ends with the offline verdict, reports an
//! anomaly at the op that completes it, and holds only the ops of live keys.

mod elle_support;
mod linearizable_support;

use distest_checkers::format::read_history;
use distest_checkers::online::{replay, Anomaly, LastUses, OnlineCheck};
use distest_checkers::{
    build, CheckContext, Checker, CheckerOptions, History, Op, OpType, Process, Validity, Verdict,
};
use linearizable_support::gen::{perturb, simulate, GenConfig};
use linearizable_support::online_support::checked;
use linearizable_support::Hist;
use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use serde_json::{json, Value};

fn checker(name: &str, model: Option<&str>) -> Box<dyn Checker> {
    build(
        name,
        &CheckerOptions {
            model: model.map(str::to_string),
            ..CheckerOptions::default()
        },
    )
    .unwrap()
}

fn testdata(name: &str) -> History {
    let path = format!("{}/../testdata/jepsen/{name}", env!("CARGO_MANIFEST_DIR"));
    read_history(std::fs::File::open(&path).unwrap(), None, &path).unwrap()
}

#[test]
fn every_checker_agrees_online_on_the_sample_jepsen_histories() {
    type Checkers = &'static [(&'static str, Option<&'static str>)];
    let cases: &[(&str, Checkers)] = &[
        (
            "cas-register.edn",
            &[
                ("stats", None),
                ("linearizable", Some("cas-register")),
                ("linearizable", Some("register")),
            ],
        ),
        (
            "cas-register.log",
            &[("stats", None), ("linearizable", Some("cas-register"))],
        ),
        (
            "list-append.edn",
            &[
                ("stats", None),
                ("list-append", None),
                ("rw-register", None),
            ],
        ),
        ("elle-completions.edn", &[("list-append", None)]),
    ];
    for (file, checkers) in cases {
        let history = testdata(file);
        for (name, model) in *checkers {
            checked(checker(name, *model), &history);
        }
    }
}

#[test]
fn elle_checkers_agree_online_on_generated_histories() {
    use elle_support::gen::{history_ops, Params, Workload};
    for seed in 0..6 {
        for (workload, name) in [
            (Workload::ListAppend, "list-append"),
            (Workload::RwRegister, "rw-register"),
        ] {
            let mut p = Params::small(workload, seed);
            p.stale_pct = if seed % 2 == 0 { 30 } else { 0 };
            let history = History::new(history_ops(&p)).unwrap();
            checked(checker(name, None), &history);
            checked(checker("stats", None), &history);
        }
    }
}

/// Independent keyed histories one after another, each on fresh keys and processes: a
/// history of `segments * keys` keys, each retired when its segment ends.
fn rotating_kv(seed: u64, segments: u64, cfg: &GenConfig, bad_segment: Option<u64>) -> History {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut ops: Vec<Op> = Vec::new();
    for s in 0..segments {
        let mut part = simulate(&mut rng, cfg);
        if Some(s) == bad_segment {
            // A read of a value that was never written to its key: surely invalid.
            let at = part
                .iter()
                .position(|o| o.kind == OpType::Ok && o.f == "get")
                .expect("a segment has reads");
            let key = part[at].value[0].clone();
            part[at].value = json!([key, "never-written"]);
        }
        let offset = ops.len() as u64;
        for mut op in part {
            op.index += offset;
            op.time += offset * 1_000;
            if let Process::Client(p) = op.process {
                op.process = Process::Client(p + s * 1_000_000);
            }
            if let Some(k) = op.value.get(0).and_then(Value::as_u64) {
                op.value[0] = json!(k + s * cfg.keys);
            }
            ops.push(op);
        }
    }
    History::new(ops).unwrap()
}

const KV: GenConfig = GenConfig {
    processes: 6,
    ops: 400,
    values: 4,
    keys: 4,
    p_info: 0.05,
    kv: true,
};

#[test]
fn retired_keys_are_dropped_so_memory_follows_the_live_keys_only() {
    let history = rotating_kv(3, 40, &KV, None);
    let ctx = CheckContext::default();
    let checkers = [checker("linearizable", Some("kv")), checker("stats", None)];
    let retired = replay(&history, &checkers, &ctx, true, 64);
    let kept = replay(&history, &checkers, &ctx, false, 64);
    assert_eq!(retired.results, kept.results);
    assert_eq!(
        retired.results.checkers["linearizable"].valid,
        distest_checkers::Validity::Valid
    );
    // One segment is ~800 ops; all 40 are ~32,000.
    assert!(
        retired.max_held_ops < 2 * 2 * KV.ops,
        "held {} ops at most",
        retired.max_held_ops
    );
    assert!(
        kept.max_held_ops >= history.len() - 50,
        "{}",
        kept.max_held_ops
    );
}

#[test]
fn the_first_anomaly_is_reported_at_the_op_that_completes_it_while_the_history_goes_on() {
    let history = rotating_kv(5, 10, &KV, Some(3));
    let ctx = CheckContext::default();
    let offline = checker("linearizable", Some("kv")).check(&history, &ctx);
    let failing = offline.evidence["failing_op"]["completion_index"]
        .as_u64()
        .expect("invalid, with a failing op");
    // Fed op by op with a tick after each op, without retiring anything: the prefix
    // search must see it right after the failing op.
    let mut online = OnlineCheck::new(&[checker("linearizable", Some("kv"))]);
    let mut reported_at = None;
    for op in history.ops() {
        let index = op.index;
        online.push(op.clone(), &ctx).unwrap();
        if !online.tick(&ctx).is_empty() && reported_at.is_none() {
            reported_at = Some(index);
        }
    }
    let first = online
        .first_anomaly()
        .cloned()
        .expect("an anomaly was reported");
    assert_eq!(first.index, failing, "{first:?}");
    assert_eq!(first.checker, "linearizable");
    assert!(first.text.contains("never-written"), "{}", first.text);
    // A tick every op and the growth rule (an eighth more ops since the key's last
    // search): reported within a few ops of the failing one, long before the end.
    let reported_at = reported_at.unwrap();
    assert!(
        reported_at >= failing && reported_at < failing + 200,
        "failing op {failing}, reported after op {reported_at}"
    );
    assert!((reported_at as usize) < history.len() / 2);
    let results = online.finish(&ctx);
    assert_eq!(results.checkers["linearizable"], offline);
}

#[test]
fn counter_set_and_unique_ids_report_at_the_completing_op() {
    let line = |p: u64, kind: OpType, f: &str, value: Value, key: u64| {
        let mut op = Op::invoke(Process::Client(p), f, value).with_key(json!(key));
        op.kind = kind;
        op.node = Some("n2".into());
        op
    };
    let indexed = |ops: Vec<Op>| History::reindexed(ops).unwrap();
    use OpType::*;
    // Counter: an add of 1 is acknowledged, then a read returns 5.
    let counter = indexed(vec![
        line(0, Invoke, "add", json!(1), 7),
        line(0, Ok, "add", json!(1), 7),
        line(1, Invoke, "read", Value::Null, 7),
        line(1, Ok, "read", json!(5), 7),
        line(0, Invoke, "add", json!(1), 7),
        line(0, Ok, "add", json!(1), 7),
    ]);
    // Set: a read lists 1 twice.
    let set = indexed(vec![
        line(0, Invoke, "add", json!(1), 7),
        line(0, Ok, "add", json!(1), 7),
        line(1, Invoke, "read", Value::Null, 7),
        line(1, Ok, "read", json!([1, 1]), 7),
        line(0, Invoke, "add", json!(2), 7),
        line(0, Ok, "add", json!(2), 7),
    ]);
    // Unique ids: the same id twice.
    let ids = indexed(vec![
        line(0, Invoke, "generate", Value::Null, 7),
        line(0, Ok, "generate", json!(10), 7),
        line(1, Invoke, "generate", Value::Null, 7),
        line(1, Ok, "generate", json!(10), 7),
        line(0, Invoke, "generate", Value::Null, 7),
        line(0, Ok, "generate", json!(11), 7),
    ]);
    let ctx = CheckContext::default();
    for (name, history) in [("counter", counter), ("set", set), ("unique-ids", ids)] {
        let mut online = OnlineCheck::new(&[checker(name, None)]);
        for op in history.ops() {
            let found = online.push(op.clone(), &ctx).unwrap().to_vec();
            if op.index == 3 {
                assert_eq!(found.len(), 1, "{name}: reported at op 3: {found:?}");
                assert_eq!(found[0].index, 3);
                assert!(found[0].text.starts_with("key 7: "), "{}", found[0].text);
            } else {
                assert!(found.is_empty(), "{name}: op {}: {found:?}", op.index);
            }
        }
        checked(checker(name, None), &history);
    }
}

#[test]
fn an_op_in_flight_at_a_retirement_is_waited_for() {
    // Key 1 is retired while p1's write is in flight; the write's completion comes
    // later and still counts.
    let h = Hist::new()
        .invoke_key(0, json!(1), "write", json!(1))
        .ok(0, json!(1))
        .invoke_key(1, json!(1), "write", json!(2))
        .invoke_key(0, json!(1), "read", Value::Null)
        .ok(0, json!(2))
        .ok(1, json!(2))
        .build();
    let ctx = CheckContext::default();
    let mut online = OnlineCheck::new(&[checker("linearizable", Some("cas-register"))]);
    for op in h.ops() {
        online.push(op.clone(), &ctx).unwrap();
        if op.index == 4 {
            assert!(online.retire(&json!(1), false, &ctx).is_empty());
            assert!(online.held_ops() > 0, "p1's write is still in flight");
        }
    }
    assert_eq!(online.held_ops(), 0, "the key was judged and dropped");
    let results = online.finish(&ctx);
    assert_eq!(
        results.checkers["linearizable"],
        checker("linearizable", Some("cas-register")).check(&h, &ctx)
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    /// Random keyed histories, some perturbed into invalid ones: online and offline
    /// agree, for linearizability and stats, with and without retirement.
    #[test]
    fn online_agrees_with_offline_on_random_keyed_histories(
        seed in any::<u64>(),
        perturbed in any::<bool>(),
        kv in any::<bool>(),
        keys in 0u64..6,
    ) {
        let cfg = GenConfig { processes: 4, ops: 120, values: 3, keys, p_info: 0.1, kv };
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut ops = simulate(&mut rng, &cfg);
        if perturbed {
            perturb(&mut rng, &mut ops, &cfg);
        }
        let history = History::new(ops).unwrap();
        let model = if kv { "kv" } else { "cas-register" };
        checked(checker("linearizable", Some(model)), &history);
        checked(checker("stats", None), &history);
    }
}

/// A generated txn history of `txns` transactions of 1-4 micro-ops over 20 live keys,
/// in generations (as distest's txn workload rotates them).
fn elle_history(workload: elle_support::gen::Workload, txns: usize, stale_pct: u32) -> History {
    use elle_support::gen::{generate_keyed, Params};
    let mut p = Params::bench(workload, txns, stale_pct);
    p.active_keys = 20;
    let mut ops = Vec::new();
    generate_keyed(&p, true, |op| ops.push(op));
    History::new(ops).unwrap()
}

/// Feeds `history` to the online form of `checker`, retiring each key after its last
/// op: the results of `finish` without the history (a checker that needs it again says
/// so), the anomalies reported with the index of the last op fed before each, and the
/// most ops held at once.
fn feed_online(
    history: &History,
    checker: Box<dyn Checker>,
) -> (Verdict, Vec<(u64, Anomaly)>, usize) {
    let ctx = CheckContext::default();
    let mut uses = LastUses::default();
    history.ops().iter().for_each(|op| uses.push(op));
    let mut retirements = uses.finish();
    let name = checker.name().to_string();
    let mut online = OnlineCheck::new(&[checker]);
    let (mut found, mut max_held) = (Vec::new(), 0);
    for op in history.ops() {
        let index = op.index;
        let mut retired = Vec::new();
        retirements.push(op, |key| retired.push(key.clone()));
        let mut now: Vec<Anomaly> = online.push(op.clone(), &ctx).unwrap().to_vec();
        for key in &retired {
            now.extend_from_slice(online.retire(key, true, &ctx));
        }
        found.extend(now.into_iter().map(|a| (index, a)));
        max_held = max_held.max(online.held_ops());
    }
    let mut results = online.finish(&ctx);
    (results.checkers.remove(&name).unwrap(), found, max_held)
}

#[test]
fn elle_online_memory_stays_flat_on_long_keyed_txn_histories() {
    use elle_support::gen::Workload;
    let ctx = CheckContext::default();
    for (workload, name) in [
        (Workload::ListAppend, "list-append"),
        (Workload::RwRegister, "rw-register"),
    ] {
        let mut held = Vec::new();
        for txns in [2_000, 16_000] {
            let history = elle_history(workload, txns, 0);
            let offline = checker(name, None).check(&history, &ctx);
            assert_eq!(offline.valid, Validity::Valid, "{}", offline.summary);
            let (online, found, max_held) = feed_online(&history, checker(name, None));
            assert!(found.is_empty(), "{found:?}");
            if workload == Workload::ListAppend {
                // Composed from the settled parts alone: `finish` had no history to
                // read again.
                assert_eq!(online, offline, "{name}, {txns} transactions");
            } else {
                // Blind writes nobody read leave version orders open, and the exact
                // search over them is not one the parts' results compose (see
                // elle/online.rs): the verdict reads the history again, and is then
                // the offline one.
                assert!(
                    online.summary.contains("whole recorded history"),
                    "{}",
                    online.summary
                );
                let checkers = [checker(name, None)];
                let replayed = replay(&history, &checkers, &ctx, true, 100);
                assert_eq!(replayed.results.checkers[name], offline);
            }
            held.push(max_held);
        }
        // One generation (20 keys x 16 writes, ~250 transactions) and the next, whatever
        // the length: eight times the transactions, about the same ops held.
        assert!(held[0] < 1_000 && held[1] < 1_000, "{name}: held {held:?}");
        assert!(held[1] < held[0] + 250, "{name}: held {held:?}");
    }
}

/// An isolation checker held to `model`.
fn elle_checker(name: &str, model: &str) -> Box<dyn Checker> {
    build(
        name,
        &CheckerOptions {
            consistency_model: Some(model.to_string()),
            ..CheckerOptions::default()
        },
    )
    .unwrap()
}

#[test]
fn elle_online_composes_the_offline_verdict_without_session_order_and_holds_all_with_process_order()
{
    use elle_support::gen::Workload;
    let ctx = CheckContext::default();
    let history = elle_history(Workload::ListAppend, 3_000, 0);
    // Serializable adds no session order: parts share no edge at all.
    let offline = elle_checker("list-append", "serializable").check(&history, &ctx);
    let (online, _, held) = feed_online(&history, elle_checker("list-append", "serializable"));
    assert_eq!(online, offline);
    assert!(held < 1_000, "{held}");
    // Strong session serializable adds process order, which can close a cycle across
    // parts: the whole history is held, and judged at the end as offline.
    let offline = elle_checker("list-append", "strong-session-serializable").check(&history, &ctx);
    let (online, _, held) = feed_online(
        &history,
        elle_checker("list-append", "strong-session-serializable"),
    );
    assert_eq!(online, offline);
    assert!(held > history.len() / 2, "{held}");
}

#[test]
fn elle_online_reports_an_anomaly_at_the_settling_op_long_before_the_end() {
    use elle_support::gen::Workload;
    let ctx = CheckContext::default();
    let history = elle_history(Workload::ListAppend, 4_000, 5);
    let offline = checker("list-append", None).check(&history, &ctx);
    assert_eq!(offline.valid, Validity::Invalid, "{}", offline.summary);
    let (online, found, _) = feed_online(&history, checker("list-append", None));
    let (fed, first) = found.first().expect("an anomaly reported online");
    // Reported when the op that settled its part was fed, at that op, early on.
    assert_eq!(first.index, *fed, "{first:?}");
    assert!((first.index as usize) < history.len() / 4, "{first:?}");
    assert_eq!(first.checker, "list-append");
    assert!(
        first.text.contains("G-single-item-realtime") || first.text.contains("realtime"),
        "{}",
        first.text
    );
    // Its proof is final: the whole history is invalid with that anomaly among others.
    for (_, a) in &found {
        let named = offline
            .anomalies
            .iter()
            .any(|n| a.text.contains(n.as_str()));
        assert!(named, "{} not in {:?}", a.text, offline.anomalies);
    }
    // The verdict after an anomaly needs the whole history again; without it, it says
    // so instead of guessing; with it (replay), it is the offline one.
    assert_eq!(online.valid, Validity::Unknown);
    assert!(
        online.summary.contains("whole recorded history"),
        "{}",
        online.summary
    );
    let checkers = [checker("list-append", None)];
    let replayed = replay(&history, &checkers, &ctx, true, 100);
    assert_eq!(replayed.results.checkers["list-append"], offline);
}

/// An online form whose verdict always needs the whole history.
struct NeedsHistory(&'static str);

impl distest_checkers::online::OnlineChecker for NeedsHistory {
    fn name(&self) -> &str {
        self.0
    }

    fn completed(&mut self, _: &Op, _: &Op, _: &CheckContext, _: &mut Vec<Anomaly>) {}

    fn finish(self: Box<Self>, _: &CheckContext) -> Verdict {
        panic!("{} needs the history: finish is never called", self.0)
    }

    fn needs_history(&mut self, _: &CheckContext) -> bool {
        true
    }

    fn held_ops(&self) -> usize {
        0
    }
}

#[test]
fn the_checkers_that_need_the_history_again_get_it_from_one_offline_check() {
    use elle_support::gen::Workload;
    let ctx = CheckContext::default();
    // An isolation anomaly: list-append's verdict needs the whole history again.
    let history = elle_history(Workload::ListAppend, 2_000, 5);
    let list_append = checker("list-append", None);
    let offline = list_append.check(&history, &ctx);
    assert_eq!(offline.valid, Validity::Invalid, "{}", offline.summary);
    let mut online = OnlineCheck::of(vec![
        list_append.online(),
        checker("stats", None).online(),
        Box::new(NeedsHistory("double")),
    ]);
    let mut uses = LastUses::default();
    history.ops().iter().for_each(|op| uses.push(op));
    let mut retirements = uses.finish();
    for op in history.ops() {
        let mut retired = Vec::new();
        retirements.push(op, |key| retired.push(key.clone()));
        online.push(op.clone(), &ctx).unwrap();
        for key in &retired {
            online.retire(key, true, &ctx);
        }
    }
    let mut calls = Vec::new();
    let results = online.finish_with(&ctx, |needing| {
        calls.push(needing.to_vec());
        needing
            .iter()
            .map(|&i| match i {
                0 => list_append.check(&history, &ctx),
                _ => Verdict::unknown("the double's offline verdict"),
            })
            .collect()
    });
    // One call for both, in the order the checkers were given; stats finished online.
    assert_eq!(calls, vec![vec![0, 2]]);
    assert_eq!(results.checkers["list-append"], offline);
    assert_eq!(
        results.checkers["double"].summary,
        "the double's offline verdict"
    );
    assert_eq!(
        results.checkers["stats"],
        checker("stats", None).check(&history, &ctx)
    );
}

/// A JSONL history of `pairs` put/ok pairs, each on a fresh key and process, with a blank
/// line after the first op (file lines and op indices differ by one from there on), in
/// which process 3's op ends info and `reuse_at` (an index past the first pairs) is an
/// invocation of process 3 again: a history the offline reader refuses.
fn jsonl_with_reuse_after_info(pairs: u64, reuse_at: u64) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut index = 0;
    for p in 0..pairs {
        let process = if index == reuse_at { 3 } else { p };
        let invoke = Op {
            index,
            time: index,
            ..Op::invoke(Process::Client(process), "put", json!([p, "1"]))
        };
        let kind = if p == 3 { OpType::Info } else { OpType::Ok };
        let done = Op {
            index: index + 1,
            time: index + 1,
            ..invoke.complete(kind, json!([p, "1"]))
        };
        for op in [invoke, done] {
            distest_checkers::format::write_jsonl_line(&op, &mut bytes);
            if op.index == 0 {
                bytes.push(b'\n');
            }
        }
        index += 2;
    }
    bytes
}

#[test]
fn a_streamed_check_refuses_a_bad_op_far_ahead_of_its_reader_as_the_offline_reader_does() {
    // Far enough that the reading thread is several batches ahead of the checking one.
    let bytes = jsonl_with_reuse_after_info(40_000, 60_000);
    let offline = read_history(&bytes[..], None, "h.jsonl").unwrap_err();
    let checkers = [checker("stats", None)];
    let streamed = distest_checkers::online::replay_stream(
        LastUses::default(),
        || Ok(&bytes[..]),
        None,
        "h.jsonl",
        &checkers,
        &CheckContext::default(),
        1 << 14,
    )
    .err()
    .expect("refused");
    assert_eq!(streamed.to_string(), offline.to_string());
    assert!(
        streamed
            .to_string()
            .contains("h.jsonl:60002: op 60000: process 3 was reused after its op 7 ended as info"),
        "{streamed}"
    );
}
