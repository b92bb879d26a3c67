//! From a [`History`] to the search's input: per-key partitions of parsed model ops.
//!
//! Jepsen's semantics are applied here, once: a `fail` did not happen and is dropped; an
//! `info` or missing completion may have happened at any time after its invocation, so
//! the op keeps its invocation position and has no return position (it returns at
//! +infinity, and the search may also leave it out); nemesis ops are ignored. Ops are
//! split by their `key` field (Jepsen's independent keys), or by a `[k v]` value for
//! models that say so: linearizability is compositional, so each key is checked alone.

use super::hash::ValueIds;
use super::models::{pair_of, Interner, Model, OpInput};
use crate::history::History;
use crate::op::{Op, OpType};
use serde_json::Value;

/// One op of a partition.
#[derive(Debug)]
pub(crate) struct PartOp<O> {
    pub op: O,
    /// History position of the invocation.
    pub invoke: u32,
    /// History position of the `ok` completion; `None` when the outcome is unknown.
    pub ret: Option<u32>,
}

/// The ops of one key, in invocation order.
#[derive(Debug)]
pub(crate) struct Partition<O> {
    /// The key (`None` for unkeyed histories).
    pub key: Option<Value>,
    /// History position of the key's first op (by invocation; dropped reads count).
    pub first_use: u32,
    pub ops: Vec<PartOp<O>>,
    pub values: Interner,
}

/// An op the model cannot read.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PrepareError {
    /// The offending op's index (its invocation's).
    pub index: u64,
    /// The offending op, as Jepsen prints it.
    pub op: String,
    pub reason: String,
}

impl PrepareError {
    pub(crate) fn at(op: &Op, reason: String) -> PrepareError {
        PrepareError {
            index: op.index,
            op: op.to_string(),
            reason,
        }
    }
}

/// An op's key (`None` for unkeyed ops), argument and (when known) result, with a
/// `[k v]` tuple unwrapped.
pub(crate) struct Parts<'a> {
    pub key: Option<&'a Value>,
    input: &'a Value,
    output: Option<&'a Value>,
}

pub(crate) fn split<'a, M: Model>(
    invoke: &'a Op,
    output: Option<&'a Op>,
) -> Result<Parts<'a>, String> {
    let output = output.map(|c| &c.value);
    if invoke.key.is_some() || !M::KEY_IN_VALUE {
        return Ok(Parts {
            key: invoke.key.as_ref(),
            input: &invoke.value,
            output,
        });
    }
    let untuple = |v: &'a Value| pair_of(v).ok_or_else(|| untuple_error(v));
    let (key, input) = untuple(&invoke.value)?;
    let output = match output {
        Some(v) => Some(untuple(v)?.1),
        None => None,
    };
    Ok(Parts {
        key: Some(key),
        input,
        output,
    })
}

/// Parses the already split op `parts` of the invocation `invoke`.
fn parse_parts<M: Model>(
    model: &M,
    invoke: &Op,
    parts: &Parts<'_>,
    values: &mut Interner,
) -> Result<Option<M::Op>, PrepareError> {
    let input = OpInput {
        f: &invoke.f,
        input: parts.input,
        output: parts.output,
    };
    model
        .parse(&input, values)
        .map_err(|reason| PrepareError::at(invoke, reason))
}

/// Histories with fewer positions than this are split on the calling thread alone.
const PARALLEL_MIN_POSITIONS: usize = 1 << 15;
/// Long histories are cut into this many ranges per core.
const CHUNKS_PER_CORE: usize = 4;
/// How far ahead (in positions) the pass asks for memory it will read.
const PREFETCH_DISTANCE: usize = 32;

/// One key's ops as a worker of [`partition`] found them: the key, its first use, its
/// ops in the order handled and the interner they were parsed with.
type ChunkKey<'h, O> = (Option<&'h Value>, u32, Vec<PartOp<O>>, Interner);

/// What one worker of [`partition`] found in its range of positions.
struct Chunk<'h, O> {
    /// Per chunk-local key.
    keys: Vec<ChunkKey<'h, O>>,
    /// The first op (by invocation) that does not fit the model, with its position.
    error: Option<(u32, PrepareError)>,
}

/// Splits `history` into per-key partitions of parsed ops, keys in order of first use,
/// each partition's ops in invocation order; `fail`s and nemesis ops are left out. When
/// several ops do not fit the model, the one invoked first is reported.
///
/// One pass in history order (the order the memory system likes) that handles each op
/// where its outcome becomes known: at its completion (its invocation, a few dozen
/// positions back, is still in cache; looking ahead from each invocation to its
/// completion missed the cache on every op of long histories), or at its invocation when
/// it never completes. Long histories are cut into one range of positions per core,
/// parsed in parallel and merged — for models whose ops carry no interned value ids,
/// since ids from different interners cannot be mixed.
pub(crate) fn partition<M: Model>(
    model: &M,
    history: &History,
) -> Result<Vec<Partition<M::Op>>, PrepareError> {
    let chunks = if history.len() >= PARALLEL_MIN_POSITIONS && !M::INTERNS_VALUES {
        // More pieces than cores, so a thread that starts late takes fewer of them.
        (CHUNKS_PER_CORE * super::cores()).min(history.len() / (PARALLEL_MIN_POSITIONS / 4))
    } else {
        1
    };
    partition_in(model, history, chunks)
}

/// [`partition`] with the history cut into `chunks` ranges.
fn partition_in<M: Model>(
    model: &M,
    history: &History,
    chunks: usize,
) -> Result<Vec<Partition<M::Op>>, PrepareError> {
    let n = history.len();
    let chunks = chunks.clamp(1, n.max(1));
    let bounds: Vec<usize> = (0..=chunks).map(|c| c * n / chunks).collect();
    let found = super::run_parallel(
        chunks,
        || (),
        |_, c| partition_range(model, history, bounds[c]..bounds[c + 1]),
    );
    // A model that interned values after all (its INTERNS_VALUES is wrong) must not
    // have its ids mixed: parse again in one piece.
    let interned = |chunk: &Chunk<'_, M::Op>| chunk.keys.iter().any(|k| !k.3.is_empty());
    if chunks > 1 && found.iter().any(interned) {
        return partition_in(model, history, 1);
    }
    merge(found)
}

fn partition_range<'h, M: Model>(
    model: &M,
    history: &'h History,
    range: std::ops::Range<usize>,
) -> Chunk<'h, M::Op> {
    let ops = history.ops();
    let mut chunk = Chunk {
        keys: Vec::new(),
        error: None,
    };
    let mut index = KeyIndex::default();
    let far = history.len() >= PARALLEL_MIN_POSITIONS;
    // Most ops take two positions (invocation and completion): a hint, not a bound.
    let range_ops = range.len().div_ceil(2);
    let (start, end) = (range.start, range.end);
    for pos in range {
        if far {
            prefetch_ahead(history, pos + PREFETCH_DISTANCE);
        }
        let Some((at, ret)) = handled_at(history, pos) else {
            continue;
        };
        let at32 = at as u32;
        if chunk.error.as_ref().is_some_and(|(first, _)| *first < at32) {
            continue;
        }
        let invoke = &ops[at];
        let ok = ret.map(|r| &ops[r]);
        let parts = match split::<M>(invoke, ok) {
            Ok(parts) => parts,
            Err(reason) => {
                chunk.error = Some((at32, PrepareError::at(invoke, reason)));
                continue;
            }
        };
        let key = parts.key;
        let local = index.slot(key, || {
            // Many histories have one key (or none): the first one gets room for all.
            let room = if chunk.keys.is_empty() { range_ops } else { 0 };
            chunk
                .keys
                .push((key, at32, Vec::with_capacity(room), Interner::new()));
            chunk.keys.len() - 1
        });
        let (_, first, part_ops, values) = &mut chunk.keys[local];
        *first = (*first).min(at32);
        match parse_parts(model, invoke, &parts, values) {
            Ok(Some(op)) => {
                if part_ops.len() == part_ops.capacity() {
                    // Grow to the size this key's share of the range so far projects
                    // (plus a margin), not by doubling: a 100k-op history over 100 keys
                    // otherwise copies every list a dozen times. The first range's lists
                    // receive the later ranges' ops when merged: they project to the end.
                    let horizon = if start == 0 { history.len() } else { end };
                    let done = (pos + 1 - start) as u64;
                    let projected = (part_ops.len() as u64 + 1) * (horizon - start) as u64 / done;
                    let want = (projected + projected / 8 + 16) as usize;
                    part_ops.reserve_exact(want.saturating_sub(part_ops.len()));
                }
                part_ops.push(PartOp {
                    op,
                    invoke: at32,
                    ret: ret.map(|r| r as u32),
                });
            }
            Ok(None) => {}
            Err(e) => chunk.error = Some((at32, e)),
        }
    }
    chunk
}

/// Keys to slots (partition numbers), made on first sight.
#[derive(Default)]
struct KeyIndex {
    ids: ValueIds,
    /// Value id -> slot.
    by_id: Vec<usize>,
    unkeyed: Option<usize>,
}

impl KeyIndex {
    /// The slot of `key`; `make` creates it (and returns its number) on first sight.
    fn slot(&mut self, key: Option<&Value>, make: impl FnOnce() -> usize) -> usize {
        match key {
            Some(key) => {
                let (id, new) = self.ids.id(key);
                if new {
                    self.by_id.push(make());
                }
                self.by_id[id as usize]
            }
            None => *self.unkeyed.get_or_insert_with(make),
        }
    }
}

/// The op handled at `pos`, if any: (its invocation, its `ok` completion when known).
fn handled_at(history: &History, pos: usize) -> Option<(usize, Option<usize>)> {
    let op = history.ops().get(pos)?;
    if !op.is_client() {
        return None;
    }
    if op.is_invoke() {
        // Ops that complete are handled at their completion.
        return history.partner(pos).is_none().then_some((pos, None));
    }
    match (history.partner(pos), op.kind) {
        (None, _) | (_, OpType::Fail) => None,
        (Some(invoke), OpType::Ok) => Some((invoke, Some(pos))),
        (Some(invoke), _) => Some((invoke, None)),
    }
}

fn untuple_error(value: &Value) -> String {
    format!("the op has no key field and its value {value} is not a [key value] tuple; record the key in \"key\" or the value as [k v]")
}

/// Joins the chunks' findings: one partition per key, ordered by first use, each key's
/// ops in invocation order; or the earliest error.
fn merge<O>(chunks: Vec<Chunk<'_, O>>) -> Result<Vec<Partition<O>>, PrepareError> {
    if let Some((_, e)) = chunks
        .iter()
        .filter_map(|c| c.error.as_ref())
        .min_by_key(|(at, _)| *at)
    {
        return Err(e.clone());
    }
    let mut index = KeyIndex::default();
    let mut first_use: Vec<u32> = Vec::new();
    let mut parts: Vec<Partition<O>> = Vec::new();
    for chunk in chunks {
        for (key, first, ops, values) in chunk.keys {
            let global = index.slot(key, || {
                parts.push(Partition {
                    key: key.cloned(),
                    first_use: first,
                    ops: Vec::new(),
                    values,
                });
                first_use.push(first);
                parts.len() - 1
            });
            first_use[global] = first_use[global].min(first);
            let into = &mut parts[global].ops;
            if into.is_empty() {
                *into = ops;
            } else {
                into.extend(ops);
            }
        }
    }
    // Ops were appended in completion order: nearly in invocation order already.
    for part in &mut parts {
        sort_nearly_sorted_by_key(&mut part.ops, |op| op.invoke);
    }
    for (part, &first) in parts.iter_mut().zip(&first_use) {
        part.first_use = first;
    }
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_unstable_by_key(|&i| first_use[i]);
    let mut slots: Vec<Option<Partition<O>>> = parts.into_iter().map(Some).collect();
    Ok(order.into_iter().filter_map(|i| slots[i].take()).collect())
}

/// Starts loading the heap part of the value at `pos`, which the pass reads when it gets
/// there (a completion) or a few dozen positions later (an invocation, read at its
/// completion). A long history's values are spread over a heap much larger than the
/// caches and the pass reads each once, so without this every op waits for memory.
/// (The strings inside a value were allocated right next to it while parsing.)
fn prefetch_ahead(history: &History, pos: usize) {
    if let Some(op) = history.ops().get(pos) {
        prefetch_value(&op.value);
    }
}

/// Sorts `v` by `key` (distinct keys) by insertion when it is nearly sorted, which is
/// O(n + displacement); past a budget of moves it hands over to a general sort, so an
/// unusual history costs O(n log n), never O(n^2).
pub(crate) fn sort_nearly_sorted_by_key<T>(v: &mut [T], key: impl Fn(&T) -> u32) {
    let mut budget = 16 * v.len() + 64;
    for i in 1..v.len() {
        let mut j = i;
        while j > 0 && key(&v[j - 1]) > key(&v[j]) {
            if budget == 0 {
                v.sort_unstable_by_key(key);
                return;
            }
            budget -= 1;
            v.swap(j - 1, j);
            j -= 1;
        }
    }
}

/// Prefetches the heap block of `value` (an array's items, a string's bytes).
fn prefetch_value(value: &Value) {
    match value {
        Value::Array(items) => prefetch(items.as_ptr()),
        Value::String(s) => prefetch(s.as_ptr()),
        _ => {}
    }
}

/// A hint to the CPU to start loading `ptr`'s cache line; no effect on results.
#[inline(always)]
fn prefetch<T>(ptr: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint: it never faults and reads nothing into the
    // program, whatever the address (even dangling or null).
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(ptr.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = ptr;
}

/// The ops of `part` as the history looked right after position `cut`: ops invoked later
/// are gone, ops that completed later have an unknown outcome (and may drop out, like a
/// read whose result is not known yet). Used to find the first op that cannot be placed.
pub(crate) fn truncate<M: Model>(
    model: &M,
    history: &History,
    part: &Partition<M::Op>,
    cut: u32,
) -> (Vec<PartOp<M::Op>>, Interner) {
    let mut values = part.values.clone();
    let mut ops = Vec::new();
    for p in part.ops.iter().take_while(|p| p.invoke <= cut) {
        let ret = p.ret.filter(|&r| r <= cut);
        let invoke = &history.ops()[p.invoke as usize];
        let ok = ret.map(|r| &history.ops()[r as usize]);
        // These ops parsed before with their full outcome; an unknown outcome only
        // removes information, so parsing again cannot fail.
        let parsed = split::<M>(invoke, ok)
            .ok()
            .and_then(|parts| parse_parts(model, invoke, &parts, &mut values).ok());
        if let Some(Some(op)) = parsed {
            ops.push(PartOp {
                op,
                invoke: p.invoke,
                ret,
            });
        }
    }
    (ops, values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linear::models::kv::Kv;
    use crate::op::{Op, Process};
    use serde_json::json;

    /// A keyed history with interleaved, failed, crashed and nemesis ops, and ops whose
    /// completion lands in a later chunk than their invocation.
    fn mixed_history() -> History {
        let mut ops = Vec::new();
        let mut push = |op: Op| {
            let index = ops.len() as u64;
            ops.push(Op { index, ..op });
        };
        for round in 0..40u64 {
            let key = json!((round * 7) % 5);
            // Fresh processes each round: some ops below never complete or crash.
            let a = Op::invoke(
                Process::Client(2 * round),
                "put",
                json!([key, round.to_string()]),
            );
            let b = Op::invoke(Process::Client(2 * round + 1), "get", json!([key, null]));
            push(a.clone());
            push(b.clone());
            if round % 6 == 0 {
                push(Op::invoke(Process::Nemesis, "start-partition", json!(null)));
            }
            let kind = match round % 4 {
                0 => OpType::Fail,
                1 => OpType::Info,
                _ => OpType::Ok,
            };
            push(b.complete(OpType::Ok, json!([key, "x"])));
            if round % 9 != 8 {
                push(a.complete(kind, a.value.clone()));
            }
        }
        History::new(ops).unwrap()
    }

    type Shape = Vec<(Option<Value>, Vec<(u32, Option<u32>, String)>)>;

    fn shape<M: Model>(model: &M, history: &History, chunks: usize) -> Result<Shape, PrepareError> {
        Ok(partition_in(model, history, chunks)?
            .into_iter()
            .map(|p| {
                let ops = p
                    .ops
                    .iter()
                    .map(|o| (o.invoke, o.ret, format!("{:?}", o.op)))
                    .collect();
                (p.key, ops)
            })
            .collect())
    }

    #[test]
    fn partitioning_in_parallel_chunks_gives_what_one_pass_gives() {
        let history = mixed_history();
        let whole = partition_in(&Kv, &history, 1).unwrap();
        assert_eq!(whole.len(), 5);
        // Keys in order of first use, ops in invocation order, fails left out.
        let firsts: Vec<u32> = whole.iter().map(|p| p.ops[0].invoke).collect();
        assert!(firsts.windows(2).all(|w| w[0] < w[1]), "{firsts:?}");
        for p in &whole {
            assert!(p.ops.windows(2).all(|w| w[0].invoke < w[1].invoke));
            for op in &p.ops {
                let invoke = &history.ops()[op.invoke as usize];
                assert!(invoke.is_invoke() && invoke.is_client());
                assert_ne!(
                    history
                        .partner(op.invoke as usize)
                        .map(|c| history.ops()[c].kind),
                    Some(OpType::Fail)
                );
                if let Some(r) = op.ret {
                    assert_eq!(history.ops()[r as usize].kind, OpType::Ok);
                }
            }
        }
        let one = shape(&Kv, &history, 1).unwrap();
        for chunks in [2, 3, 7, 1000] {
            assert_eq!(
                shape(&Kv, &history, chunks).unwrap(),
                one,
                "{chunks} chunks"
            );
        }
    }

    #[test]
    fn a_model_that_interns_is_parsed_in_one_piece_whatever_it_claims() {
        // cas-register interns its values: asked for chunks, it must still give the
        // single-pass result (ids of different interners are never mixed).
        use crate::linear::models::cas_register::CasRegister;
        let mut ops = Vec::new();
        for i in 0..60u64 {
            let p = Process::Client(i % 3);
            let w = Op::invoke(p, "write", json!(i % 7)).with_key(json!(i % 2));
            let mut w = Op {
                index: ops.len() as u64,
                ..w
            };
            ops.push(w.clone());
            w.index = ops.len() as u64;
            ops.push(w.complete(OpType::Ok, json!(i % 7)));
        }
        let history = History::new(ops).unwrap();
        assert_eq!(
            shape(&CasRegister, &history, 4).unwrap(),
            shape(&CasRegister, &history, 1).unwrap()
        );
    }

    #[test]
    fn the_earliest_misfit_is_reported_whichever_chunk_finds_it() {
        let mut ops: Vec<Op> = mixed_history().ops().to_vec();
        // Two invocations without a [k v] tuple: the earlier one must be named.
        let bad: Vec<usize> = ops
            .iter()
            .enumerate()
            .filter(|(_, o)| o.is_invoke() && o.is_client())
            .map(|(i, _)| i)
            .collect();
        let (early, late) = (bad[10], bad[bad.len() - 3]);
        ops[early].value = json!("no tuple");
        ops[late].value = json!("no tuple either");
        let history = History::new(ops).unwrap();
        let expected = history.ops()[early].to_string();
        for chunks in [1, 2, 5] {
            let error = partition_in(&Kv, &history, chunks).unwrap_err();
            assert_eq!(error.op, expected, "{chunks} chunks");
        }
    }

    #[test]
    fn nearly_sorted_sort_sorts_anything() {
        let mut near: Vec<u32> = (0..200u32).map(|i| i ^ 3).collect();
        sort_nearly_sorted_by_key(&mut near, |&k| k);
        assert!(near.windows(2).all(|w| w[0] < w[1]));
        // Reversed: far beyond the insertion budget, so the general sort takes over.
        let mut reversed: Vec<u32> = (0..5000u32).rev().collect();
        sort_nearly_sorted_by_key(&mut reversed, |&k| k);
        assert!(reversed.windows(2).all(|w| w[0] < w[1]));
    }
}
