//! The dirty bytes of one file: what was written since its last fsync, as non-overlapping,
//! non-adjacent byte runs keyed by offset.
//!
//! This is the page cache of the emulation, kept at byte rather than page granularity so
//! that a fault can say exactly how many bytes it dropped, and so that a torn write can
//! keep an exact prefix. Appends (the common case: logs) extend the last run in place, so
//! a WAL written without fsync is one growing `Vec`, not thousands of pages.

use std::collections::BTreeMap;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Extents {
    /// Offset -> bytes. Invariant: runs neither overlap nor touch (touching runs merge).
    runs: BTreeMap<u64, Vec<u8>>,
    /// Sum of the runs' lengths.
    bytes: u64,
}

impl Extents {
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Dirty bytes held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The runs in offset order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &[u8])> {
        self.runs.iter().map(|(off, data)| (*off, data.as_slice()))
    }

    pub fn clear(&mut self) {
        self.runs.clear();
        self.bytes = 0;
    }

    /// Records `data` written at `offset`, replacing whatever dirty bytes were there.
    pub fn write(&mut self, offset: u64, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let end = offset + data.len() as u64;
        // Fast path: an append right at the end of the last run.
        if let Some((&start, last)) = self.runs.iter_mut().next_back() {
            if start + last.len() as u64 == offset {
                last.extend_from_slice(data);
                self.bytes += data.len() as u64;
                return;
            }
        }
        // Every run that overlaps or touches [offset, end) merges into one new run.
        let touching: Vec<u64> = self
            .runs
            .range(..=end)
            .rev()
            .take_while(|(start, run)| *start + run.len() as u64 >= offset)
            .map(|(start, _)| *start)
            .collect();
        let mut merged_start = offset;
        let mut merged_end = end;
        for start in &touching {
            let len = self.runs[start].len() as u64;
            merged_start = merged_start.min(*start);
            merged_end = merged_end.max(start + len);
        }
        let mut merged = vec![0u8; (merged_end - merged_start) as usize];
        for start in touching {
            let run = self.runs.remove(&start).expect("listed above");
            self.bytes -= run.len() as u64;
            let at = (start - merged_start) as usize;
            merged[at..at + run.len()].copy_from_slice(&run);
        }
        let at = (offset - merged_start) as usize;
        merged[at..at + data.len()].copy_from_slice(data);
        self.bytes += merged.len() as u64;
        self.runs.insert(merged_start, merged);
        debug_assert!(self.invariant_holds());
    }

    /// Drops every dirty byte at or beyond `len` (the file was truncated there).
    pub fn truncate(&mut self, len: u64) {
        let beyond: Vec<u64> = self.runs.range(len..).map(|(start, _)| *start).collect();
        for start in beyond {
            let run = self.runs.remove(&start).expect("listed above");
            self.bytes -= run.len() as u64;
        }
        if let Some((&start, run)) = self.runs.iter_mut().next_back() {
            let end = start + run.len() as u64;
            if end > len {
                let keep = (len - start) as usize;
                self.bytes -= (run.len() - keep) as u64;
                run.truncate(keep);
            }
        }
        debug_assert!(self.invariant_holds());
    }

    /// Copies the dirty bytes inside `[offset, offset + buf.len())` over `buf`; bytes with
    /// nothing dirty are left as they are.
    pub fn overlay(&self, offset: u64, buf: &mut [u8]) {
        let end = offset + buf.len() as u64;
        // The run starting before `offset` may reach into the window.
        let first = self
            .runs
            .range(..=offset)
            .next_back()
            .map(|(s, _)| *s)
            .unwrap_or(offset);
        for (&start, run) in self.runs.range(first..end) {
            let run_end = start + run.len() as u64;
            let from = start.max(offset);
            let to = run_end.min(end);
            if from >= to {
                continue;
            }
            buf[(from - offset) as usize..(to - offset) as usize]
                .copy_from_slice(&run[(from - start) as usize..(to - start) as usize]);
        }
    }

    fn invariant_holds(&self) -> bool {
        let mut prev_end: Option<u64> = None;
        let mut sum = 0;
        for (&start, run) in &self.runs {
            if run.is_empty() || prev_end.is_some_and(|e| e >= start) {
                return false;
            }
            prev_end = Some(start + run.len() as u64);
            sum += run.len() as u64;
        }
        sum == self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The reference: a plain byte vector plus a mask of which bytes are dirty.
    #[derive(Default)]
    struct Naive {
        data: Vec<u8>,
        dirty: Vec<bool>,
    }

    impl Naive {
        fn write(&mut self, offset: u64, bytes: &[u8]) {
            let end = offset as usize + bytes.len();
            if self.data.len() < end {
                self.data.resize(end, 0);
                self.dirty.resize(end, false);
            }
            self.data[offset as usize..end].copy_from_slice(bytes);
            self.dirty[offset as usize..end]
                .iter_mut()
                .for_each(|d| *d = true);
        }
        fn truncate(&mut self, len: u64) {
            let len = len as usize;
            if self.data.len() > len {
                self.data.truncate(len);
                self.dirty.truncate(len);
            }
        }
    }

    #[derive(Debug, Clone)]
    enum Step {
        Write(u64, Vec<u8>),
        Truncate(u64),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (0u64..200, proptest::collection::vec(any::<u8>(), 0..40))
                .prop_map(|(o, d)| Step::Write(o, d)),
            1 => (0u64..220).prop_map(Step::Truncate),
        ]
    }

    proptest! {
        #[test]
        fn extents_hold_exactly_the_dirty_bytes_of_a_naive_model(steps in proptest::collection::vec(step(), 0..60)) {
            let mut ext = Extents::default();
            let mut naive = Naive::default();
            for s in &steps {
                match s {
                    Step::Write(o, d) => { ext.write(*o, d); naive.write(*o, d); }
                    Step::Truncate(l) => { ext.truncate(*l); naive.truncate(*l); }
                }
                prop_assert!(ext.invariant_holds());
            }
            let dirty_count = naive.dirty.iter().filter(|d| **d).count() as u64;
            prop_assert_eq!(ext.bytes(), dirty_count);
            // Overlaying on a sentinel shows which bytes are dirty and what they hold.
            let mut buf = vec![0xAAu8; 260];
            ext.overlay(0, &mut buf);
            for (i, b) in buf.iter().enumerate() {
                let expected = if naive.dirty.get(i).copied().unwrap_or(false) { naive.data[i] } else { 0xAA };
                prop_assert_eq!(*b, expected, "byte {}", i);
            }
            // And a window in the middle sees the same bytes.
            let mut window = vec![0xAAu8; 37];
            ext.overlay(55, &mut window);
            prop_assert_eq!(&window[..], &buf[55..92]);
        }
    }

    #[test]
    fn appends_grow_one_run() {
        let mut ext = Extents::default();
        for i in 0..1000u64 {
            ext.write(i * 10, &[1; 10]);
        }
        assert_eq!(ext.iter().count(), 1);
        assert_eq!(ext.bytes(), 10_000);
    }

    #[test]
    fn a_write_bridging_two_runs_merges_them() {
        let mut ext = Extents::default();
        ext.write(0, b"ab");
        ext.write(10, b"yz");
        ext.write(1, &[b'-'; 10]);
        let runs: Vec<(u64, Vec<u8>)> = ext.iter().map(|(o, d)| (o, d.to_vec())).collect();
        assert_eq!(runs, vec![(0, b"a----------z".to_vec())]);
        assert_eq!(ext.bytes(), 12);
    }
}
