//! Where a replay of a recorded history may retire each key: the first pass over the
//! history finds each key's last use ([`LastUses`]), the second retires the key right
//! after it ([`Retirements`]).
//!
//! Memory is what bounds `distest check --stream` on a history of millions of keys, so
//! neither pass keeps a key's text. The first keeps a 64-bit fingerprint of the key and
//! the number of its last use (16 bytes a key, plus the hash table's slack); the second
//! only the sorted numbers of those last uses, as variable-length deltas (a byte or two a
//! key), and walks the uses in the same order to meet them.

use crate::fxhash::FxMap;
use crate::op::{Op, Process};
use serde_json::Value;
use std::hash::Hasher;

/// The key uses of a history, in order: an invocation uses each of its keys, its
/// completion the keys the invocation named. Both passes number the uses with this same
/// code, so the n-th use is the same one in both. `K` is what is kept of a key while its
/// invocation is in flight (a fingerprint, or the key).
///
/// A key is the op's `key` field or, without one, the first element of a `[k v]` value
/// (Jepsen's independent keys); a transaction's (`f = "txn"`, `[f k v]` micro-ops) are
/// its micro-ops' keys. A checker that files an op under no key, or under another, is
/// simply never told about that "key": retiring late is always safe, and every key a
/// checker does use is among these.
struct KeyUses<K> {
    in_flight: FxMap<Process, Vec<K>>,
    next: u64,
}

impl<K> Default for KeyUses<K> {
    fn default() -> Self {
        KeyUses {
            in_flight: FxMap::default(),
            next: 0,
        }
    }
}

impl<K> KeyUses<K> {
    /// Calls `each(n, key)` for every use of a key by `op`, `n` numbering the uses of
    /// the history from 0.
    fn push(&mut self, op: &Op, keep: impl Fn(&Value) -> K, mut each: impl FnMut(u64, &K)) {
        if !op.is_client() {
            return;
        }
        let keys = if op.is_invoke() {
            let mut keys: Vec<K> = txn_keys(op).map(&keep).collect();
            if keys.is_empty() {
                keys.extend(key_of(op).map(&keep));
            }
            keys
        } else {
            match self.in_flight.remove(&op.process) {
                Some(keys) => keys,
                None => return,
            }
        };
        for key in &keys {
            each(self.next, key);
            self.next += 1;
        }
        if op.is_invoke() && !keys.is_empty() {
            self.in_flight.insert(op.process, keys);
        }
    }
}

/// The key an invocation may be filed under.
fn key_of(op: &Op) -> Option<&Value> {
    op.key
        .as_ref()
        .or_else(|| match op.value.as_array().map(Vec::as_slice) {
            Some([k, _]) => Some(k),
            _ => None,
        })
}

/// The keys of a transaction (`f = "txn"`, a list of `[f k v]` micro-ops).
fn txn_keys(op: &Op) -> impl Iterator<Item = &Value> {
    (op.f == "txn")
        .then(|| op.value.as_array())
        .flatten()
        .into_iter()
        .flatten()
        .filter_map(|m| m.as_array().and_then(|m| m.get(1)))
}

/// A key's 64-bit fingerprint: SipHash (fixed keys, so the same in both passes) of its
/// JSON text, the text the checkers group ops by.
pub fn fingerprint(key: &Value) -> u64 {
    struct Feed<'h>(&'h mut std::hash::DefaultHasher);
    impl std::io::Write for Feed<'_> {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.write(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut hasher = std::hash::DefaultHasher::new();
    // Writing a `Value` into a sink that never fails cannot fail.
    let _ = serde_json::to_writer(Feed(&mut hasher), key);
    hasher.finish()
}

/// The first pass: for each key (by [`fingerprint`]), the number of its last use.
///
/// **Collisions.** Keys with the same fingerprint share one entry, which ends holding
/// the last use of whichever of them was used last. Only that use retires a key (the
/// one used there); the others are never retired during the replay and are judged with
/// the keys still live at the end. That is sound: a key is never retired before its last
/// use, since the use that retires it is the last use of any key with its fingerprint;
/// and the verdict does not depend on when a key is judged (each checker's online form
/// composes its keys' verdicts in any order). A collision costs only memory, the ops of
/// the keys held to the end, and with 64 bits one is expected among about 4 billion keys.
pub struct LastUses {
    uses: KeyUses<u64>,
    /// Fingerprint → the number of the last use of a key with it.
    last: FxMap<u64, u64>,
    fingerprint: fn(&Value) -> u64,
}

impl Default for LastUses {
    fn default() -> Self {
        LastUses::with_fingerprint(fingerprint)
    }
}

impl LastUses {
    /// With another fingerprint function: tests force collisions with it.
    pub fn with_fingerprint(fingerprint: fn(&Value) -> u64) -> LastUses {
        LastUses {
            uses: KeyUses::default(),
            last: FxMap::default(),
            fingerprint,
        }
    }

    /// The next op of the history.
    pub fn push(&mut self, op: &Op) {
        let last = &mut self.last;
        self.uses.push(op, self.fingerprint, |n, &fp| {
            last.insert(fp, n);
        });
    }

    /// Where the second pass retires keys.
    pub fn finish(self) -> Retirements {
        let mut at: Vec<u64> = self.last.into_values().collect();
        at.sort_unstable();
        let mut deltas = Vec::with_capacity(at.len() + at.len() / 4);
        let mut previous = 0;
        for n in at {
            let mut delta = n - previous;
            previous = n;
            // LEB128: seven bits a byte, the high bit set on all but the last.
            while delta >= 0x80 {
                deltas.push((delta as u8 & 0x7f) | 0x80);
                delta >>= 7;
            }
            deltas.push(delta as u8);
        }
        deltas.shrink_to_fit();
        let mut ahead = Ahead {
            deltas,
            read: 0,
            next: None,
        };
        ahead.next = ahead.read_delta(0);
        Retirements {
            uses: KeyUses::default(),
            ahead,
        }
    }
}

/// The second pass: given the same ops in the same order as [`LastUses`] was, names the
/// keys each op uses for the last time.
pub struct Retirements {
    uses: KeyUses<Value>,
    ahead: Ahead,
}

/// The last uses ahead.
struct Ahead {
    /// The sorted numbers of the last uses, as LEB128 deltas.
    deltas: Vec<u8>,
    /// Bytes of `deltas` read.
    read: usize,
    /// The next last use.
    next: Option<u64>,
}

impl Ahead {
    fn read_delta(&mut self, previous: u64) -> Option<u64> {
        let mut delta = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.deltas.get(self.read)?;
            self.read += 1;
            delta |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(previous + delta);
            }
        }
        None
    }

    /// Whether use `n` is a last use; uses must come in order.
    fn is_last(&mut self, n: u64) -> bool {
        if self.next != Some(n) {
            return false;
        }
        self.next = self.read_delta(n);
        true
    }
}

impl Retirements {
    /// The next op of the history: calls `retire(key)` for each key `op` uses last.
    pub fn push(&mut self, op: &Op, mut retire: impl FnMut(&Value)) {
        let ahead = &mut self.ahead;
        self.uses.push(op, Value::clone, |n, key| {
            if ahead.is_last(n) {
                retire(key);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::{fingerprint, LastUses};
    use crate::checker::{CheckContext, Checker};
    use crate::history::History;
    use crate::online::{replay_stream, Replay};
    use crate::op::{Op, OpType, Process};
    use crate::registry::CheckerSpec;
    use crate::verdict::Validity;
    use serde_json::{json, Value};
    use std::collections::VecDeque;

    /// Which keys each op of `ops` retires, by the two passes.
    fn retired_by(ops: &[Op], uses: LastUses) -> Vec<(u64, Value)> {
        let mut uses = uses;
        ops.iter().for_each(|op| uses.push(op));
        let mut retirements = uses.finish();
        let mut out = Vec::new();
        for op in ops {
            retirements.push(op, |key| out.push((op.index, key.clone())));
        }
        out
    }

    fn numbered(ops: Vec<Op>) -> Vec<Op> {
        ops.into_iter()
            .enumerate()
            .map(|(i, op)| Op {
                index: i as u64,
                time: i as u64,
                ..op
            })
            .collect()
    }

    #[test]
    fn a_key_retires_after_its_last_use_an_invocation_or_the_completion_of_one() {
        let (p0, p1) = (Process::Client(0), Process::Client(1));
        let txn = Op::invoke(p1, "txn", json!([["append", "b", 1], ["r", "c", null]]));
        let ops = numbered(vec![
            Op::invoke(p0, "write", json!(1)).with_key(json!("a")),
            txn.clone(),
            Op::invoke(p0, "write", json!(1))
                .with_key(json!("a"))
                .complete(OpType::Ok, json!(1)),
            Op::invoke(p0, "put", json!(["b", 2])),
            txn.complete(OpType::Ok, json!([["append", "b", 1], ["r", "c", [3]]])),
            Op::invoke(p0, "put", json!(["b", 2])).complete(OpType::Info, json!(["b", 2])),
            Op::invoke(Process::Nemesis, "start", Value::Null),
        ]);
        let expected = vec![(2, json!("a")), (4, json!("c")), (5, json!("b"))];
        assert_eq!(retired_by(&ops, LastUses::default()), expected);
        // All keys colliding: only the key used last retires, at its last use.
        assert_eq!(
            retired_by(&ops, LastUses::with_fingerprint(|_| 0)),
            vec![(5, json!("b"))]
        );
    }

    #[test]
    fn fingerprints_tell_keys_apart_by_their_json_text() {
        assert_eq!(fingerprint(&json!("a")), fingerprint(&json!("a")));
        assert_ne!(fingerprint(&json!("1")), fingerprint(&json!(1)));
        assert_ne!(fingerprint(&json!([1, 2])), fingerprint(&json!([2, 1])));
    }

    /// A keyed cas-register history of `keys` keys, `live` of them used at once, with
    /// an op in flight on many of them at any time, `ops_per_key` ops each; a write
    /// ends info now and then (it did not happen; its client continues under a fresh
    /// process), and every `bad_every`-th key's last read sees a value never written.
    fn interleaved(keys: u64, live: usize, ops_per_key: u32, bad_every: u64) -> History {
        struct Key {
            key: u64,
            process: u64,
            done: u32,
            value: Option<u64>,
            pending: Option<Op>,
        }
        // A small LCG: the same history every time, without a dev-dependency.
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut draw = |n: u64| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (seed >> 33) % n
        };
        let (mut ops, mut next_key, mut next_process) = (Vec::new(), 0u64, 0u64);
        let mut active: VecDeque<Key> = VecDeque::new();
        loop {
            while active.len() < live && next_key < keys {
                active.push_back(Key {
                    key: next_key,
                    process: next_process,
                    done: 0,
                    value: None,
                    pending: None,
                });
                next_key += 1;
                next_process += 1;
            }
            if active.is_empty() {
                break;
            }
            let at = draw(active.len() as u64) as usize;
            let k = &mut active[at];
            let process = Process::Client(k.process);
            match k.pending.take() {
                None => {
                    let op = if draw(2) == 0 {
                        Op::invoke(process, "read", Value::Null)
                    } else {
                        Op::invoke(process, "write", json!(draw(5) + 1))
                    };
                    let op = op.with_key(json!(k.key));
                    k.pending = Some(op.clone());
                    ops.push(op);
                }
                Some(invoke) => {
                    k.done += 1;
                    let last = k.done == ops_per_key;
                    let completion = if invoke.f == "read" {
                        let seen = if last && k.key.is_multiple_of(bad_every) {
                            Some(99)
                        } else {
                            k.value
                        };
                        invoke.complete(OpType::Ok, json!(seen))
                    } else if draw(10) == 0 {
                        k.process = next_process;
                        next_process += 1;
                        invoke.complete(OpType::Info, invoke.value.clone())
                    } else {
                        k.value = invoke.value.as_u64();
                        invoke.complete(OpType::Ok, invoke.value.clone())
                    };
                    ops.push(completion);
                    if last {
                        active.remove(at);
                    }
                }
            }
        }
        History::new(numbered(ops)).unwrap()
    }

    fn jsonl(history: &History) -> Vec<u8> {
        let mut bytes = Vec::new();
        for op in history.ops() {
            crate::format::write_jsonl_line(op, &mut bytes);
        }
        bytes
    }

    fn checkers() -> Vec<Box<dyn Checker>> {
        vec![
            CheckerSpec::named("linearizable")
                .with_model("cas-register")
                .build()
                .unwrap(),
            CheckerSpec::named("stats").build().unwrap(),
        ]
    }

    fn streamed(bytes: &[u8], uses: LastUses) -> Replay {
        replay_stream(
            uses,
            || Ok(bytes),
            None,
            "h.jsonl",
            &checkers(),
            &CheckContext::default(),
            64,
        )
        .unwrap()
    }

    #[test]
    fn a_stream_of_many_interleaved_keys_holds_only_the_live_ones_and_agrees_with_offline() {
        let ctx = CheckContext::default();
        for bad_every in [u64::MAX, 97] {
            let history = interleaved(1_500, 40, 12, bad_every);
            let offline = crate::check_all(&history, &checkers(), &ctx);
            let expected = if bad_every == u64::MAX {
                Validity::Valid
            } else {
                Validity::Invalid
            };
            assert_eq!(offline.checkers["linearizable"].valid, expected);
            let replay = streamed(&jsonl(&history), LastUses::default());
            assert_eq!(replay.results, offline);
            // 40 live keys of at most 24 ops each, and 40 invocations in flight.
            assert!(replay.max_held_ops <= 40 * 25, "{}", replay.max_held_ops);
            assert_eq!(replay.anomalies.is_empty(), bad_every == u64::MAX);
        }
    }

    #[test]
    fn colliding_fingerprints_retire_keys_late_and_change_no_verdict() {
        let ctx = CheckContext::default();
        let history = interleaved(600, 30, 10, 53);
        let offline = crate::check_all(&history, &checkers(), &ctx);
        assert_eq!(offline.checkers["linearizable"].valid, Validity::Invalid);
        let bytes = jsonl(&history);
        let exact = streamed(&bytes, LastUses::default());
        assert_eq!(exact.results, offline);
        for (uses, name) in [
            (LastUses::with_fingerprint(|_| 0), "one fingerprint"),
            (
                LastUses::with_fingerprint(|k| fingerprint(k) % 7),
                "seven fingerprints",
            ),
        ] {
            let replay = streamed(&bytes, uses);
            assert_eq!(replay.results, offline, "{name}");
            // The keys that lost their retirement were held to the end.
            assert!(
                replay.max_held_ops > exact.max_held_ops * 5,
                "{name}: {} vs {}",
                replay.max_held_ops,
                exact.max_held_ops
            );
        }
    }
}
