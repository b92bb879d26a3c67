//! Maelstrom's services — `lin-kv`, `seq-kv`, `lww-kv`, `lin-tso` — as one authoritative
//! state machine per service, with Maelstrom's semantics (its `service.clj`):
//!
//! - `lin-kv`: one map, each request applied atomically when it arrives and answered
//!   after: linearizable by construction (every request takes effect between its receipt
//!   and its reply).
//! - `seq-kv`: sequentially consistent. The service keeps its last [`SEQ_HISTORY`]
//!   states; a request that changes nothing (a read, a failed cas, a write of the value
//!   already there) may run on any state no older than the last one its client saw, so
//!   reads can be stale; a request that changes something runs on the newest state. Each
//!   client's view only moves forward.
//! - `lww-kv`: [`LWW_REPLICAS`] independent replicas with Lamport-clock timestamps; each
//!   request first merges one random replica into another (last write wins) and then
//!   runs on a random replica, so it may miss writes and lose concurrent ones.
//! - `lin-tso`: a linearizable counter answering `ts` with `ts_ok {ts}` from 0 up.
//!
//! Why one process and not the bundled Raft KV: a single copy cannot lose or reorder an
//! acknowledged write, so whatever anomaly a run finds is the node program's; a Raft
//! group would add failures of its own (elections under partitions, its switchable
//! bugs) that a Maelstrom user did not write. The services still sit on the network:
//! the router of one node hosts them (see [`crate::router`]), so partitions, loss and
//! latency reach their traffic like any node's.

pub mod kv;

use crate::protocol::{error_body, NOT_SUPPORTED};
use kv::Key;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

/// The services' names, as nodes address them.
pub const NAMES: &[&str] = &["lin-kv", "seq-kv", "lww-kv", "lin-tso"];

/// How many past states `seq-kv` may answer from.
pub const SEQ_HISTORY: usize = 32;
/// How many replicas `lww-kv` simulates.
pub const LWW_REPLICAS: usize = 2;

pub fn is_service(name: &str) -> bool {
    NAMES.contains(&name)
}

/// All four services' state.
pub struct Services {
    lin_kv: BTreeMap<Key, Value>,
    seq: Sequential,
    lww: Vec<LwwReplica>,
    next_ts: u64,
    rng: StdRng,
}

impl Services {
    /// Services whose random choices (stale states, replicas) come from `seed`.
    pub fn new(seed: u64) -> Services {
        Services {
            lin_kv: BTreeMap::new(),
            seq: Sequential::new(),
            lww: vec![LwwReplica::default(); LWW_REPLICAS],
            next_ts: 0,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// Handles `body` sent by `src` to the service `dest`; returns the reply body, with
    /// `in_reply_to` set from the request's `msg_id`.
    pub fn handle(&mut self, src: &str, dest: &str, body: &Value) -> Value {
        let mut reply = match dest {
            "lin-kv" => {
                let out = kv::apply(&self.lin_kv, body);
                if let Some(next) = out.changed {
                    self.lin_kv = next;
                }
                out.reply
            }
            "seq-kv" => self.seq.handle(src, body, &mut self.rng),
            "lww-kv" => lww_handle(&mut self.lww, body, &mut self.rng),
            "lin-tso" => match body.get("type").and_then(Value::as_str) {
                Some("ts") => {
                    self.next_ts += 1;
                    json!({"type": "ts_ok", "ts": self.next_ts - 1})
                }
                other => error_body(
                    None,
                    NOT_SUPPORTED,
                    &format!("lin-tso only answers requests of type ts, not {other:?}"),
                ),
            },
            other => error_body(
                None,
                NOT_SUPPORTED,
                &format!("there is no service {other:?}"),
            ),
        };
        reply["in_reply_to"] = body.get("msg_id").cloned().unwrap_or(Value::Null);
        reply
    }
}

/// `seq-kv`'s recent states and how far each client has seen.
struct Sequential {
    /// The most recent states, oldest first; the last is the newest.
    states: VecDeque<Arc<BTreeMap<Key, Value>>>,
    /// The index of the newest state (the number of changes so far).
    last_index: u64,
    /// client → the index of the newest state it has seen.
    clients: HashMap<String, u64>,
}

impl Sequential {
    fn new() -> Sequential {
        Sequential {
            states: VecDeque::from([Arc::new(BTreeMap::new())]),
            last_index: 0,
            clients: HashMap::new(),
        }
    }

    fn handle(&mut self, src: &str, body: &Value, rng: &mut StdRng) -> Value {
        let oldest = self.last_index + 1 - self.states.len() as u64;
        let floor = self.clients.get(src).copied().unwrap_or(0).max(oldest);
        let index = rng.gen_range(floor..=self.last_index);
        let state = &self.states[(index - oldest) as usize];
        let speculative = kv::apply(state, body);
        if speculative.changed.is_none() {
            self.clients.insert(src.to_string(), index);
            return speculative.reply;
        }
        // It changes the state: run it on the newest state, at the end of the order.
        let newest = self.states.back().expect("seq-kv always has a state");
        let out = kv::apply(newest, body);
        if let Some(next) = out.changed {
            self.states.push_back(Arc::new(next));
            self.last_index += 1;
            if self.states.len() > SEQ_HISTORY {
                self.states.pop_front();
            }
        }
        self.clients.insert(src.to_string(), self.last_index);
        out.reply
    }
}

/// One `lww-kv` replica: a Lamport clock and timestamped values.
#[derive(Clone, Debug, Default)]
struct LwwReplica {
    clock: u64,
    map: BTreeMap<Key, (u64, Value)>,
}

impl LwwReplica {
    /// Takes in `other`'s state: the higher clock, and per key the later write.
    fn merge(&mut self, other: &LwwReplica) {
        self.clock = self.clock.max(other.clock);
        for (k, (ts, v)) in &other.map {
            match self.map.get(k) {
                Some((mine, _)) if mine >= ts => {}
                _ => {
                    self.map.insert(k.clone(), (*ts, v.clone()));
                }
            }
        }
    }
}

fn lww_handle(replicas: &mut [LwwReplica], body: &Value, rng: &mut StdRng) -> Value {
    let n = replicas.len();
    let (from, to) = (rng.gen_range(0..n), rng.gen_range(0..n));
    if from != to {
        let source = replicas[from].clone();
        replicas[to].merge(&source);
    }
    let replica = &mut replicas[rng.gen_range(0..n)];
    let plain: BTreeMap<Key, Value> = replica
        .map
        .iter()
        .map(|(k, (_, v))| (k.clone(), v.clone()))
        .collect();
    let out = kv::apply(&plain, body);
    if let Some(next) = out.changed {
        let ts = replica.clock;
        replica.clock += 1;
        for (k, v) in next {
            if plain.get(&k) != Some(&v) {
                replica.map.insert(k, (ts, v));
            }
        }
    }
    out.reply
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(t: &str, key: i64, extra: Value) -> Value {
        let mut b = json!({"type": t, "key": key, "msg_id": 7});
        if let Value::Object(m) = extra {
            for (k, v) in m {
                b[k] = v;
            }
        }
        b
    }

    #[test]
    fn lin_kv_reads_its_last_write_and_replies_in_reply_to() {
        let mut s = Services::new(1);
        let w = s.handle("n1", "lin-kv", &req("write", 1, json!({"value": 3})));
        assert_eq!(w, json!({"type": "write_ok", "in_reply_to": 7}));
        for _ in 0..50 {
            assert_eq!(
                s.handle("n2", "lin-kv", &req("read", 1, json!({})))["value"],
                3
            );
        }
    }

    #[test]
    fn seq_kv_reads_may_be_stale_but_never_go_back_for_one_client() {
        let mut s = Services::new(3);
        for v in 0..20 {
            s.handle("n1", "seq-kv", &req("write", 1, json!({"value": v})));
        }
        let mut stale = false;
        for reader in 0..50 {
            let mut last = -1;
            for _ in 0..10 {
                let r = s.handle(&format!("r{reader}"), "seq-kv", &req("read", 1, json!({})));
                let v = r["value"].as_i64().unwrap_or(-1);
                assert!(v >= last, "one client's reads never go back");
                stale |= v < 19;
                last = v;
            }
        }
        assert!(stale, "some read was stale");
        // The writer itself always sees its own last write.
        assert_eq!(
            s.handle("n1", "seq-kv", &req("read", 1, json!({})))["value"],
            19
        );
    }

    proptest::proptest! {
        /// seq-kv's promise, whatever the interleaving: each client's view moves forward,
        /// and it sees at least its own last write (writes of increasing values to one key
        /// make the order visible in the values).
        #[test]
        fn seq_kv_views_never_go_back(seed in 0u64..1000, steps in proptest::collection::vec((0usize..4, proptest::bool::ANY), 1..200)) {
            let mut s = Services::new(seed);
            let mut next = 0i64;
            let mut seen = [-1i64; 4];
            for (client, write) in steps {
                let src = format!("n{client}");
                if write {
                    next += 1;
                    s.handle(&src, "seq-kv", &req("write", 1, json!({"value": next})));
                    seen[client] = next;
                } else {
                    let v = s.handle(&src, "seq-kv", &req("read", 1, json!({})))["value"].as_i64().unwrap_or(-1);
                    proptest::prop_assert!(v >= seen[client], "client {client} read {v} after seeing {}", seen[client]);
                    seen[client] = v;
                }
            }
        }
    }

    #[test]
    fn lww_kv_can_lose_or_hide_writes_and_converges_by_merging() {
        let mut s = Services::new(5);
        let mut missed = false;
        for v in 0..50 {
            s.handle("n1", "lww-kv", &req("write", 1, json!({"value": v})));
            let r = s.handle("n2", "lww-kv", &req("read", 1, json!({})));
            missed |= r["value"] != json!(v);
        }
        assert!(missed, "a read missed the latest write");
    }

    #[test]
    fn lin_tso_counts_from_zero_and_unknown_requests_are_not_supported() {
        let mut s = Services::new(0);
        let ts: Vec<Value> = (0..3)
            .map(|_| s.handle("n1", "lin-tso", &json!({"type": "ts", "msg_id": 1}))["ts"].clone())
            .collect();
        assert_eq!(ts, vec![json!(0), json!(1), json!(2)]);
        assert_eq!(
            s.handle("n1", "lin-tso", &json!({"type": "read"}))["code"],
            10
        );
        assert_eq!(s.handle("n1", "nope", &json!({"type": "read"}))["code"], 10);
    }
}
