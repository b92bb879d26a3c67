//! The ops of each live key, held until the key is retired and its ops in flight are
//! done; then handed over as a history of their own (global indices kept) for the
//! offline code to judge, and dropped.

use crate::fxhash::FxMap;
use crate::history::{History, HistoryError};
use crate::op::Op;
use serde_json::Value;

/// A key as the checkers group by it: the JSON text of the key (`None`: unkeyed ops).
pub(crate) type KeyText = Option<String>;

/// The text [`KeyText`] holds for a key value.
pub(crate) fn key_text(key: &Value) -> String {
    key.to_string()
}

#[derive(Default)]
struct Live {
    ops: Vec<Op>,
    in_flight: u32,
    retiring: bool,
    /// Client ops added since [`KeyedOps::take_dirty`] last returned this key.
    fresh: usize,
}

/// One key's ops, done: the key and its ops as a history.
pub(crate) struct Done {
    pub key: KeyText,
    pub history: Result<History, HistoryError>,
}

/// Live keys and their ops.
#[derive(Default)]
pub(crate) struct KeyedOps {
    live: FxMap<KeyText, Live>,
    /// Ops held now, over all keys.
    held: usize,
}

impl KeyedOps {
    /// A client invocation on `key`.
    pub fn invoked(&mut self, key: KeyText, op: &Op) {
        let live = self.live.entry(key).or_default();
        live.ops.push(op.clone());
        live.in_flight += 1;
        live.fresh += 1;
        self.held += 1;
    }

    /// The completion of an invocation on `key`; the key's ops when that was the last
    /// op in flight of a retiring key.
    pub fn completed(&mut self, key: KeyText, op: &Op) -> Option<Done> {
        let live = self.live.entry(key.clone()).or_default();
        live.ops.push(op.clone());
        live.in_flight = live.in_flight.saturating_sub(1);
        live.fresh += 1;
        self.held += 1;
        (live.retiring && live.in_flight == 0).then(|| self.take(key))
    }

    /// No op on `key` will be invoked any more: its ops when none is in flight, or
    /// when those in flight will never complete (`ended`).
    pub fn retire(&mut self, key: KeyText, ended: bool) -> Option<Done> {
        let live = self.live.get_mut(&key)?;
        live.retiring = true;
        (ended || live.in_flight == 0).then(|| self.take(key))
    }

    fn take(&mut self, key: KeyText) -> Done {
        let live = self.live.remove(&key).unwrap_or_default();
        self.held -= live.ops.len();
        Done {
            key,
            history: History::subsequence(live.ops),
        }
    }

    /// Every live key, in order of first use (the end of the history).
    pub fn drain(&mut self) -> Vec<Done> {
        let mut keys: Vec<(u64, KeyText)> = self
            .live
            .iter()
            .map(|(k, l)| (l.ops.first().map_or(u64::MAX, |o| o.index), k.clone()))
            .collect();
        keys.sort_unstable();
        keys.into_iter().map(|(_, k)| self.take(k)).collect()
    }

    /// The ops of `key` so far.
    pub fn ops(&self, key: &KeyText) -> Option<&[Op]> {
        self.live.get(key).map(|l| l.ops.as_slice())
    }

    /// Live keys with at least one eighth more ops than when last returned here (or
    /// with new ops, while small), each marked clean again. The growth rule keeps the
    /// cost of re-examining a key that is never retired linear in its length overall.
    pub fn take_dirty(&mut self) -> Vec<KeyText> {
        let mut dirty = Vec::new();
        for (key, live) in &mut self.live {
            let before = live.ops.len() - live.fresh;
            if live.fresh > 0 && live.fresh * 8 >= before {
                live.fresh = 0;
                dirty.push((live.ops[0].index, key.clone()));
            }
        }
        // In order of first use, so that what is reported does not depend on hashing.
        dirty.sort_unstable();
        dirty.into_iter().map(|(_, k)| k).collect()
    }

    /// Ops held now, over all live keys.
    pub fn held(&self) -> usize {
        self.held
    }
}
