//! crdt-store: a replicated store of state-based CRDTs bundled with distest.
