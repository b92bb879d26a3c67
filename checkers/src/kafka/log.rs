//! Version orders: what the history says each key's log holds at each offset.
//!
//! Every acknowledged send with an offset and every record a poll returned is an
//! observation `(key, offset, message)`. Per key, the observed offsets sorted ascending
//! give the log; offsets nobody observed are holes (Kafka logs may be sparse), so each
//! observed offset gets a dense *index* and skips and reorderings are measured in
//! indices. An offset observed with two messages is an inconsistency; a message observed
//! at two offsets is a duplicate. A message's index is that of the first offset it was
//! seen at.

use crate::convergence::Elem;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// One key's log as observed.
#[derive(Debug, Default)]
pub struct KeyLog {
    /// offset → the messages observed there (normally exactly one).
    pub offsets: BTreeMap<i64, BTreeSet<Elem>>,
    /// The dense index of each message: that of the first offset it was seen at.
    first_index: HashMap<Elem, usize>,
    /// The dense index of the last offset each message was seen at.
    last_index: HashMap<Elem, usize>,
    /// Dense index → the offset it stands for.
    index_offsets: Vec<i64>,
}

impl KeyLog {
    pub fn observe(&mut self, offset: i64, msg: Elem) {
        self.offsets.entry(offset).or_default().insert(msg);
    }

    /// Computes the dense indices; call once after every observation.
    pub fn index(&mut self) {
        self.index_offsets = self.offsets.keys().copied().collect();
        for (i, msgs) in self.offsets.values().enumerate() {
            for m in msgs {
                self.first_index.entry(m.clone()).or_insert(i);
                self.last_index.insert(m.clone(), i);
            }
        }
    }

    pub fn index_of(&self, msg: &Elem) -> Option<usize> {
        self.first_index.get(msg).copied()
    }

    pub fn last_index_of(&self, msg: &Elem) -> Option<usize> {
        self.last_index.get(msg).copied()
    }

    pub fn len(&self) -> usize {
        self.index_offsets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index_offsets.is_empty()
    }

    /// The messages at dense indices `from..to`, for evidence (one per offset).
    pub fn between(&self, from: usize, to: usize) -> Vec<(i64, Elem)> {
        (from..to.min(self.index_offsets.len()))
            .filter_map(|i| {
                let offset = self.index_offsets[i];
                let msg = self.offsets.get(&offset)?.iter().next()?.clone();
                Some((offset, msg))
            })
            .collect()
    }

    /// Offsets observed with more than one message.
    pub fn inconsistent(&self) -> impl Iterator<Item = (i64, &BTreeSet<Elem>)> + '_ {
        self.offsets
            .iter()
            .filter(|(_, m)| m.len() > 1)
            .map(|(o, m)| (*o, m))
    }

    /// Messages observed at more than one offset, with those offsets.
    pub fn duplicates(&self) -> Vec<(Elem, Vec<i64>)> {
        let mut at: BTreeMap<&Elem, Vec<i64>> = BTreeMap::new();
        for (o, msgs) in &self.offsets {
            for m in msgs {
                at.entry(m).or_default().push(*o);
            }
        }
        at.into_iter()
            .filter(|(_, offsets)| offsets.len() > 1)
            .map(|(m, offsets)| (m.clone(), offsets))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_offsets_get_dense_indices_and_conflicts_are_found() {
        let mut log = KeyLog::default();
        log.observe(10, Elem::Int(1));
        log.observe(3, Elem::Int(0));
        log.observe(20, Elem::Int(2));
        log.observe(20, Elem::Int(9));
        log.observe(30, Elem::Int(1));
        log.index();
        assert_eq!(log.index_of(&Elem::Int(0)), Some(0));
        assert_eq!(log.index_of(&Elem::Int(1)), Some(1));
        assert_eq!(log.last_index_of(&Elem::Int(1)), Some(3));
        assert_eq!(
            log.between(1, 3),
            vec![(10, Elem::Int(1)), (20, Elem::Int(2))]
        );
        assert_eq!(log.inconsistent().count(), 1);
        assert_eq!(log.duplicates(), vec![(Elem::Int(1), vec![10, 30])]);
    }
}
