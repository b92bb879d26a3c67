//! Test helpers shared by the Elle unit tests: histories from compact op specs, and the
//! analysis of one history down to its dependency edges.

use super::anomaly::Anomalies;
use super::graph::EdgeList;
use super::txn::{Shape, Txns};
use super::versions::Inference;
use crate::history::History;
use crate::op::{Op, OpType, Process};
use serde_json::Value;

/// `(process, type, value)` per op, in order; indices and times are dense.
pub fn history(specs: &[(u64, OpType, Value)]) -> History {
    let ops = specs
        .iter()
        .enumerate()
        .map(|(i, (p, kind, value))| {
            let mut op = Op::invoke(Process::Client(*p), "txn", value.clone());
            op.kind = *kind;
            op.index = i as u64;
            op.time = i as u64 * 1_000;
            op
        })
        .collect();
    History::new(ops).expect("test histories are well formed")
}

/// Runs a workload analysis and returns the transactions, edges (from, to, kind) with
/// transactions named by their position, and the anomalies found.
pub fn analyse(h: &History, shape: Shape) -> (Txns, Vec<(u32, u32, u8)>, Anomalies) {
    analyse_with(h, shape, &Inference::default())
}

/// [`analyse`] with version-order inference options for rw-register.
pub fn analyse_with(
    h: &History,
    shape: Shape,
    inference: &Inference,
) -> (Txns, Vec<(u32, u32, u8)>, Anomalies) {
    let txns = Txns::from_history(h, shape).expect("test history parses");
    let mut edges = EdgeList::default();
    let mut anomalies = Anomalies::new(8);
    match shape {
        Shape::ListAppend => {
            super::list_append::analyse(&txns, &mut edges, &mut anomalies, 1 << 20).unwrap();
        }
        Shape::RwRegister => {
            super::rw_register::analyse(&txns, inference, &mut edges, &mut anomalies, 1 << 20)
                .unwrap();
        }
    }
    let list = (0..edges.len())
        .map(|i| (edges.src[i], edges.dst[i], edges.kind[i]))
        .collect();
    (txns, list, anomalies)
}
