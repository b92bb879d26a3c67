//! CRDT workloads for replicated stores without coordination: `or-set`, `pn-counter`,
//! `g-counter` and `lww-register`. Each client writes and reads its own replica; after
//! the heal every replica is read once more (the final reads), and `crdt-convergence`
//! judges that they agree on exactly what the CRDT's semantics allow.

use crate::{CheckerSpec, OpRequest, Workload, WorkloadOptions};
use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{json, Value};

/// Which CRDT the workload exercises; the name is also the checker's model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    OrSet,
    PnCounter,
    GCounter,
    LwwRegister,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::OrSet => "or-set",
            Kind::PnCounter => "pn-counter",
            Kind::GCounter => "g-counter",
            Kind::LwwRegister => "lww-register",
        }
    }
}

pub struct Crdt {
    kind: Kind,
    next_value: u64,
    /// OR-set elements come from a small range so removes hit elements that were added.
    element_range: u64,
}

impl Crdt {
    pub fn new(kind: Kind, opts: &WorkloadOptions) -> Crdt {
        Crdt {
            kind,
            next_value: 0,
            element_range: (opts.key_count * 4).max(4),
        }
    }
}

impl Workload for Crdt {
    fn name(&self) -> &'static str {
        self.kind.name()
    }

    fn next_op(&mut self, _process: u64, rng: &mut StdRng) -> OpRequest {
        let roll = rng.gen_range(0..10);
        if roll < 2 {
            return OpRequest::new("read", Value::Null);
        }
        match self.kind {
            Kind::OrSet if roll < 4 => {
                OpRequest::new("remove", json!(rng.gen_range(0..self.element_range)))
            }
            Kind::OrSet => OpRequest::new("add", json!(rng.gen_range(0..self.element_range))),
            Kind::PnCounter => {
                let magnitude = rng.gen_range(1..=5i64);
                let delta = if rng.gen_bool(0.3) {
                    -magnitude
                } else {
                    magnitude
                };
                OpRequest::new("add", json!(delta))
            }
            Kind::GCounter => OpRequest::new("add", json!(rng.gen_range(1..=5))),
            Kind::LwwRegister => {
                // Unique values, so a read names exactly the write it saw.
                self.next_value += 1;
                OpRequest::new("write", json!(self.next_value))
            }
        }
    }

    fn final_ops(&self) -> Vec<OpRequest> {
        vec![OpRequest::new("read", json!({"final": true}))]
    }

    fn checkers(&self) -> Vec<CheckerSpec> {
        vec![CheckerSpec::named("crdt-convergence").with_model(self.kind.name())]
    }
}
