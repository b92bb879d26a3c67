//! `cas-register`: a single value with `read`, `write` and compare-and-set, initially `null`.
//!
//! Jepsen's shapes: `cas` has invocation value `[old new]` and succeeds only when the
//! register holds `old`. A `cas` that completed `ok` must have matched; one with unknown
//! outcome may have happened (if it matched) or not.

use super::register::{parse_read_write, step_register, RegisterOp};
use crate::linear::models::{pair_of, Interner, Model, OpInput, NULL_ID};
use serde_json::Value;

/// The compare-and-set register.
#[derive(Clone, Copy, Debug, Default)]
pub struct CasRegister;

impl Model for CasRegister {
    type State = u32;
    type Op = RegisterOp;

    fn init(&self) -> u32 {
        NULL_ID
    }

    fn parse(&self, op: &OpInput<'_>, values: &mut Interner) -> Result<Option<RegisterOp>, String> {
        if op.f != "cas" {
            return parse_read_write("cas-register", "read, write, cas", op, values);
        }
        let (old, new) = pair_of(op.input).ok_or_else(|| {
            format!(
                "a cas needs the value [old new], got {}; record cas as Jepsen does",
                op.input
            )
        })?;
        Ok(Some(RegisterOp::Cas(values.id(old), values.id(new))))
    }

    fn step(&self, state: &u32, op: &RegisterOp) -> Option<u32> {
        step_register(*state, op)
    }

    fn show_state(&self, state: &u32, values: &Interner) -> Value {
        values.value(*state).clone()
    }
}
