//! The in-memory Raft log: the entries after the latest snapshot, plus that snapshot's
//! last index and term so `term(i)` answers for the boundary entry too.

use super::types::{Entry, Index, Term};

#[derive(Clone, Debug, Default)]
pub struct RaftLog {
    /// Index of the last entry covered by the snapshot (0 when there is none).
    offset: Index,
    /// Term of the entry at `offset`.
    offset_term: Term,
    /// Entries `offset+1 ..= last_index()`, contiguous.
    entries: Vec<Entry>,
}

impl RaftLog {
    pub fn new(offset: Index, offset_term: Term) -> RaftLog {
        RaftLog {
            offset,
            offset_term,
            entries: Vec::new(),
        }
    }

    pub fn offset(&self) -> Index {
        self.offset
    }

    pub fn last_index(&self) -> Index {
        self.offset + self.entries.len() as Index
    }

    pub fn last_term(&self) -> Term {
        self.entries.last().map_or(self.offset_term, |e| e.term)
    }

    /// The term of entry `index`, or None when it is compacted away or not there yet.
    pub fn term(&self, index: Index) -> Option<Term> {
        if index == self.offset {
            return Some(self.offset_term);
        }
        self.entry(index).map(|e| e.term)
    }

    pub fn entry(&self, index: Index) -> Option<&Entry> {
        if index <= self.offset {
            return None;
        }
        self.entries.get((index - self.offset - 1) as usize)
    }

    /// Entries `from ..= to` that are present (clipped to the log).
    pub fn slice(&self, from: Index, to: Index) -> &[Entry] {
        let from = from.max(self.offset + 1);
        let to = to.min(self.last_index());
        if from > to {
            return &[];
        }
        let lo = (from - self.offset - 1) as usize;
        let hi = (to - self.offset) as usize;
        &self.entries[lo..hi]
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Appends one entry; it must directly follow the last one (log matching relies on it).
    pub fn push(&mut self, entry: Entry) {
        assert_eq!(
            entry.index,
            self.last_index() + 1,
            "log entries must be contiguous"
        );
        debug_assert!(
            entry.term >= self.last_term(),
            "terms in a log never decrease"
        );
        self.entries.push(entry);
    }

    /// Drops every entry with index >= `from` (never the snapshot part).
    pub fn truncate_from(&mut self, from: Index) {
        assert!(from > self.offset, "cannot truncate into the snapshot");
        let keep = (from - self.offset - 1) as usize;
        self.entries.truncate(keep);
    }

    /// The first index of the run of entries with term `term` that contains `index`
    /// (used for the conflict hint sent back to a leader).
    pub fn first_index_of_term_at(&self, index: Index) -> Index {
        let Some(term) = self.term(index) else {
            return index;
        };
        let mut i = index;
        while i > self.offset + 1 && self.term(i - 1) == Some(term) {
            i -= 1;
        }
        i
    }

    /// The last index holding an entry of `term`, if any (leader side of the conflict hint).
    pub fn last_index_of_term(&self, term: Term) -> Option<Index> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.term == term)
            .map(|e| e.index)
    }

    /// Forgets entries up to and including `index`, which a snapshot now covers.
    /// Keeps the entries after it when they are present (a local compaction or a snapshot
    /// whose last entry we already have).
    pub fn compact_to(&mut self, index: Index, term: Term) {
        if index <= self.offset {
            return;
        }
        if self.term(index) == Some(term) {
            let drop = (index - self.offset) as usize;
            self.entries.drain(..drop);
        } else {
            self.entries.clear();
        }
        self.offset = index;
        self.offset_term = term;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::types::EntryKind;

    fn e(term: Term, index: Index) -> Entry {
        Entry {
            term,
            index,
            kind: EntryKind::Noop,
        }
    }

    fn log_of(terms: &[Term]) -> RaftLog {
        let mut log = RaftLog::new(0, 0);
        for (i, t) in terms.iter().enumerate() {
            log.push(e(*t, i as Index + 1));
        }
        log
    }

    #[test]
    fn term_lookup_covers_snapshot_boundary_and_reports_missing() {
        let mut log = log_of(&[1, 1, 2, 3]);
        log.compact_to(2, 1);
        assert_eq!(log.term(2), Some(1));
        assert_eq!(log.term(1), None);
        assert_eq!(log.term(4), Some(3));
        assert_eq!(log.term(5), None);
        assert_eq!(log.slice(1, 10).len(), 2);
    }

    #[test]
    fn conflict_hints_find_term_boundaries() {
        let log = log_of(&[1, 2, 2, 2, 4]);
        assert_eq!(log.first_index_of_term_at(4), 2);
        assert_eq!(log.last_index_of_term(2), Some(4));
        assert_eq!(log.last_index_of_term(3), None);
    }

    #[test]
    fn compaction_with_unknown_last_entry_drops_everything() {
        let mut log = log_of(&[1, 1, 1]);
        log.compact_to(5, 2);
        assert_eq!(log.last_index(), 5);
        assert_eq!(log.last_term(), 2);
        assert!(log.entries().is_empty());
    }

    #[test]
    #[should_panic(expected = "contiguous")]
    fn pushing_a_gap_is_refused() {
        let mut log = log_of(&[1]);
        log.push(e(1, 3));
    }
}
