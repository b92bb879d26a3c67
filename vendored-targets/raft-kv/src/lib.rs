//! raft-kv: a Raft-replicated KV store, the system under test bundled with distest.
