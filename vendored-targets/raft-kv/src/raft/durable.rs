//! The durable state of one node as plain data, and the rules for applying the core's
//! `LogOp`s to it. The disk WAL keeps one as its mirror and replays into one on recovery;
//! the simulator uses one as a node's "disk". Sharing it keeps both honest.

use super::types::{Entry, HardState, Index, LogOp, Snapshot};
use thiserror::Error;

/// Why a sequence of log operations cannot be applied.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DurableError {
    #[error("log entry {got} does not follow entry {last}; the write-ahead log is corrupt, restore the node from a peer by wiping its data directory")]
    Gap { last: Index, got: Index },
}

/// Hard state, latest snapshot and the entries after it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DurableState {
    pub hard_state: HardState,
    pub snapshot: Option<Snapshot>,
    /// Entries after the snapshot, contiguous.
    pub entries: Vec<Entry>,
}

impl DurableState {
    pub fn snapshot_index(&self) -> Index {
        self.snapshot.as_ref().map_or(0, |s| s.index)
    }

    pub fn last_index(&self) -> Index {
        self.entries
            .last()
            .map_or(self.snapshot_index(), |e| e.index)
    }

    /// Applies one operation. Appending entry `i` first drops any entries >= `i`, which
    /// is what replaying a WAL that recorded an overwrite needs.
    pub fn apply(&mut self, op: &LogOp) -> Result<(), DurableError> {
        match op {
            LogOp::Truncate { from } => self.entries.retain(|e| e.index < *from),
            LogOp::Append(entries) => {
                for e in entries {
                    self.append_one(e.clone())?;
                }
            }
            LogOp::Snapshot(snap) => {
                self.entries.retain(|e| e.index > snap.index);
                self.snapshot = Some(snap.clone());
                if let Some(first) = self.entries.first() {
                    if first.index != snap.index + 1 {
                        // Entries after a gap cannot follow the snapshot; drop them.
                        self.entries.clear();
                    }
                }
            }
        }
        Ok(())
    }

    /// Appends one entry (dropping entries it overwrites); entries a snapshot covers are
    /// ignored.
    pub fn append_one(&mut self, e: Entry) -> Result<(), DurableError> {
        if e.index <= self.snapshot_index() {
            return Ok(());
        }
        self.entries.retain(|x| x.index < e.index);
        let last = self.last_index();
        if e.index != last + 1 {
            return Err(DurableError::Gap { last, got: e.index });
        }
        self.entries.push(e);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::types::{EntryKind, Membership};

    fn e(term: u64, index: Index) -> Entry {
        Entry {
            term,
            index,
            kind: EntryKind::Noop,
        }
    }

    #[test]
    fn overwriting_append_drops_the_old_suffix() {
        let mut d = DurableState::default();
        d.apply(&LogOp::Append(vec![e(1, 1), e(1, 2), e(1, 3)]))
            .unwrap();
        d.apply(&LogOp::Append(vec![e(2, 2)])).unwrap();
        assert_eq!(d.entries, vec![e(1, 1), e(2, 2)]);
    }

    #[test]
    fn snapshot_keeps_following_entries_and_rejects_gaps() {
        let mut d = DurableState::default();
        d.apply(&LogOp::Append(vec![e(1, 1), e(1, 2), e(1, 3)]))
            .unwrap();
        let snap = Snapshot {
            index: 2,
            term: 1,
            membership: Membership::default(),
            data: String::new(),
        };
        d.apply(&LogOp::Snapshot(snap)).unwrap();
        assert_eq!(d.entries, vec![e(1, 3)]);
        assert_eq!(
            d.append_one(e(1, 6)),
            Err(DurableError::Gap { last: 3, got: 6 })
        );
    }
}
