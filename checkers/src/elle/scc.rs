//! Strongly connected components (Tarjan), once for every graph the Elle checkers look
//! at: the dependency graph and its per-class subgraphs, the phased graphs of the
//! cycle-existence proofs, and each key's version graph.
//!
//! Iterative (a million-node component must not overflow the stack), and the graph is
//! given as a function, so no caller builds a second adjacency just to call it. The
//! tables are kept between calls: checking tens of thousands of small version graphs
//! allocates nothing per graph.

const UNVISITED: u32 = u32::MAX;

/// Tarjan's tables, reused from call to call.
#[derive(Default)]
pub(super) struct Tarjan {
    index: Vec<u32>,
    low: Vec<u32>,
    on_stack: Vec<bool>,
    stack: Vec<u32>,
    /// Explicit call stack: (node, cursor into its neighbours); 8 bytes a frame.
    calls: Vec<(u32, u32)>,
}

impl Tarjan {
    /// Calls `emit` with each strongly connected component of two or more nodes of the
    /// graph on nodes `0..n`. `next(v, cursor)` returns the neighbour of `v` at or after
    /// `*cursor` in v's own order, advancing the cursor past it, or `None` when v has no
    /// more.
    pub fn run(
        &mut self,
        n: usize,
        mut next: impl FnMut(usize, &mut u32) -> Option<usize>,
        mut emit: impl FnMut(&[u32]),
    ) {
        self.index.clear();
        self.index.resize(n, UNVISITED);
        self.low.clear();
        self.low.resize(n, 0);
        self.on_stack.clear();
        self.on_stack.resize(n, false);
        self.stack.clear();
        self.calls.clear();
        let Tarjan {
            index,
            low,
            on_stack,
            stack,
            calls,
        } = self;
        let mut counter = 0u32;
        for root in 0..n {
            if index[root] != UNVISITED {
                continue;
            }
            // The node to enter next: the root, then each unvisited neighbour.
            let mut enter = Some(root);
            loop {
                if let Some(w) = enter.take() {
                    index[w] = counter;
                    low[w] = counter;
                    counter += 1;
                    stack.push(w as u32);
                    on_stack[w] = true;
                    calls.push((w as u32, 0));
                }
                let Some(&mut (v, ref mut cursor)) = calls.last_mut() else {
                    break;
                };
                let v = v as usize;
                if let Some(w) = next(v, cursor) {
                    if index[w] == UNVISITED {
                        enter = Some(w);
                    } else if on_stack[w] {
                        low[v] = low[v].min(index[w]);
                    }
                    continue;
                }
                calls.pop();
                if let Some(&(u, _)) = calls.last() {
                    let u = u as usize;
                    low[u] = low[u].min(low[v]);
                }
                if low[v] == index[v] {
                    let from = stack
                        .iter()
                        .rposition(|&w| w as usize == v)
                        .expect("v is on the stack");
                    for &w in &stack[from..] {
                        on_stack[w as usize] = false;
                    }
                    if stack.len() - from > 1 {
                        emit(&stack[from..]);
                    }
                    stack.truncate(from);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sccs(n: usize, edges: &[(usize, usize)]) -> Vec<Vec<u32>> {
        let mut out = Vec::new();
        Tarjan::default().run(
            n,
            |v, cursor| {
                let mine: Vec<usize> = edges.iter().filter(|e| e.0 == v).map(|e| e.1).collect();
                let w = mine.get(*cursor as usize).copied();
                *cursor += 1;
                w
            },
            |c| {
                let mut c = c.to_vec();
                c.sort_unstable();
                out.push(c);
            },
        );
        out.sort();
        out
    }

    #[test]
    fn finds_components_of_two_or_more() {
        assert_eq!(
            sccs(6, &[(0, 1), (1, 0), (1, 2), (2, 3), (3, 4), (4, 2), (5, 5)]),
            vec![vec![0, 1], vec![2, 3, 4]]
        );
        assert!(sccs(3, &[(0, 1), (1, 2)]).is_empty());
    }
}
