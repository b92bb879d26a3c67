//! Differential tests: the `linearizable` checker and porcupine-rs must agree on thousands
//! of random histories (cas-register and kv), valid by construction or perturbed, with
//! `info` ops, crashed processes and ops that never complete.
//!
//! The conversion to porcupine's operations is written here independently of the
//! checker's own (`prepare.rs`), so the test also checks how distest reads Jepsen's
//! semantics: `fail` dropped, `info` returns at +infinity, unknown reads dropped.

mod linearizable_support;

use distest_checkers::linear::{check_history, ModelKind};
use distest_checkers::{CheckContext, History, OpType, Validity};
use linearizable_support::gen::{perturb, simulate, GenConfig};
use porcupine_rs::{Model, Operation};
use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use serde_json::Value;
use std::collections::BTreeMap;

/// porcupine's view of a cas-register op; `known: false` for an unknown outcome.
#[derive(Clone, Debug)]
enum RegOp {
    Read(i64),
    Write(i64),
    Cas(i64, i64, bool),
}

#[derive(Clone)]
struct PorcupineRegister;

/// Values are small non-negative integers; `null` is -1.
fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(-1)
}

impl Model for PorcupineRegister {
    type State = i64;
    type Op = RegOp;
    type Metadata = ();
    fn init() -> i64 {
        -1
    }
    fn step(s: &i64, op: &RegOp) -> (bool, i64) {
        match *op {
            RegOp::Read(v) => (v == *s, *s),
            RegOp::Write(v) => (true, v),
            RegOp::Cas(old, new, true) => (old == *s, new),
            // Unknown outcome: either it matched and applied, or it did nothing.
            RegOp::Cas(old, new, false) => (true, if old == *s { new } else { *s }),
        }
    }
}

/// porcupine's view of a kv op on one key.
#[derive(Clone, Debug)]
enum KvOp {
    Get(String),
    Put(String),
    Append(String),
}

#[derive(Clone)]
struct PorcupineKv;

impl Model for PorcupineKv {
    type State = String;
    type Op = (u64, KvOp);
    type Metadata = ();
    fn init() -> String {
        String::new()
    }
    fn step(s: &String, (_, op): &(u64, KvOp)) -> (bool, String) {
        match op {
            KvOp::Get(v) => (v == s, s.clone()),
            KvOp::Put(v) => (true, v.clone()),
            KvOp::Append(v) => (true, format!("{s}{v}")),
        }
    }
    fn partition_operations(history: &[Operation<Self>]) -> Vec<Vec<Operation<Self>>> {
        let mut by_key: BTreeMap<u64, Vec<Operation<Self>>> = BTreeMap::new();
        for op in history {
            by_key.entry(op.op.0).or_default().push(op.clone());
        }
        by_key.into_values().collect()
    }
}

/// Pairs of (invocation, completion) as porcupine operations, via `convert`:
/// `convert(f, invocation value, ok value or None when unknown)`; `None` drops the op.
fn to_porcupine<M: Model>(
    history: &History,
    convert: impl Fn(&str, &Value, Option<&Value>) -> Option<M::Op>,
) -> Vec<Operation<M>> {
    history
        .pairs()
        .filter(|p| p.outcome() != OpType::Fail)
        .filter_map(|p| {
            let ok = p.completion.filter(|c| c.kind == OpType::Ok);
            let op = convert(&p.invoke.f, &p.invoke.value, ok.map(|c| &c.value))?;
            Some(Operation {
                client_id: None,
                call_time: p.invoke.index as i64,
                return_time: ok.map_or(i64::MAX, |c| c.index as i64),
                op,
                metadata: None,
            })
        })
        .collect()
}

fn register_op(f: &str, input: &Value, ok: Option<&Value>) -> Option<RegOp> {
    match f {
        "read" => ok.map(|v| RegOp::Read(int(v))),
        "write" => Some(RegOp::Write(int(input))),
        _ => Some(RegOp::Cas(int(&input[0]), int(&input[1]), ok.is_some())),
    }
}

fn kv_op(f: &str, input: &Value, ok: Option<&Value>) -> Option<(u64, KvOp)> {
    let key = input[0].as_u64().unwrap_or(0);
    let text = |v: &Value| v.as_str().unwrap_or("").to_string();
    let op = match f {
        "get" => KvOp::Get(text(&ok?[1])),
        "put" => KvOp::Put(text(&input[1])),
        _ => KvOp::Append(text(&input[1])),
    };
    Some((key, op))
}

fn distest_verdict(history: &History, model: ModelKind) -> Validity {
    check_history(history, model, &CheckContext::default()).valid
}

/// Generates a history from `seed`, perturbed or not, and compares both checkers.
fn compare(seed: u64, cfg: GenConfig, perturbed: bool) -> Result<(), TestCaseError> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut ops = simulate(&mut rng, &cfg);
    if perturbed {
        perturb(&mut rng, &mut ops, &cfg);
    }
    let history = History::new(ops).expect("simulated histories are well formed");
    let (ours, theirs) = if cfg.kv {
        let p = porcupine_rs::check_operations(&to_porcupine::<PorcupineKv>(&history, kv_op));
        (distest_verdict(&history, ModelKind::Kv), p)
    } else {
        let p = porcupine_rs::check_operations(&to_porcupine::<PorcupineRegister>(
            &history,
            register_op,
        ));
        (distest_verdict(&history, ModelKind::CasRegister), p)
    };
    let expected = if theirs { Validity::Valid } else { Validity::Invalid };
    prop_assert_eq!(ours, expected, "seed {} cfg {:?} perturbed {}", seed, cfg, perturbed);
    if !perturbed {
        prop_assert_eq!(ours, Validity::Valid, "a simulated history must be linearizable");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn cas_register_verdicts_match_porcupine(
        seed in any::<u64>(),
        processes in 1usize..6,
        ops in 1usize..40,
        values in 1u64..5,
        p_info in prop_oneof![Just(0.0), 0.0f64..0.3],
        perturbed in any::<bool>(),
    ) {
        let cfg = GenConfig { processes, ops, values, keys: 0, p_info, kv: false };
        compare(seed, cfg, perturbed)?;
    }

    #[test]
    fn keyed_kv_verdicts_match_porcupine(
        seed in any::<u64>(),
        processes in 1usize..6,
        ops in 1usize..40,
        keys in 1u64..4,
        p_info in 0.0f64..0.3,
        perturbed in any::<bool>(),
    ) {
        let cfg = GenConfig { processes, ops, values: 3, keys, p_info, kv: true };
        compare(seed, cfg, perturbed)?;
    }
}

#[test]
fn perturbation_finds_invalid_histories_often_enough_to_matter() {
    // Guards the differential test against a generator that only makes valid histories.
    let cfg = GenConfig { processes: 3, ops: 20, values: 3, keys: 0, p_info: 0.1, kv: false };
    let invalid = (0..200u64)
        .filter(|&seed| {
            let mut rng = SmallRng::seed_from_u64(seed);
            let mut ops = simulate(&mut rng, &cfg);
            perturb(&mut rng, &mut ops, &cfg);
            let h = History::new(ops).unwrap();
            distest_verdict(&h, ModelKind::CasRegister) == Validity::Invalid
        })
        .count();
    assert!(invalid >= 40, "only {invalid} of 200 perturbed histories were invalid");
}
