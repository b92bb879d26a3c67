//! `register`: a single value with `read` and `write`, initially `null`.
//!
//! Ops: `write v` (invocation value `v`), `read` (invocation value `null`, `ok` value the
//! value read). A read whose result is unknown constrains nothing and is dropped.

use crate::linear::models::{unknown_f, Interner, Model, OpInput, NULL_ID};
use serde_json::Value;

/// One register op over interned values (shared with `cas-register`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegisterOp {
    Read(u32),
    Write(u32),
    /// `[old new]`: succeeds only when the register holds `old`.
    Cas(u32, u32),
}

/// The read/write register.
#[derive(Clone, Copy, Debug, Default)]
pub struct Register;

/// Parses `read` and `write`, the ops both register models share.
pub(crate) fn parse_read_write(
    model: &str,
    valid: &str,
    op: &OpInput<'_>,
    values: &mut Interner,
) -> Result<Option<RegisterOp>, String> {
    match op.f {
        "read" => Ok(op.output.map(|v| RegisterOp::Read(values.id(v)))),
        "write" => Ok(Some(RegisterOp::Write(values.id(op.input)))),
        other => Err(unknown_f(model, other, valid)),
    }
}

/// Steps a register state (an interned value) by one op.
pub(crate) fn step_register(state: u32, op: &RegisterOp) -> Option<u32> {
    match *op {
        RegisterOp::Read(v) => (v == state).then_some(state),
        RegisterOp::Write(v) => Some(v),
        RegisterOp::Cas(old, new) => (old == state).then_some(new),
    }
}

impl Model for Register {
    type State = u32;
    type Op = RegisterOp;

    fn init(&self) -> u32 {
        NULL_ID
    }

    fn parse(&self, op: &OpInput<'_>, values: &mut Interner) -> Result<Option<RegisterOp>, String> {
        if op.f == "cas" {
            return Err(
                "the register model has no cas; check with --model cas-register".to_string(),
            );
        }
        parse_read_write("register", "read, write", op, values)
    }

    fn step(&self, state: &u32, op: &RegisterOp) -> Option<u32> {
        step_register(*state, op)
    }

    fn show_state(&self, state: &u32, values: &Interner) -> Value {
        values.value(*state).clone()
    }
}
