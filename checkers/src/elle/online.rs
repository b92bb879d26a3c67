//! The online form of `list-append` and `rw-register` (see [`crate::online`]).
//!
//! Transactions are held in *parts*: the sets of transactions closed under "shares a
//! key" (each key belongs to one part; a transaction touching keys of two parts merges
//! them). A part *settles* when every key in it is retired and no transaction of it is
//! in flight: no later transaction can touch its keys any more, so its ww, wr and rw
//! edges and its keys' version orders are final. It is then checked by the offline code
//! on its own ([`super::check_txns`]) and its ops are dropped.
//!
//! # Why a part can be judged alone (realtime and no session order)
//!
//! Data edges (ww, wr, rw) only join transactions that share a key, so they never leave
//! a part. Realtime edges do (A completed before B was invoked), but a cycle through
//! several parts can always be cut down to one inside a single part: take two
//! consecutive crossings of the cycle, realtime edges X1 -> Y1 and X2 -> Y2 (Y1 ~> X2
//! within one part). Realtime order is an interval order: from b(X1) < a(Y1) and
//! b(X2) < a(Y2) follows b(X1) < a(Y2) or b(X2) < a(Y1) (else
//! b(X1) >= a(Y2) > b(X2) >= a(Y1) > b(X1)). In the second case Y1 ~> X2 -> Y1 is a
//! cycle inside Y1's part; in the first, X1 -> Y2 replaces the detour through Y1's part
//! and the cycle crosses fewer times. Either way the cycle keeps a subset of its data
//! edges in their order, separated by realtime edges, so it has no more rw edges, none
//! newly adjacent: its class is the same or one every model that proscribes the first
//! also proscribes (G2 -> G-single or G1c, G1c -> G0, each `-realtime`). Without a
//! session order parts share no edge at all. The same holds for every choice of the
//! open version orders the exact search ([`super::exact`]) tries, since those choices
//! are per key. So an anomaly a settled part shows is one of the whole history (its
//! cycle is a cycle there too; its realtime edges are realtime orders of the whole), and
//! a history whose parts all show nothing shows nothing. (A part's `-cycle-forced`
//! anomaly alone is not reported online: the offline exact search has one step budget
//! for the whole history and may skip it.)
//!
//! **Process order is different**: two processes' orders can close a cycle through two
//! parts that neither shows alone (p: T1 writes x, then T2 reads y = nil; q: T3 writes
//! y, then T4 reads x = nil: T1 -p-> T2 -rw-> T3 -q-> T4 -rw-> T1), and process order,
//! unlike realtime order, is no interval order. Checks that add process edges
//! (`strong-session-*` models) therefore hold the whole history and check it at the end
//! ([`online_form`] gives them [`Buffered`]).
//!
//! # Why a part does not settle a prefix
//!
//! Keys retired one at a time under multi-key transactions (Jepsen's histories) chain
//! parts into one that settles only at the end. Settling a prefix of it (transactions
//! whose keys are all retired, that completed before every transaction still open) is
//! not sound: their data edges to the rest of the part are final, the edges among the
//! rest are not. T1 appends 1 to x; T2 reads x = [1] and appends 7 to y; T3 reads
//! x = [] and appends 5 to y; the three run concurrently, then x is retired. T1
//! qualifies, yet a later read of y = [7, 5] adds T2 -ww-> T3 and closes
//! T3 -rw-> T1 -wr-> T2 -ww-> T3 (G-single): T1 checked and dropped at x's retirement,
//! the cycle is lost. Only a summary of the prefix could be dropped to (which kinds of
//! cycle its paths between its neighbours could close), and the exact final verdict
//! cannot be composed from one; that is not built.
//!
//! # The final verdict
//!
//! When every part showed nothing (no anomaly, every search complete, the exact search
//! decided without the graph), the verdict of the whole history is composed from the
//! parts' tallies ([`super::clean_verdict`]): transactions and keys add up; the edge
//! count of the whole graph is the realtime edges Elle's reduction gives over the whole
//! history (tracked here as ops arrive, with the walk the offline graph uses,
//! [`Frontier`]: the latest completions, bounded by the concurrency) plus each part's data edges that no such realtime edge already
//! joins; no strongly connected component. Otherwise (an anomaly, or anything the
//! parts' numbers cannot reproduce, e.g. which cycles Elle shows and how many) the
//! verdict needs the whole history again: [`OnlineChecker::needs_history`] says so and
//! the caller checks the recorded history offline. The memory held during the run is
//! bounded either way; only that final check is not.

use super::graph::{Frontier, Mark, Session};
use super::raw::RawBatch;
use super::txn::{Shape, Txns, TxnsBuilder};
use super::{check_txns_with, clean_verdict, ElleOptions, PartFacts, Stats};
use crate::checker::CheckContext;
use crate::fxhash::FxMap;
use crate::online::{Anomaly, Buffered, OnlineChecker};
use crate::op::{Op, OpType};
use crate::verdict::{Validity, Verdict};
use serde_json::{json, Value};

/// Transactions sharing keys, held until all their keys are retired.
#[derive(Default)]
struct Part {
    /// Its ops in the readers' compact form, in arrival order (a merged part's after
    /// the other's): put in history order when the part settles.
    raw: RawBatch,
    keys: Vec<KeyId>,
    retired: usize,
    in_flight: u32,
    /// Its transactions' incoming edges in Elle's reduced realtime order of the whole
    /// history (the frontier each saw when invoked), as (from, to) invocation indices.
    rt_preds: Vec<(u64, u64)>,
}

/// A key as the offline reader tells keys apart (JSON value equality): an integer
/// inline, anything else by its JSON text.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum KeyId {
    Int(i64),
    Text(String),
}

impl KeyId {
    fn of(key: &Value) -> KeyId {
        match key.as_i64() {
            Some(i) => KeyId::Int(i),
            None => KeyId::Text(key.to_string()),
        }
    }
}

struct Live {
    part: usize,
    retired: bool,
}

/// An invocation in flight.
struct InFlight {
    /// One of its keys (its part is that key's part); `None`: it touches no key.
    key: Option<KeyId>,
    /// When it was invoked, on the realtime frontier.
    mark: Mark,
    /// Its incoming realtime edges (the frontier it saw).
    preds: usize,
}

/// The online form of an Elle check: [`OnlineElle`] under realtime order or none, the
/// whole history held ([`Buffered`]) under process order (see the module docs).
pub(super) fn online_form(shape: Shape, options: &ElleOptions) -> Box<dyn OnlineChecker> {
    if options.session() == Session::Process {
        let options = options.clone();
        return Box::new(Buffered::new(match shape {
            Shape::ListAppend => Box::new(super::ListAppend { options }),
            Shape::RwRegister => Box::new(super::RwRegister { options }),
        }));
    }
    Box::new(OnlineElle::new(shape, options.clone()))
}

/// See the module docs; never under process order.
pub(crate) struct OnlineElle {
    shape: Shape,
    options: ElleOptions,
    session: Session,
    keys: FxMap<KeyId, Live>,
    /// The keys of the invocation at hand (kept for its room).
    scratch: Vec<KeyId>,
    parts: Vec<Option<Part>>,
    free: Vec<usize>,
    in_flight: FxMap<u64, InFlight>,
    /// Ops held in parts.
    held: usize,
    /// Elle's realtime frontier over the whole history (invocation indices); kept only
    /// under realtime order.
    frontier: Frontier<u64>,
    /// What settled parts (and keyless transactions) add up to.
    tally: Stats,
    /// Realtime edges of the whole history counted so far.
    rt_edges: usize,
    open_keys: usize,
    /// Why the final verdict needs the whole history again, once known.
    needs_history: Option<String>,
}

impl OnlineElle {
    fn new(shape: Shape, options: ElleOptions) -> OnlineElle {
        let session = options.session();
        debug_assert!(session != Session::Process, "process order needs Buffered");
        OnlineElle {
            shape,
            session,
            options,
            keys: FxMap::default(),
            scratch: Vec::new(),
            parts: Vec::new(),
            free: Vec::new(),
            in_flight: FxMap::default(),
            held: 0,
            frontier: Frontier::default(),
            tally: Stats::default(),
            rt_edges: 0,
            open_keys: 0,
            needs_history: None,
        }
    }

    fn checker(&self) -> &'static str {
        match self.shape {
            Shape::ListAppend => "list-append",
            Shape::RwRegister => "rw-register",
        }
    }

    fn need_history(&mut self, why: impl FnOnce() -> String) {
        if self.needs_history.is_none() {
            self.needs_history = Some(why());
        }
    }

    /// The keys of a transaction's micro-ops, into `keys`; `None` when the value is
    /// not a list of micro-ops.
    fn keys_of(value: &Value, keys: &mut Vec<KeyId>) -> Option<()> {
        keys.clear();
        for mop in value.as_array()? {
            let key = mop.as_array().filter(|m| m.len() >= 2)?.get(1)?;
            if key.is_null() {
                return None;
            }
            let key = KeyId::of(key);
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        Some(())
    }

    fn new_part(&mut self) -> usize {
        match self.free.pop() {
            Some(slot) => {
                self.parts[slot] = Some(Part::default());
                slot
            }
            None => {
                self.parts.push(Some(Part::default()));
                self.parts.len() - 1
            }
        }
    }

    /// The part holding all of `keys` (merging parts as needed; new keys join it).
    fn part_for(&mut self, keys: &[KeyId]) -> usize {
        let mut slots: Vec<usize> = keys
            .iter()
            .filter_map(|k| self.keys.get(k).map(|l| l.part))
            .collect();
        slots.sort_unstable();
        slots.dedup();
        // Merge into the largest, so each op moves O(log n) times overall.
        let target = match slots
            .iter()
            .copied()
            .max_by_key(|&s| self.parts[s].as_ref().map_or(0, |p| p.raw.ops.len()))
        {
            Some(t) => t,
            None => self.new_part(),
        };
        for s in slots.into_iter().filter(|&s| s != target) {
            let from = self.parts[s].take().expect("live part");
            self.free.push(s);
            for k in &from.keys {
                if let Some(l) = self.keys.get_mut(k) {
                    l.part = target;
                }
            }
            let to = self.parts[target].as_mut().expect("live part");
            to.raw.append(&from.raw);
            to.keys.extend(from.keys);
            to.retired += from.retired;
            to.in_flight += from.in_flight;
            to.rt_preds.extend(from.rt_preds);
        }
        for k in keys {
            if !self.keys.contains_key(k) {
                self.keys.insert(
                    k.clone(),
                    Live {
                        part: target,
                        retired: false,
                    },
                );
                self.parts[target]
                    .as_mut()
                    .expect("live part")
                    .keys
                    .push(k.clone());
            }
        }
        target
    }

    /// Settles part `slot` when all its keys are retired and nothing of it is in flight
    /// (or, with `ended`, never will complete).
    fn try_settle(&mut self, slot: usize, ended: bool, ctx: &CheckContext, out: &mut Vec<Anomaly>) {
        let ready = self.parts[slot]
            .as_ref()
            .is_some_and(|p| p.retired == p.keys.len() && (ended || p.in_flight == 0));
        if ready {
            let part = self.parts[slot].take().expect("live part");
            self.free.push(slot);
            for k in &part.keys {
                self.keys.remove(k);
            }
            self.settle(part, ctx, out);
        }
    }

    /// Checks a part on its own, reports what it proves, adds it to the tally.
    fn settle(&mut self, part: Part, ctx: &CheckContext, out: &mut Vec<Anomaly>) {
        let raw = &part.raw;
        self.held -= raw.ops.len();
        let mut order: Vec<u32> = (0..raw.ops.len() as u32).collect();
        order.sort_unstable_by_key(|&i| raw.ops[i as usize].index);
        let Some(last) = order.last().map(|&i| &raw.ops[i as usize]) else {
            return;
        };
        let last = (last.index, last.time);
        // As `Txns::from_history` reads the part's ops, without building them first.
        let mut txns = TxnsBuilder::new(self.shape);
        if let Err(e) = order
            .iter()
            .try_for_each(|&i| txns.push_raw(raw, &raw.ops[i as usize]))
        {
            return self.need_history(|| format!("a part could not be read ({e})"));
        }
        drop(order);
        let txns = txns.finish();
        let mut facts = PartFacts::default();
        let verdict = check_txns_with(&txns, &self.options, ctx, Some(&mut facts));
        // A `-cycle-forced` proof is as final, but the offline check may not find it: its
        // exact search has one step budget for the whole history, and skips what is left
        // over. Only what inference proves is reported online.
        let proven_by_inference = verdict.evidence["violating"].as_array().is_some_and(|v| {
            v.iter()
                .filter_map(Value::as_str)
                .any(|a| !a.ends_with("-cycle-forced"))
        });
        if verdict.valid == Validity::Invalid && proven_by_inference {
            out.push(self.anomaly_of(&txns, &verdict, last));
        }
        if !facts.clean {
            let why = verdict.summary.clone();
            return self.need_history(|| format!("a part showed more than nothing: {why}"));
        }
        // Edges of the whole graph inside this part: its data edges and the whole
        // history's reduced realtime edges between its transactions, parallel ones
        // merged (as `Graph::build` does). Realtime edges are counted for the whole
        // history, so the part adds its data edges no realtime edge already joins.
        let mut pairs = facts.data_pairs;
        if self.session == Session::Realtime {
            let position: FxMap<u64, u32> = txns
                .txns
                .iter()
                .enumerate()
                .map(|(i, t)| (t.invoke_index, i as u32))
                .collect();
            let mut within = 0;
            for (p, t) in &part.rt_preds {
                let Some(&t) = position.get(t) else {
                    continue;
                };
                if txns.txns[t as usize].outcome == super::txn::Outcome::Fail {
                    continue;
                }
                self.rt_edges += 1;
                if let Some(&p) = position.get(p) {
                    pairs.push((p, t));
                    within += 1;
                }
            }
            pairs.sort_unstable();
            pairs.dedup();
            self.tally.edges += pairs.len() - within;
        } else {
            pairs.sort_unstable();
            pairs.dedup();
            self.tally.edges += pairs.len();
        }
        let stats = facts.stats;
        self.tally.txns += stats.txns;
        self.tally.ok += stats.ok;
        self.tally.fail += stats.fail;
        self.tally.info += stats.info;
        self.tally.keys += stats.keys;
        self.open_keys += facts.open_keys;
    }

    fn anomaly_of(&self, txns: &Txns, verdict: &Verdict, (index, time): (u64, u64)) -> Anomaly {
        let violating: Vec<&str> = verdict.evidence["violating"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let why = verdict.explanation.lines().next().unwrap_or("").trim();
        Anomaly {
            checker: self.checker().to_string(),
            index,
            time,
            text: format!(
                "{} transactions over {} keys (retired) show {}, which {} proscribes: {why}",
                txns.txns.len(),
                txns.key_count(),
                violating.join(", "),
                self.options.describe()
            ),
            reported_time: None,
        }
    }

    /// A transaction's completion or end, for the tallies of one that touches no key
    /// (with `preds` incoming realtime edges).
    fn keyless_done(&mut self, outcome: OpType, preds: usize) {
        self.tally.txns += 1;
        match outcome {
            OpType::Ok => self.tally.ok += 1,
            OpType::Fail => self.tally.fail += 1,
            _ => self.tally.info += 1,
        }
        if outcome != OpType::Fail && self.session == Session::Realtime {
            self.rt_edges += preds;
        }
    }
}

impl OnlineChecker for OnlineElle {
    fn name(&self) -> &str {
        self.checker()
    }

    fn invoked(&mut self, invoke: &Op, _ctx: &CheckContext, _out: &mut Vec<Anomaly>) {
        if invoke.f != "txn" {
            return;
        }
        let mut keys = std::mem::take(&mut self.scratch);
        if Self::keys_of(&invoke.value, &mut keys).is_none() {
            // The offline reader rejects it; the verdict says so.
            self.scratch = keys;
            let index = invoke.index;
            return self.need_history(|| format!("op {index} is not a list of micro-ops"));
        }
        let realtime = self.session == Session::Realtime;
        let preds = if realtime {
            self.frontier.latest().len()
        } else {
            0
        };
        let key = keys.first().cloned();
        if key.is_some() {
            let slot = self.part_for(&keys);
            let part = self.parts[slot].as_mut().expect("live part");
            part.raw.push_op(invoke, 0);
            part.in_flight += 1;
            if realtime {
                let to = invoke.index;
                part.rt_preds
                    .extend(self.frontier.latest().map(|from| (from, to)));
            }
            self.held += 1;
        }
        self.scratch = keys;
        let mark = self.frontier.mark();
        self.in_flight
            .insert(invoke.index, InFlight { key, mark, preds });
    }

    fn completed(
        &mut self,
        invoke: &Op,
        completion: &Op,
        ctx: &CheckContext,
        out: &mut Vec<Anomaly>,
    ) {
        let Some(flight) = self.in_flight.remove(&invoke.index) else {
            return;
        };
        if completion.kind == OpType::Ok && self.session == Session::Realtime {
            self.frontier.completed(invoke.index, flight.mark);
        }
        let Some(key) = flight.key else {
            return self.keyless_done(completion.kind, flight.preds);
        };
        let Some(slot) = self.keys.get(&key).map(|l| l.part) else {
            // Its part was judged as ended: a retirement broke its promise.
            let index = completion.index;
            return self.need_history(|| {
                format!("op {index} completed after its keys were retired as ended")
            });
        };
        let part = self.parts[slot].as_mut().expect("live part");
        part.raw.push_op(completion, 0);
        part.in_flight -= 1;
        self.held += 1;
        self.try_settle(slot, false, ctx, out);
    }

    fn retire(&mut self, key: &Value, ended: bool, ctx: &CheckContext, out: &mut Vec<Anomaly>) {
        let Some(live) = self.keys.get_mut(&KeyId::of(key)) else {
            return;
        };
        if !live.retired {
            live.retired = true;
            let slot = live.part;
            self.parts[slot].as_mut().expect("live part").retired += 1;
        }
        let slot = live.part;
        self.try_settle(slot, ended, ctx, out);
    }

    fn held_ops(&self) -> usize {
        // Besides its ops, a part holds each transaction's incoming realtime edges (at
        // most the concurrency); an in-flight entry holds a mark.
        self.held
    }

    fn needs_history(&mut self, ctx: &CheckContext) -> bool {
        // What is still live ends with the history, in order of first use.
        let mut live: Vec<(u64, usize)> = self
            .parts
            .iter()
            .enumerate()
            .filter_map(|(s, p)| Some((p.as_ref()?.raw.ops.iter().map(|o| o.index).min()?, s)))
            .collect();
        live.sort_unstable();
        let mut ignored = Vec::new();
        for (_, slot) in live {
            if self.needs_history.is_some() {
                break;
            }
            let part = self.parts[slot].take().expect("live part");
            self.settle(part, ctx, &mut ignored);
        }
        self.needs_history.is_some()
    }

    fn finish(mut self: Box<Self>, ctx: &CheckContext) -> Verdict {
        // Settles what is still live (nothing, when the caller asked first).
        self.needs_history(ctx);
        for (_, flight) in std::mem::take(&mut self.in_flight) {
            if flight.key.is_none() {
                self.keyless_done(OpType::Info, flight.preds);
            }
        }
        if let Some(why) = &self.needs_history {
            // The caller should have asked `needs_history` and checked offline.
            return Verdict::unknown(format!(
                "The {} checker needs the whole history for its verdict ({why}); check the recorded history offline.",
                self.checker()
            ));
        }
        let mut stats = self.tally;
        stats.edges += self.rt_edges;
        let inference = match self.shape {
            Shape::ListAppend => Value::Null,
            Shape::RwRegister => {
                let mut sources = vec!["initial-state"];
                sources.extend(self.options.inference.names());
                json!(sources)
            }
        };
        let prohibited = self.options.prohibited();
        let exact = super::exact::trivial_outcome(self.open_keys, &prohibited, self.session);
        clean_verdict(
            self.checker(),
            &self.options,
            stats,
            inference,
            Some(exact.summary()),
        )
    }
}
