//! The `set`, `queue`, `mutex` and `kv` models against a brute-force oracle: on thousands
//! of tiny random histories (random results, so many are invalid), every order of the
//! ops that respects real time, with each `info` op either placed or left out, is tried
//! against a sequential specification written here independently of the checker.

mod linearizable_support;

use distest_checkers::{History, OpType, Validity};
use linearizable_support::{check, Hist};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::{BTreeSet, VecDeque};

/// One generated op: f, invocation value, outcome, completion value.
#[derive(Clone, Debug)]
struct GenOp {
    f: &'static str,
    input: Value,
    outcome: OpType,
    output: Value,
}

/// The state of every model at once (each test uses the part its model needs).
#[derive(Clone, Debug, Default)]
struct Spec {
    set: BTreeSet<i64>,
    queue: VecDeque<i64>,
    held: bool,
    text: String,
}

/// Applies `op` (with `output: None` for an unknown result); `false` if impossible.
fn apply(spec: &mut Spec, f: &str, input: &Value, output: Option<&Value>) -> bool {
    let int = |v: &Value| v.as_i64().unwrap_or(-1);
    match f {
        "add" => {
            spec.set.insert(int(input));
            true
        }
        "remove" => {
            spec.set.remove(&int(input));
            true
        }
        "contains" => output.is_none_or(|o| o.as_bool() == Some(spec.set.contains(&int(input)))),
        "read" => output.is_none_or(|o| {
            let seen: BTreeSet<i64> = o.as_array().unwrap().iter().map(int).collect();
            seen == spec.set
        }),
        "enqueue" => {
            spec.queue.push_back(int(input));
            true
        }
        "dequeue" => match output {
            None => spec.queue.pop_front().is_some(),
            Some(Value::Null) => spec.queue.is_empty(),
            Some(v) => {
                let ok = spec.queue.front() == Some(&int(v));
                if ok {
                    spec.queue.pop_front();
                }
                ok
            }
        },
        "acquire" => !std::mem::replace(&mut spec.held, true),
        "release" => std::mem::replace(&mut spec.held, false),
        "get" => output.is_none_or(|o| o.as_str().unwrap_or("") == spec.text),
        "put" => {
            spec.text = input.as_str().unwrap().to_string();
            true
        }
        "append" => {
            spec.text.push_str(input.as_str().unwrap());
            true
        }
        other => panic!("test bug: no spec for {other}"),
    }
}

/// (call position, return position or None, f, input, output if ok)
type Interval<'a> = (usize, Option<usize>, &'a str, &'a Value, Option<&'a Value>);

/// Tries every real-time-respecting order of the not yet placed ops in `left`.
fn search(spec: &Spec, left: &[Interval<'_>]) -> bool {
    // Done when every op that must happen (ok) is placed; info ops may stay out.
    if left.iter().all(|op| op.1.is_none()) {
        return true;
    }
    let earliest_return = left
        .iter()
        .filter_map(|op| op.1)
        .min()
        .unwrap_or(usize::MAX);
    (0..left.len()).any(|i| {
        let (call, _, f, input, output) = left[i];
        // An op can go next only if no remaining op returned before it was called.
        if call > earliest_return {
            return false;
        }
        let mut next = spec.clone();
        let mut rest = left.to_vec();
        rest.remove(i);
        (apply(&mut next, f, input, output) && search(&next, &rest))
            // An info op may also never have happened.
            || (left[i].1.is_none() && search(spec, &rest))
    })
}

fn oracle(history: &History) -> Validity {
    let ops = history.ops();
    let intervals: Vec<Interval<'_>> = history
        .pairs()
        .filter(|p| p.outcome() != OpType::Fail)
        .map(|p| {
            let ok = p.completion.filter(|c| c.kind == OpType::Ok);
            let call = ops.iter().position(|o| std::ptr::eq(o, p.invoke)).unwrap();
            let ret = ok.map(|c| ops.iter().position(|o| std::ptr::eq(o, c)).unwrap());
            (
                call,
                ret,
                p.invoke.f.as_str(),
                &p.invoke.value,
                ok.map(|c| &c.value),
            )
        })
        .collect();
    if search(&Spec::default(), &intervals) {
        Validity::Valid
    } else {
        Validity::Invalid
    }
}

fn op_strategy(model: &'static str) -> impl Strategy<Value = GenOp> {
    let elem = || prop_oneof![Just(json!(1)), Just(json!(2))];
    let outcome =
        prop_oneof![6 => Just(OpType::Ok), 1 => Just(OpType::Info), 1 => Just(OpType::Fail)];
    let shape: BoxedStrategy<(&'static str, Value, Value)> = match model {
        "set" => prop_oneof![
            elem().prop_map(|e| ("add", e.clone(), e)),
            elem().prop_map(|e| ("remove", e.clone(), e)),
            (elem(), any::<bool>()).prop_map(|(e, b)| ("contains", e, json!(b))),
            prop::sample::subsequence(vec![1, 2], 0..=2).prop_map(|s| (
                "read",
                Value::Null,
                json!(s)
            )),
        ]
        .boxed(),
        "queue" => prop_oneof![
            elem().prop_map(|e| ("enqueue", e.clone(), e)),
            prop_oneof![elem(), Just(Value::Null)].prop_map(|v| ("dequeue", Value::Null, v)),
        ]
        .boxed(),
        "mutex" => prop_oneof![
            Just(("acquire", Value::Null, Value::Null)),
            Just(("release", Value::Null, Value::Null)),
        ]
        .boxed(),
        _ => {
            let text = || prop_oneof![Just("a"), Just("b")];
            prop_oneof![
                prop_oneof![Just(""), Just("a"), Just("ab"), Just("ba")].prop_map(|t| (
                    "get",
                    Value::Null,
                    json!(t)
                )),
                text().prop_map(|t| ("put", json!(t), json!(t))),
                text().prop_map(|t| ("append", json!(t), json!(t))),
            ]
            .boxed()
        }
    };
    (shape, outcome).prop_map(|((f, input, output), outcome)| GenOp {
        f,
        input,
        outcome,
        output,
    })
}

/// Lays `ops` out over 3 processes: `order` decides, step by step, which process moves
/// (invokes its next op, or completes the one in flight).
fn build(model: &str, ops: &[GenOp], order: &[usize]) -> History {
    let mut h = Hist::new();
    let mut next_op = 0;
    // Per slot: (process id, op in flight)
    let mut slots: Vec<(u64, Option<usize>)> = (0..3).map(|p| (p, None)).collect();
    let mut fresh = 3;
    for &s in order {
        let s = s % slots.len();
        match slots[s].1.take() {
            None if next_op < ops.len() => {
                let op = &ops[next_op];
                h = if model == "kv" {
                    h.invoke_key(slots[s].0, json!("k"), op.f, op.input.clone())
                } else {
                    h.invoke(slots[s].0, op.f, op.input.clone())
                };
                slots[s].1 = Some(next_op);
                next_op += 1;
            }
            None => {}
            Some(i) => {
                let op = &ops[i];
                let p = slots[s].0;
                h = match op.outcome {
                    OpType::Ok => h.ok(p, op.output.clone()),
                    OpType::Fail => h.fail(p, op.input.clone()),
                    _ => {
                        slots[s].0 = fresh;
                        fresh += 1;
                        h.info(p, op.input.clone())
                    }
                };
            }
        }
    }
    // Ops still in flight at the end have no completion: they count as info.
    h.build()
}

fn agree(model: &'static str, ops: Vec<GenOp>, order: Vec<usize>) -> Result<(), TestCaseError> {
    let h = build(model, &ops, &order);
    let expected = oracle(&h);
    let got = check(&h, model).valid;
    prop_assert_eq!(got, expected, "model {} history {:#?}", model, h.ops());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn set_model_agrees_with_brute_force(
        ops in prop::collection::vec(op_strategy("set"), 1..7),
        order in prop::collection::vec(0usize..3, 0..24),
    ) {
        agree("set", ops, order)?;
    }

    #[test]
    fn queue_model_agrees_with_brute_force(
        ops in prop::collection::vec(op_strategy("queue"), 1..7),
        order in prop::collection::vec(0usize..3, 0..24),
    ) {
        agree("queue", ops, order)?;
    }

    #[test]
    fn mutex_model_agrees_with_brute_force(
        ops in prop::collection::vec(op_strategy("mutex"), 1..7),
        order in prop::collection::vec(0usize..3, 0..24),
    ) {
        agree("mutex", ops, order)?;
    }

    #[test]
    fn kv_model_agrees_with_brute_force(
        ops in prop::collection::vec(op_strategy("kv"), 1..7),
        order in prop::collection::vec(0usize..3, 0..24),
    ) {
        agree("kv", ops, order)?;
    }
}
