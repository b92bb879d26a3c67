//! `mutex`: a lock with `acquire` and `release`, initially free (Knossos's mutex).
//!
//! An `acquire` succeeds only on a free lock, a `release` only on a held one. The model
//! does not track the owner: it checks that holds never overlap, as Knossos does.

use crate::linear::models::{unknown_f, Interner, Model, OpInput};
use serde_json::Value;

/// One mutex op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MutexOp {
    Acquire,
    Release,
}

/// The mutex model; the state is "held".
#[derive(Clone, Copy, Debug, Default)]
pub struct Mutex;

impl Model for Mutex {
    type State = bool;
    type Op = MutexOp;
    const INTERNS_VALUES: bool = false;

    fn init(&self) -> bool {
        false
    }

    fn parse(&self, op: &OpInput<'_>, _values: &mut Interner) -> Result<Option<MutexOp>, String> {
        match op.f {
            "acquire" => Ok(Some(MutexOp::Acquire)),
            "release" => Ok(Some(MutexOp::Release)),
            other => Err(unknown_f("mutex", other, "acquire, release")),
        }
    }

    fn step(&self, held: &bool, op: &MutexOp) -> Option<bool> {
        match op {
            MutexOp::Acquire => (!held).then_some(true),
            MutexOp::Release => held.then_some(false),
        }
    }

    fn show_state(&self, held: &bool, _values: &Interner) -> Value {
        Value::String(if *held { "held" } else { "free" }.to_string())
    }
}
