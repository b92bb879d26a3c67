//! The exact search: Wing & Gong's backtracking with Lowe's cache, as in Porcupine.
//!
//! The history of one partition is a list of call and return entries in real-time order.
//! The search walks the list from its head: a call may be *lifted* (linearized now) if
//! the model accepts it in the current state; lifting removes its call and return from
//! the list and restarts from the head. Reaching a return means the op it closes should
//! have been linearized already, so the search backtracks: it undoes the last lift and
//! tries the next candidate after it. Ops with unknown outcome have no return entry: they
//! can be lifted anywhere after their call, or never (they may not have happened). The
//! history is linearizable when the walk runs off the end of the list, i.e. every op that
//! completed `ok` is lifted.
//!
//! Lowe's cache records every (set of lifted ops, model state) configuration reached; a
//! configuration seen before has been fully explored, so the search prunes it; that is
//! what makes the search fast. (The search is finite without it: each lift removes an
//! op.) A forced lift, of the op at the head of the list whose return follows its call
//! directly (no op overlaps it), is the only way on, so it is cached only at every 8th
//! depth: in histories with little concurrency most lifts are forced, and a
//! configuration reached again is still recognised within 8 lifts. The
//! set of lifted ops is a bitset kept in canonical form (`lo`: the first word not all
//! ones, `hi`: one past the last non-zero word), so the cache stores only the words in
//! between: the window of concurrency, not the whole history. Its hash is kept up to date
//! in O(1) per lift (Zobrist hashing: XOR of one random word per op).

use super::hash::{hash_of, splitmix64};
use super::models::Model;
use super::prepare::{sort_nearly_sorted_by_key, PartOp};
use crate::checker::Cancel;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How often (in search steps, a power of two) the search looks at the cancel flag and
/// the memory bound.
const CHECK_EVERY_STEPS: u64 = 1 << 10;
/// At most this many distinct states are kept for a counterexample's "could have seen".
pub(crate) const MAX_RECORDED_STATES: usize = 16;
/// Forced lifts are cached only at depths that are a multiple of this (see `search_in`).
const FORCED_CACHE_EVERY: usize = 8;
/// Marks "no entry" in the linked list.
const NIL: u32 = u32::MAX;

/// Limits a search runs under, shared by the partitions searched in parallel.
pub(crate) struct Limits<'a> {
    pub cancel: &'a Cancel,
    pub memory_limit_bytes: usize,
    /// Bytes used by all searches running now.
    pub memory_used_bytes: &'a AtomicUsize,
    /// Raised when this search's answer is no longer needed.
    pub abandon: &'a (dyn Fn() -> bool + Sync),
    /// Steps after which the search gives up ([`GaveUp::StepBudget`]); `u64::MAX` for a
    /// verdict, a budget for the best-effort searches of a counterexample.
    pub max_steps: u64,
}

/// Why a search stopped without an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GaveUp {
    Cancelled,
    MemoryLimit,
    Abandoned,
    StepBudget,
}

/// What a search found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Linearizable,
    NotLinearizable,
    GaveUp(GaveUp),
}

/// What a search records for a counterexample (only when asked: it costs time).
#[derive(Debug)]
pub(crate) struct Recording<S> {
    /// The op whose candidate states to collect.
    pub target: usize,
    /// Distinct states the model was in when `target` was tried (at most
    /// [`MAX_RECORDED_STATES`]).
    pub target_states: Vec<S>,
    /// Whether more distinct states than were kept were seen.
    pub target_states_truncated: bool,
    /// The deepest partial linearization reached: ops in order, each with the state after it.
    pub deepest: Vec<(usize, S)>,
}

impl<S> Recording<S> {
    pub fn new(target: usize) -> Recording<S> {
        Recording {
            target,
            target_states: Vec::new(),
            target_states_truncated: false,
            deepest: Vec::new(),
        }
    }
}

/// The set of lifted ops, in canonical windowed form (see the module doc).
struct Lifted {
    words: Vec<u64>,
    /// First word that is not all ones.
    lo: usize,
    /// One past the last non-zero word.
    hi: usize,
    /// XOR of the Zobrist words of the set bits.
    hash: u64,
}

impl Lifted {
    #[cfg(test)]
    fn new(ops: usize) -> Lifted {
        let mut lifted = Lifted {
            words: Vec::new(),
            lo: 0,
            hi: 0,
            hash: 0,
        };
        lifted.reset(ops);
        lifted
    }

    /// The empty set over `ops` ops, reusing the memory.
    fn reset(&mut self, ops: usize) {
        self.words.clear();
        self.words.resize(ops.div_ceil(64), 0);
        (self.lo, self.hi, self.hash) = (0, 0, 0);
    }

    fn set(&mut self, op: usize) {
        let w = op / 64;
        debug_assert_eq!(self.words[w] & (1 << (op % 64)), 0, "op {op} lifted twice");
        self.words[w] |= 1 << (op % 64);
        self.hash ^= splitmix64(op as u64);
        self.hi = self.hi.max(w + 1);
        while self.lo < self.words.len() && self.words[self.lo] == u64::MAX {
            self.lo += 1;
        }
    }

    fn clear(&mut self, op: usize) {
        let w = op / 64;
        debug_assert_ne!(self.words[w] & (1 << (op % 64)), 0, "op {op} not lifted");
        self.words[w] &= !(1 << (op % 64));
        self.hash ^= splitmix64(op as u64);
        self.lo = self.lo.min(w);
        while self.hi > 0 && self.words[self.hi - 1] == 0 {
            self.hi -= 1;
        }
    }

    /// The words that differ from "all ones below, all zeros above".
    fn window(&self) -> &[u64] {
        &self.words[self.lo..self.hi.max(self.lo)]
    }
}

/// Lowe's cache: every (lifted set, state) configuration reached, in an open-addressing
/// table over flat arrays (one allocation per array, not per entry).
struct Cache<S> {
    /// 0: empty; otherwise entry index + 1.
    slots: Vec<u32>,
    hashes: Vec<u64>,
    /// Per entry: `lo` of the lifted set and its window in `arena`.
    spans: Vec<(u32, usize, u32)>,
    arena: Vec<u64>,
    states: Vec<S>,
    state_bytes: usize,
}

/// The smallest table [`Cache::reset`] makes.
const MIN_CACHE_SLOTS: usize = 1 << 10;

impl<S: Eq> Cache<S> {
    /// A cache with no memory yet; [`Cache::reset`] makes its table.
    fn empty() -> Cache<S> {
        Cache {
            slots: Vec::new(),
            hashes: Vec::new(),
            spans: Vec::new(),
            arena: Vec::new(),
            states: Vec::new(),
            state_bytes: 0,
        }
    }

    #[cfg(test)]
    fn new() -> Cache<S> {
        let mut cache = Cache::empty();
        cache.reset(0);
        cache
    }

    /// Empties the cache for a search over `ops` ops, reusing its memory. A search lifts
    /// every op at least once, but forced lifts are mostly not cached: room for half as
    /// many entries is made up front, and the cache grows when a search needs more (a
    /// table left much larger by an earlier, harder search is shrunk: clearing it would
    /// cost more than the search).
    fn reset(&mut self, ops: usize) {
        let want = (ops + 1).next_power_of_two().max(MIN_CACHE_SLOTS);
        if self.slots.len() < want || self.slots.len() > 4 * want {
            self.slots = vec![0; want];
        } else {
            self.slots.fill(0);
        }
        self.hashes.clear();
        self.spans.clear();
        self.arena.clear();
        self.states.clear();
        let room = ops / 2 + 1;
        self.hashes.reserve(room);
        self.spans.reserve(room);
        self.states.reserve(room);
        self.state_bytes = 0;
    }

    fn bytes(&self) -> usize {
        self.slots.capacity() * 4
            + self.hashes.capacity() * 8
            + self.spans.capacity() * std::mem::size_of::<(u32, usize, u32)>()
            + self.arena.capacity() * 8
            + self.state_bytes
    }

    /// Adds the configuration; `false` when it was there already.
    fn insert(&mut self, lifted: &Lifted, state: &S, state_hash: u64, state_bytes: usize) -> bool
    where
        S: Clone,
    {
        let hash = lifted.hash ^ state_hash;
        let window = lifted.window();
        let mask = self.slots.len() - 1;
        let mut at = (hash as usize) & mask;
        // Bounded: the table is at most half full, so an empty slot exists.
        loop {
            let slot = self.slots[at];
            if slot == 0 {
                break;
            }
            let e = (slot - 1) as usize;
            if self.hashes[e] == hash {
                let (lo, start, len) = self.spans[e];
                if lo as usize == lifted.lo
                    && &self.arena[start..start + len as usize] == window
                    && self.states[e] == *state
                {
                    return false;
                }
            }
            at = (at + 1) & mask;
        }
        let e = u32::try_from(self.hashes.len() + 1).expect("fewer than 4 billion configurations");
        self.slots[at] = e;
        self.hashes.push(hash);
        self.spans
            .push((lifted.lo as u32, self.arena.len(), window.len() as u32));
        self.arena.extend_from_slice(window);
        self.states.push(state.clone());
        self.state_bytes += state_bytes;
        if self.hashes.len() * 2 > self.slots.len() {
            self.grow();
        }
        true
    }

    fn grow(&mut self) {
        let size = self.slots.len() * 2;
        let mask = size - 1;
        self.slots = vec![0; size];
        for (e, &hash) in self.hashes.iter().enumerate() {
            let mut at = (hash as usize) & mask;
            while self.slots[at] != 0 {
                at = (at + 1) & mask;
            }
            self.slots[at] = e as u32 + 1;
        }
    }
}

/// The call/return list of a partition, as a doubly linked list over entry nodes.
/// Node 0 is the head sentinel; entry `k` (in real-time order) is node `k + 1`.
struct Entries {
    /// Per node: op index << 1 | is_return (node 0 unused).
    code: Vec<u32>,
    next: Vec<u32>,
    prev: Vec<u32>,
    call_node: Vec<u32>,
    /// `NIL` for ops with unknown outcome.
    ret_node: Vec<u32>,
}

impl Entries {
    /// The list of `ops` (in invocation order), reusing the memory. Calls are in order
    /// already; returns come nearly in order (an op returns after the few ops concurrent
    /// with it), so they are put in order by insertion and merged with the calls.
    fn reset<O>(&mut self, ops: &[PartOp<O>], returns: &mut Vec<(u32, u32)>) {
        // Codes keep one bit for call/return; a history holds fewer than 2^32 entries
        // and an op with a completion takes two, so this holds for real histories.
        assert!(ops.len() < 1 << 31, "fewer than 2^31 ops per key");
        debug_assert!(ops.windows(2).all(|w| w[0].invoke < w[1].invoke));
        returns.clear();
        returns.extend(
            ops.iter()
                .enumerate()
                .filter_map(|(i, op)| op.ret.map(|r| (r, ((i as u32) << 1) | 1))),
        );
        sort_nearly_sorted_by_key(returns, |&(r, _)| r);
        let nodes = ops.len() + returns.len() + 1;
        self.code.clear();
        self.code.reserve(nodes);
        self.code.push(0);
        let mut rets = returns.iter().peekable();
        for (i, op) in ops.iter().enumerate() {
            while let Some(&&(_, c)) = rets.peek().filter(|(r, _)| *r < op.invoke) {
                self.code.push(c);
                rets.next();
            }
            self.code.push((i as u32) << 1);
        }
        self.code.extend(rets.map(|&(_, c)| c));
        self.call_node.clear();
        self.call_node.resize(ops.len(), NIL);
        self.ret_node.clear();
        self.ret_node.resize(ops.len(), NIL);
        for (node, &c) in self.code.iter().enumerate().skip(1) {
            let slot = if c & 1 == 0 {
                &mut self.call_node
            } else {
                &mut self.ret_node
            };
            slot[(c >> 1) as usize] = node as u32;
        }
        self.next.clear();
        self.next.extend((1..nodes as u32).chain([NIL]));
        self.prev.clear();
        self.prev
            .extend((0..nodes as u32).map(|n| n.wrapping_sub(1)));
    }

    fn unlink(&mut self, node: u32) {
        let (p, n) = (self.prev[node as usize], self.next[node as usize]);
        self.next[p as usize] = n;
        if n != NIL {
            self.prev[n as usize] = p;
        }
    }

    /// Undoes `unlink(node)`; unlinks must be undone in reverse order.
    fn relink(&mut self, node: u32) {
        let (p, n) = (self.prev[node as usize], self.next[node as usize]);
        self.next[p as usize] = node;
        if n != NIL {
            self.prev[n as usize] = node;
        }
    }
}

/// The memory of a search, kept between searches so that checking many partitions on
/// one thread allocates (and the kernel maps and unmaps) once, not once per partition.
pub(crate) struct Scratch<S> {
    list: Entries,
    returns: Vec<(u32, u32)>,
    lifted: Lifted,
    cache: Cache<S>,
    /// (op, state before it): the current partial linearization.
    stack: Vec<(u32, S)>,
}

impl<S: Eq> Default for Scratch<S> {
    fn default() -> Scratch<S> {
        Scratch {
            list: Entries {
                code: Vec::new(),
                next: Vec::new(),
                prev: Vec::new(),
                call_node: Vec::new(),
                ret_node: Vec::new(),
            },
            returns: Vec::new(),
            lifted: Lifted {
                words: Vec::new(),
                lo: 0,
                hi: 0,
                hash: 0,
            },
            cache: Cache::empty(),
            stack: Vec::new(),
        }
    }
}

/// Searches for a linearization of `ops` (one partition) under `model`.
pub(crate) fn search<M: Model>(
    model: &M,
    ops: &[PartOp<M::Op>],
    limits: &Limits<'_>,
    record: Option<&mut Recording<M::State>>,
) -> Outcome {
    search_in(&mut Scratch::default(), model, ops, limits, record)
}

/// [`search`] in the memory of `scratch`.
pub(crate) fn search_in<M: Model>(
    scratch: &mut Scratch<M::State>,
    model: &M,
    ops: &[PartOp<M::Op>],
    limits: &Limits<'_>,
    mut record: Option<&mut Recording<M::State>>,
) -> Outcome {
    let Scratch {
        list,
        returns,
        lifted,
        cache,
        stack,
    } = scratch;
    list.reset(ops, returns);
    lifted.reset(ops.len());
    cache.reset(ops.len());
    stack.clear();
    // The deepest partial linearization holds every op once.
    stack.reserve(ops.len() + 1);
    let mut state = model.init();
    let mut reported_bytes = 0usize;
    let mut steps = 0u64;
    let mut cur = list.next[0];
    // Terminates: every lift removes an op (depth at most the op count, each level
    // tries each candidate once), and the cache prunes what was explored before; the
    // limits below stop it earlier when asked to.
    let outcome = loop {
        // Checked on the first step too, so a flag raised before the start always counts.
        if steps & (CHECK_EVERY_STEPS - 1) == 0 {
            if let Some(gave_up) = check_limits(limits, steps, cache, stack, &mut reported_bytes) {
                break Outcome::GaveUp(gave_up);
            }
        }
        steps += 1;
        if cur == NIL {
            break Outcome::Linearizable;
        }
        let code = list.code[cur as usize];
        let op = (code >> 1) as usize;
        if code & 1 == 0 {
            if let Some(rec) = record.as_deref_mut() {
                if rec.target == op {
                    remember_state(rec, &state);
                }
            }
            if let Some(next) = model.step(&state, &ops[op].op) {
                lifted.set(op);
                // A forced lift (the op heads the list and its return comes right
                // after its call) has no alternative: it skips the cache, except at
                // every FORCED_CACHE_EVERY-th depth, so that a configuration reached
                // again is recognised after at most that many forced lifts.
                let forced = cur == list.next[0]
                    && list.ret_node[op] != NIL
                    && list.next[cur as usize] == list.ret_node[op]
                    && (stack.len() + 1) % FORCED_CACHE_EVERY != 0;
                if forced || cache.insert(lifted, &next, hash_of(&next), model.state_bytes(&next)) {
                    stack.push((op as u32, std::mem::replace(&mut state, next)));
                    list.unlink(list.call_node[op]);
                    if list.ret_node[op] != NIL {
                        list.unlink(list.ret_node[op]);
                    }
                    cur = list.next[0];
                    continue;
                }
                lifted.clear(op);
            }
            cur = list.next[cur as usize];
        } else {
            if let Some(rec) = record.as_deref_mut() {
                remember_deepest(rec, stack, &state);
            }
            let Some((undo, before)) = stack.pop() else {
                break Outcome::NotLinearizable;
            };
            let undo = undo as usize;
            state = before;
            lifted.clear(undo);
            if list.ret_node[undo] != NIL {
                list.relink(list.ret_node[undo]);
            }
            list.relink(list.call_node[undo]);
            cur = list.next[list.call_node[undo] as usize];
        }
    };
    if let Some(rec) = record {
        if outcome == Outcome::Linearizable {
            remember_deepest(rec, stack, &state);
        }
    }
    limits
        .memory_used_bytes
        .fetch_sub(reported_bytes, Ordering::Relaxed);
    outcome
}

#[allow(clippy::ptr_arg)] // the capacity, not the length, is what occupies memory
fn check_limits<S: Eq>(
    limits: &Limits<'_>,
    steps: u64,
    cache: &Cache<S>,
    stack: &Vec<(u32, S)>,
    reported_bytes: &mut usize,
) -> Option<GaveUp> {
    if limits.cancel.is_cancelled() {
        return Some(GaveUp::Cancelled);
    }
    if (limits.abandon)() {
        return Some(GaveUp::Abandoned);
    }
    if steps >= limits.max_steps {
        return Some(GaveUp::StepBudget);
    }
    let bytes = cache.bytes() + stack.capacity() * std::mem::size_of::<(u32, S)>();
    if bytes >= *reported_bytes {
        limits
            .memory_used_bytes
            .fetch_add(bytes - *reported_bytes, Ordering::Relaxed);
    } else {
        limits
            .memory_used_bytes
            .fetch_sub(*reported_bytes - bytes, Ordering::Relaxed);
    }
    *reported_bytes = bytes;
    (limits.memory_used_bytes.load(Ordering::Relaxed) > limits.memory_limit_bytes)
        .then_some(GaveUp::MemoryLimit)
}

fn remember_state<S: Clone + Eq>(rec: &mut Recording<S>, state: &S) {
    if rec.target_states.contains(state) {
        return;
    }
    if rec.target_states.len() < MAX_RECORDED_STATES {
        rec.target_states.push(state.clone());
    } else {
        rec.target_states_truncated = true;
    }
}

fn remember_deepest<S: Clone>(rec: &mut Recording<S>, stack: &[(u32, S)], state: &S) {
    if stack.len() <= rec.deepest.len() && !(stack.is_empty() && rec.deepest.is_empty()) {
        return;
    }
    // The stack holds states *before* each op; shift by one to get the state after.
    rec.deepest = stack
        .iter()
        .enumerate()
        .map(|(i, (op, _))| {
            let after = stack.get(i + 1).map(|(_, s)| s).unwrap_or(state);
            (*op as usize, after.clone())
        })
        .collect();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lifted_of(ops: usize, set: &[usize]) -> Lifted {
        let mut l = Lifted::new(ops);
        for &op in set {
            l.set(op);
        }
        l
    }

    #[test]
    fn lifted_set_has_one_canonical_form_whatever_the_order_of_changes() {
        // Reach {0..=63, 70} two ways: directly, and via extra bits set then cleared.
        let direct = lifted_of(200, &(0..64).chain([70]).collect::<Vec<_>>());
        let mut detour = lifted_of(200, &[70, 130, 5]);
        for op in (0..64).filter(|&op| op != 5) {
            detour.set(op);
        }
        detour.clear(130);
        assert_eq!((direct.lo, direct.window()), (detour.lo, detour.window()));
        assert_eq!(direct.hash, detour.hash);
        assert_eq!(
            direct.lo, 1,
            "word 0 is full, so the window starts at word 1"
        );
        assert_eq!(direct.window(), &[1u64 << 6]);
    }

    #[test]
    fn clearing_a_bit_below_the_window_moves_it_back() {
        let mut l = lifted_of(128, &(0..128).collect::<Vec<_>>());
        assert_eq!((l.lo, l.window().len()), (2, 0));
        l.clear(3);
        assert_eq!(l.lo, 0);
        assert_eq!(l.window(), &[!(1u64 << 3), u64::MAX]);
    }

    #[test]
    fn a_search_past_its_step_budget_gives_up_and_says_so() {
        use crate::linear::models::register::{Register, RegisterOp};
        // 3,000 sequential writes: a few thousand steps to find the linearization.
        let ops: Vec<PartOp<RegisterOp>> = (0..3000u32)
            .map(|i| PartOp {
                op: RegisterOp::Write(i % 3),
                invoke: 2 * i,
                ret: Some(2 * i + 1),
            })
            .collect();
        let (cancel, used) = (Cancel::new(), AtomicUsize::new(0));
        let never = || false;
        let limits = |max_steps| Limits {
            cancel: &cancel,
            memory_limit_bytes: usize::MAX,
            memory_used_bytes: &used,
            abandon: &never,
            max_steps,
        };
        assert_eq!(
            search(&Register, &ops, &limits(u64::MAX), None),
            Outcome::Linearizable
        );
        assert_eq!(
            search(&Register, &ops, &limits(1000), None),
            Outcome::GaveUp(GaveUp::StepBudget)
        );
    }

    #[test]
    fn cache_tells_apart_equal_sets_with_different_states_and_grows() {
        let mut cache: Cache<u32> = Cache::new();
        let mut l = Lifted::new(3000);
        for op in 0..3000 {
            l.set(op);
            assert!(cache.insert(&l, &7, hash_of(&7u32), 4));
            assert!(!cache.insert(&l, &7, hash_of(&7u32), 4));
            assert!(cache.insert(&l, &8, hash_of(&8u32), 4));
        }
        assert_eq!(cache.hashes.len(), 6000);
        assert!(cache.slots.len() >= 12_000);
    }
}
