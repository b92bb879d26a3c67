//! Hand-built histories with known verdicts, for every model of the `linearizable` checker.

mod linearizable_support;

use distest_checkers::linear::{check_history, Linearizable, ModelKind};
use distest_checkers::{build, CheckContext, CheckerOptions, RegistryError, Validity};
use linearizable_support::{assert_validity, check, Hist};
use serde_json::json;

// ---- register / cas-register ----

#[test]
fn register_sequential_write_then_read_is_valid() {
    let h = Hist::new()
        .call(0, "write", json!(1), json!(1))
        .call(1, "read", json!(null), json!(1))
        .build();
    assert_validity(&check(&h, "register"), Validity::Valid);
}

#[test]
fn register_initial_value_is_null() {
    let h = Hist::new()
        .call(0, "read", json!(null), json!(null))
        .build();
    assert_validity(&check(&h, "register"), Validity::Valid);
    let h = Hist::new().call(0, "read", json!(null), json!(0)).build();
    assert_validity(&check(&h, "register"), Validity::Invalid);
}

#[test]
fn register_stale_read_is_invalid_with_a_counterexample() {
    let h = Hist::new()
        .call(0, "write", json!(1), json!(1))
        .call(0, "write", json!(2), json!(2))
        .call(1, "read", json!(null), json!(1))
        .call(1, "read", json!(null), json!(2))
        .build();
    let v = check(&h, "register");
    assert_validity(&v, Validity::Invalid);
    assert_eq!(v.anomalies, vec!["nonlinearizable".to_string()]);
    let e = &v.evidence;
    assert_eq!(e["failing_op"]["index"], json!(4), "{e:#}");
    assert_eq!(e["observed"], json!(1));
    assert_eq!(e["possible_states"], json!([2]));
    assert_eq!(e["linearizable_prefix"]["length"], json!(2));
    // The window holds the read and the write that set the state it should have seen.
    let window: Vec<_> = e["ops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["index"].clone())
        .collect();
    assert_eq!(window, vec![json!(2), json!(4)]);
    assert!(
        v.explanation.contains("p1 read null → ok 1 (#4–#5)"),
        "{}",
        v.explanation
    );
    assert!(
        v.explanation.contains("the state was 2"),
        "{}",
        v.explanation
    );
}

#[test]
fn register_read_concurrent_with_write_may_see_either_value() {
    for seen in [json!(null), json!(1)] {
        let h = Hist::new()
            .invoke(0, "write", json!(1))
            .call(1, "read", json!(null), seen.clone())
            .ok(0, json!(1))
            .build();
        assert_validity(&check(&h, "register"), Validity::Valid);
    }
}

#[test]
fn register_reads_cannot_go_back_in_time() {
    // Both reads overlap the write, but the second starts after the first ended.
    let h = Hist::new()
        .invoke(0, "write", json!(1))
        .call(1, "read", json!(null), json!(1))
        .call(2, "read", json!(null), json!(null))
        .ok(0, json!(1))
        .build();
    assert_validity(&check(&h, "register"), Validity::Invalid);
}

#[test]
fn failed_write_did_not_happen() {
    let h = Hist::new()
        .invoke(0, "write", json!(1))
        .fail(0, json!(1))
        .call(1, "read", json!(null), json!(1))
        .build();
    assert_validity(&check(&h, "register"), Validity::Invalid);
}

#[test]
fn info_write_may_take_effect_much_later_or_never() {
    let later = Hist::new()
        .invoke(0, "write", json!(1))
        .info(0, json!(1))
        .call(1, "read", json!(null), json!(null))
        .call(1, "read", json!(null), json!(1))
        .build();
    assert_validity(&check(&later, "register"), Validity::Valid);
    let never = Hist::new()
        .invoke(0, "write", json!(1))
        .info(0, json!(1))
        .call(1, "read", json!(null), json!(null))
        .build();
    assert_validity(&check(&never, "register"), Validity::Valid);
    // Once it is seen it has happened: a later read cannot see the old value again.
    let undone = Hist::new()
        .invoke(0, "write", json!(1))
        .info(0, json!(1))
        .call(1, "read", json!(null), json!(1))
        .call(1, "read", json!(null), json!(null))
        .build();
    assert_validity(&check(&undone, "register"), Validity::Invalid);
}

#[test]
fn missing_completion_counts_as_info() {
    let h = Hist::new()
        .invoke(0, "write", json!(1))
        .call(1, "read", json!(null), json!(null))
        .call(1, "read", json!(null), json!(1))
        .build();
    assert_validity(&check(&h, "register"), Validity::Valid);
}

#[test]
fn info_read_constrains_nothing_and_nemesis_ops_are_ignored() {
    let h = Hist::new()
        .nemesis("start-partition", json!("majority"))
        .call(0, "write", json!(1), json!(1))
        .invoke(1, "read", json!(null))
        .info(1, json!(null))
        .nemesis("stop-partition", json!(null))
        .call(2, "read", json!(null), json!(1))
        .build();
    assert_validity(&check(&h, "register"), Validity::Valid);
}

#[test]
fn register_model_rejects_cas_with_a_pointer_to_cas_register() {
    let h = Hist::new()
        .call(0, "cas", json!([null, 1]), json!([null, 1]))
        .build();
    let v = check(&h, "register");
    assert_validity(&v, Validity::Unknown);
    assert!(v.summary.contains("cas-register"), "{}", v.summary);
}

#[test]
fn cas_register_cas_succeeds_only_on_a_match() {
    let ok = Hist::new()
        .call(0, "write", json!(0), json!(0))
        .call(1, "cas", json!([0, 1]), json!([0, 1]))
        .call(2, "read", json!(null), json!(1))
        .build();
    assert_validity(&check(&ok, "cas-register"), Validity::Valid);
    let bad = Hist::new()
        .call(0, "write", json!(0), json!(0))
        .call(1, "cas", json!([5, 1]), json!([5, 1]))
        .build();
    assert_validity(&check(&bad, "cas-register"), Validity::Invalid);
}

#[test]
fn cas_register_info_cas_may_or_may_not_have_happened() {
    for seen in [json!(0), json!(1)] {
        let h = Hist::new()
            .call(0, "write", json!(0), json!(0))
            .invoke(1, "cas", json!([0, 1]))
            .info(1, json!([0, 1]))
            .call(2, "read", json!(null), seen)
            .build();
        assert_validity(&check(&h, "cas-register"), Validity::Valid);
    }
}

#[test]
fn cas_needs_an_old_new_pair() {
    let h = Hist::new().call(0, "cas", json!(3), json!(3)).build();
    let v = check(&h, "cas-register");
    assert_validity(&v, Validity::Unknown);
    assert!(v.summary.contains("[old new]"), "{}", v.summary);
}

// ---- kv ----

#[test]
fn kv_unwritten_key_reads_empty_and_append_concatenates() {
    let k = || json!("k");
    let h = Hist::new()
        .invoke_key(0, k(), "get", json!(null))
        .ok(0, json!(""))
        .invoke_key(0, k(), "put", json!("a"))
        .ok(0, json!("a"))
        .invoke_key(1, k(), "append", json!("b"))
        .ok(1, json!("b"))
        .invoke_key(2, k(), "get", json!(null))
        .ok(2, json!("ab"))
        .build();
    assert_validity(&check(&h, "kv"), Validity::Valid);
}

#[test]
fn kv_append_order_is_checked() {
    let h = Hist::new()
        .call(0, "put", json!(["k", "a"]), json!(["k", "a"]))
        .call(1, "append", json!(["k", "b"]), json!(["k", "b"]))
        .call(2, "get", json!(["k", null]), json!(["k", "ba"]))
        .build();
    let v = check(&h, "kv");
    assert_validity(&v, Validity::Invalid);
    assert_eq!(v.evidence["key"], json!("k"));
    assert_eq!(v.evidence["possible_states"], json!(["ab"]));
}

#[test]
fn kv_keys_are_independent_and_the_bad_key_is_reported() {
    let h = Hist::new()
        .call(0, "write", json!([1, "x"]), json!([1, "x"]))
        .call(1, "write", json!([2, "y"]), json!([2, "y"]))
        .call(0, "read", json!([1, null]), json!([1, "x"]))
        .call(1, "read", json!([2, null]), json!([2, "x"]))
        .build();
    let v = check(&h, "kv");
    assert_validity(&v, Validity::Invalid);
    assert_eq!(v.evidence["key"], json!(2), "{:#}", v.evidence);
    assert!(v.summary.contains("Key 2"), "{}", v.summary);
}

#[test]
fn kv_op_without_any_key_is_a_clear_unknown() {
    let h = Hist::new().call(0, "put", json!("x"), json!("x")).build();
    let v = check(&h, "kv");
    assert_validity(&v, Validity::Unknown);
    assert!(v.summary.contains("[k v]"), "{}", v.summary);
}

// ---- keyed register (independent keys via the key field) ----

#[test]
fn cas_register_partitions_by_the_key_field() {
    let h = Hist::new()
        .invoke_key(0, json!("a"), "write", json!(1))
        .ok(0, json!(1))
        .invoke_key(1, json!("b"), "read", json!(null))
        .ok(1, json!(null))
        .build();
    assert_validity(&check(&h, "cas-register"), Validity::Valid);
}

// ---- set ----

#[test]
fn set_add_contains_remove_read_valid() {
    let h = Hist::new()
        .call(0, "add", json!(1), json!(1))
        .call(1, "contains", json!(1), json!(true))
        .call(0, "add", json!(2), json!(2))
        .call(1, "remove", json!(1), json!(1))
        .call(1, "contains", json!(1), json!([1, false]))
        .call(2, "read", json!(null), json!([2]))
        .build();
    assert_validity(&check(&h, "set"), Validity::Valid);
}

#[test]
fn set_lost_add_is_invalid() {
    let h = Hist::new()
        .call(0, "add", json!(1), json!(1))
        .call(1, "contains", json!(1), json!(false))
        .build();
    assert_validity(&check(&h, "set"), Validity::Invalid);
    let h = Hist::new()
        .call(0, "add", json!(1), json!(1))
        .call(0, "add", json!(2), json!(2))
        .call(2, "read", json!(null), json!([2]))
        .build();
    let v = check(&h, "set");
    assert_validity(&v, Validity::Invalid);
    assert_eq!(v.evidence["possible_states"], json!([[1, 2]]));
}

// ---- queue ----

#[test]
fn queue_is_fifo() {
    let fifo = Hist::new()
        .call(0, "enqueue", json!(1), json!(1))
        .call(0, "enqueue", json!(2), json!(2))
        .call(1, "dequeue", json!(null), json!(1))
        .call(1, "dequeue", json!(null), json!(2))
        .call(1, "dequeue", json!(null), json!(null))
        .build();
    assert_validity(&check(&fifo, "queue"), Validity::Valid);
    let lifo = Hist::new()
        .call(0, "enqueue", json!(1), json!(1))
        .call(0, "enqueue", json!(2), json!(2))
        .call(1, "dequeue", json!(null), json!(2))
        .build();
    assert_validity(&check(&lifo, "queue"), Validity::Invalid);
}

#[test]
fn queue_concurrent_enqueues_may_land_in_either_order() {
    let h = Hist::new()
        .invoke(0, "enqueue", json!(1))
        .invoke(1, "enqueue", json!(2))
        .ok(0, json!(1))
        .ok(1, json!(2))
        .call(2, "dequeue", json!(null), json!(2))
        .call(2, "dequeue", json!(null), json!(1))
        .build();
    assert_validity(&check(&h, "queue"), Validity::Valid);
}

#[test]
fn queue_info_dequeue_may_have_taken_the_head() {
    let h = Hist::new()
        .call(0, "enqueue", json!(1), json!(1))
        .call(0, "enqueue", json!(2), json!(2))
        .invoke(1, "dequeue", json!(null))
        .info(1, json!(null))
        .call(2, "dequeue", json!(null), json!(2))
        .build();
    assert_validity(&check(&h, "queue"), Validity::Valid);
}

// ---- mutex ----

#[test]
fn mutex_holds_never_overlap() {
    let ok = Hist::new()
        .call(0, "acquire", json!(null), json!(null))
        .call(0, "release", json!(null), json!(null))
        .call(1, "acquire", json!(null), json!(null))
        .build();
    assert_validity(&check(&ok, "mutex"), Validity::Valid);
    let double = Hist::new()
        .call(0, "acquire", json!(null), json!(null))
        .call(1, "acquire", json!(null), json!(null))
        .build();
    assert_validity(&check(&double, "mutex"), Validity::Invalid);
}

#[test]
fn mutex_info_acquire_may_never_have_happened() {
    let h = Hist::new()
        .call(0, "acquire", json!(null), json!(null))
        .invoke(1, "acquire", json!(null))
        .info(1, json!(null))
        .call(0, "release", json!(null), json!(null))
        .build();
    assert_validity(&check(&h, "mutex"), Validity::Valid);
}

// ---- registry, options, limits ----

#[test]
fn registry_builds_with_cas_register_by_default_and_rejects_unknown_models() {
    let c = build("linearizable", &CheckerOptions::default()).unwrap();
    assert_eq!(c.name(), "linearizable");
    assert_eq!(
        Linearizable::from_options(&CheckerOptions::default())
            .unwrap()
            .model,
        ModelKind::CasRegister
    );
    let err = build(
        "linearizable",
        &CheckerOptions {
            model: Some("regsiter".into()),
            ..Default::default()
        },
    )
    .err()
    .unwrap();
    assert!(matches!(err, RegistryError::UnknownOption { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("cas-register, kv, set, queue, mutex"),
        "{err}"
    );
}

#[test]
fn cancelled_check_is_unknown_not_a_guess() {
    let h = Hist::new().call(0, "write", json!(1), json!(1)).build();
    let ctx = CheckContext::default();
    ctx.cancel.cancel();
    let v = check_history(&h, ModelKind::Register, &ctx);
    assert_validity(&v, Validity::Unknown);
    assert!(v.summary.contains("time limit"), "{}", v.summary);
}

#[test]
fn memory_limit_gives_unknown() {
    let h = Hist::new().call(0, "write", json!(1), json!(1)).build();
    let ctx = CheckContext {
        memory_limit_bytes: 16,
        ..CheckContext::default()
    };
    let v = check_history(&h, ModelKind::Register, &ctx);
    assert_validity(&v, Validity::Unknown);
    assert!(v.summary.contains("memory limit"), "{}", v.summary);
}

/// A history whose search takes a minute even in release builds (30 processes, 10% info).
fn hard_history() -> distest_checkers::History {
    use linearizable_support::gen::{simulate, GenConfig};
    use rand::SeedableRng;
    let cfg = GenConfig {
        processes: 30,
        ops: 3_000,
        values: 5,
        keys: 0,
        p_info: 0.1,
        kv: false,
    };
    let ops = simulate(&mut rand::rngs::SmallRng::seed_from_u64(2), &cfg);
    distest_checkers::History::new(ops).unwrap()
}

#[test]
fn cancel_raised_during_a_long_search_stops_it_with_unknown() {
    let h = hard_history();
    let ctx = CheckContext::default();
    let cancel = ctx.cancel.clone();
    let started = std::time::Instant::now();
    let raiser = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        cancel.cancel();
    });
    let v = check_history(&h, ModelKind::CasRegister, &ctx);
    raiser.join().unwrap();
    assert_validity(&v, Validity::Unknown);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "the flag must be seen during the search, took {:?}",
        started.elapsed()
    );
}

#[test]
fn memory_limit_reached_during_a_long_search_gives_unknown() {
    let ctx = CheckContext {
        memory_limit_bytes: 8 << 20,
        ..CheckContext::default()
    };
    let v = check_history(&hard_history(), ModelKind::CasRegister, &ctx);
    assert_validity(&v, Validity::Unknown);
    assert!(v.summary.contains("memory limit"), "{}", v.summary);
}

#[test]
fn empty_history_is_valid() {
    let h = Hist::new().build();
    assert_validity(&check(&h, "cas-register"), Validity::Valid);
}
