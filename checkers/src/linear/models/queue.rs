//! `queue`: a FIFO queue with `enqueue` and `dequeue`, initially empty.
//!
//! Shapes: `enqueue e` (invocation value `e`); `dequeue` (invocation value `null`, `ok`
//! value the element taken, or `null` when the queue was empty). A dequeue with unknown
//! outcome may have taken the head, whatever it was, or nothing.

use crate::linear::models::{unknown_f, Interner, Model, OpInput, NULL_ID};
use serde_json::Value;
use std::collections::VecDeque;

/// One queue op over interned elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueOp {
    Enqueue(u32),
    /// Took this element (`NULL_ID`: found the queue empty).
    Dequeue(u32),
    /// Outcome unknown: took the head, whichever it was.
    DequeueUnknown,
}

/// The FIFO queue model.
#[derive(Clone, Copy, Debug, Default)]
pub struct Queue;

impl Model for Queue {
    type State = VecDeque<u32>;
    type Op = QueueOp;

    fn init(&self) -> VecDeque<u32> {
        VecDeque::new()
    }

    fn parse(&self, op: &OpInput<'_>, values: &mut Interner) -> Result<Option<QueueOp>, String> {
        match op.f {
            "enqueue" => {
                if op.input.is_null() {
                    return Err("enqueue null is ambiguous: null is what a dequeue of an empty queue returns".to_string());
                }
                Ok(Some(QueueOp::Enqueue(values.id(op.input))))
            }
            "dequeue" => Ok(Some(match op.output {
                Some(v) => QueueOp::Dequeue(values.id(v)),
                None => QueueOp::DequeueUnknown,
            })),
            other => Err(unknown_f("queue", other, "enqueue, dequeue")),
        }
    }

    fn step(&self, state: &VecDeque<u32>, op: &QueueOp) -> Option<VecDeque<u32>> {
        match *op {
            QueueOp::Enqueue(e) => {
                let mut next = state.clone();
                next.push_back(e);
                Some(next)
            }
            QueueOp::Dequeue(NULL_ID) => state.is_empty().then(|| state.clone()),
            QueueOp::Dequeue(e) => {
                if state.front() != Some(&e) {
                    return None;
                }
                let mut next = state.clone();
                next.pop_front();
                Some(next)
            }
            QueueOp::DequeueUnknown => {
                let mut next = state.clone();
                next.pop_front().map(|_| next)
            }
        }
    }

    fn show_state(&self, state: &VecDeque<u32>, values: &Interner) -> Value {
        Value::Array(state.iter().map(|&e| values.value(e).clone()).collect())
    }

    fn state_bytes(&self, state: &VecDeque<u32>) -> usize {
        std::mem::size_of::<VecDeque<u32>>() + 4 * state.capacity()
    }
}
