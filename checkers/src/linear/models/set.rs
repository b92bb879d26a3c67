//! `set`: a set of JSON values with `add`, `remove`, `contains` and `read`, initially empty.
//!
//! Shapes: `add e` / `remove e` (invocation value `e`; removing an absent element is a
//! no-op that succeeds). `contains`: invocation value `e`, `ok` value `true`/`false`, or
//! the tuple `[e bool]`. `read`: invocation value `null`, `ok` value the whole set as a
//! list (order and duplicates ignored). Contains and read with unknown result are dropped.

use crate::linear::models::{pair_of, unknown_f, Interner, Model, OpInput};
use serde_json::Value;

/// One set op over interned elements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SetOp {
    Add(u32),
    Remove(u32),
    Contains(u32, bool),
    /// The whole set, sorted and without duplicates.
    Read(Vec<u32>),
}

/// The set model. States are sorted vectors of element ids: small, hashable, cheap to compare.
#[derive(Clone, Copy, Debug, Default)]
pub struct Set;

fn parse_present(output: &Value) -> Option<bool> {
    match output {
        Value::Bool(b) => Some(*b),
        other => pair_of(other).and_then(|(_, b)| b.as_bool()),
    }
}

impl Model for Set {
    type State = Vec<u32>;
    type Op = SetOp;

    fn init(&self) -> Vec<u32> {
        Vec::new()
    }

    fn parse(&self, op: &OpInput<'_>, values: &mut Interner) -> Result<Option<SetOp>, String> {
        match op.f {
            "add" => Ok(Some(SetOp::Add(values.id(op.input)))),
            "remove" => Ok(Some(SetOp::Remove(values.id(op.input)))),
            "contains" => {
                let Some(out) = op.output else {
                    return Ok(None);
                };
                let present = parse_present(out).ok_or_else(|| {
                    format!(
                        "a contains must complete with true, false or [element bool], got {out}"
                    )
                })?;
                Ok(Some(SetOp::Contains(values.id(op.input), present)))
            }
            "read" => {
                let Some(out) = op.output else {
                    return Ok(None);
                };
                let list = out.as_array().ok_or_else(|| {
                    format!("a set read must complete with the list of elements, got {out}")
                })?;
                let mut ids: Vec<u32> = list.iter().map(|e| values.id(e)).collect();
                ids.sort_unstable();
                ids.dedup();
                Ok(Some(SetOp::Read(ids)))
            }
            other => Err(unknown_f("set", other, "add, remove, contains, read")),
        }
    }

    fn step(&self, state: &Vec<u32>, op: &SetOp) -> Option<Vec<u32>> {
        match op {
            SetOp::Add(e) => {
                let mut next = state.clone();
                if let Err(at) = next.binary_search(e) {
                    next.insert(at, *e);
                }
                Some(next)
            }
            SetOp::Remove(e) => {
                let mut next = state.clone();
                if let Ok(at) = next.binary_search(e) {
                    next.remove(at);
                }
                Some(next)
            }
            SetOp::Contains(e, present) => {
                (state.binary_search(e).is_ok() == *present).then(|| state.clone())
            }
            SetOp::Read(all) => (all == state).then(|| state.clone()),
        }
    }

    fn show_state(&self, state: &Vec<u32>, values: &Interner) -> Value {
        Value::Array(state.iter().map(|&e| values.value(e).clone()).collect())
    }

    fn state_bytes(&self, state: &Vec<u32>) -> usize {
        std::mem::size_of::<Vec<u32>>() + 4 * state.capacity()
    }
}
