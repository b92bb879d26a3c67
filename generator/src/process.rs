//! Process ids. A process runs one op at a time; after an `info` (indeterminate)
//! completion it may still have that op in flight, so it retires and its logical client
//! continues under a fresh id, `p + concurrency` (Jepsen's rule). Final reads run under
//! ids above any the main phase can reach.

/// First process id of the final phase.
pub const FINAL_BASE: u64 = 1_000_000_000;
/// Final-phase ids per node (each attempt of each final op takes one).
pub const FINAL_PER_NODE: u64 = 1_000;

/// The process ids of one logical client thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Processes {
    current: u64,
    concurrency: u64,
}

impl Processes {
    /// Client thread `thread` of `concurrency` starts as process `thread`.
    pub fn new(thread: usize, concurrency: usize) -> Processes {
        assert!(
            thread < concurrency.max(1),
            "thread {thread} of {concurrency}"
        );
        Processes {
            current: thread as u64,
            concurrency: concurrency.max(1) as u64,
        }
    }

    pub fn current(&self) -> u64 {
        self.current
    }

    /// Retires the current process (after an `info`); returns its successor.
    pub fn retire(&mut self) -> u64 {
        self.current += self.concurrency;
        self.current
    }
}

/// The first process id of the final phase on node number `node`.
pub fn final_process(node: usize) -> u64 {
    FINAL_BASE + node as u64 * FINAL_PER_NODE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retired_ids_never_collide_between_threads() {
        let mut seen = std::collections::BTreeSet::new();
        for thread in 0..4 {
            let mut p = Processes::new(thread, 4);
            assert!(seen.insert(p.current()));
            for _ in 0..10 {
                assert!(seen.insert(p.retire()));
            }
        }
        assert!(seen.iter().all(|p| *p < final_process(0)));
    }
}
