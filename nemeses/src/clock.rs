//! Clock faults: bump (jump some nodes' clocks by ±N ms), strobe (flip between two offsets
//! every few ms for a bounded while), skew (a constant offset per node), and reset.
//!
//! How a clock moves depends on `TargetControl::clock_support`:
//! - `FaketimeFile(path)`: the target runs under libfaketime with
//!   `FAKETIME_TIMESTAMP_FILE=path FAKETIME_NO_CACHE=1`; we write libfaketime's relative
//!   offset spec (`+1.250`, `-0.500`: seconds, fractions allowed, see libfaketime's README
//!   "4d") into the file, atomically (write a temp file, rename), so libfaketime never
//!   reads a half-written spec. The decimal point is a `.`: a target that calls
//!   `setlocale` into a locale with a decimal comma would misread it.
//! - `SystemClock`: `date -s` on the node (GNU date). Without NTP there is no true time
//!   to go back to, so we remember the offset we applied and reset by applying its
//!   inverse; each step is relative to the node's clock when it runs, so a reset is off
//!   by the few ms the commands took. Refused on local nodes: their clock is ours.
//! - `Unsupported(why)`: every clock op on that node fails with `why` (e.g. a Go binary,
//!   which ignores `LD_PRELOAD`), never silently doing nothing.
//!
//! Ops: `bump-clock` `{"targets", "nodes", "delta_ms"}`; `skew-clock` `{"offsets_ms":
//! {node: ms}}`; `strobe-clock` `{"targets", "nodes", "delta_ms", "period_ms",
//! "duration_ms"}`; `reset-clock` `{"nodes": [...]}` or nothing for every node we moved.

use crate::cluster::{shell_quote, Cluster, COMMAND_TIMEOUT};
use crate::error::NemesisError;
use crate::nemesis::{FaultOp, HealLog, Nemesis, NemesisContext};
use crate::node::{ClockSupport, NodeShell, TargetControl};
use crate::schedule::{rng_for, FlipFlop};
use crate::targets::{self, Targeting};
use crate::value;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const BUMP: &str = "bump-clock";
pub const STROBE: &str = "strobe-clock";
pub const SKEW: &str = "skew-clock";
pub const RESET: &str = "reset-clock";

/// Largest offset an op may set: a day. Far enough to expire any lease or TTL, near
/// enough that certificates and log timestamps stay plausible.
pub const MAX_OFFSET_MS: i64 = 86_400_000;
/// A strobe runs at most this long; `invoke` blocks for its duration.
pub const MAX_STROBE_DURATION_MS: i64 = 60_000;
/// And flips at most this often, whatever the period.
pub const MAX_STROBE_FLIPS: i64 = 10_000;
/// Strobe periods from 1 ms to 1 s.
pub const MAX_STROBE_PERIOD_MS: i64 = 1_000;

/// libfaketime's relative offset spec for `offset_ms`: `+1.250`, `-0.500`, `+0.000`.
pub fn faketime_spec(offset_ms: i64) -> String {
    let sign = if offset_ms < 0 { '-' } else { '+' };
    let abs = offset_ms.unsigned_abs();
    format!("{sign}{}.{:03}", abs / 1000, abs % 1000)
}

/// Shell function `w SPEC` that replaces the file's content atomically.
fn faketime_writer(path: &Path) -> String {
    let file = shell_quote(&path.to_string_lossy());
    let tmp = shell_quote(&format!("{}.distest-tmp", path.to_string_lossy()));
    format!("w() {{ printf '%s\\n' \"$1\" > {tmp} && mv -f {tmp} {file}; }}")
}

/// Shell function `b NS` that moves the system clock by NS nanoseconds from its value now.
const SYSTEM_BUMPER: &str = "b() { n=$(date +%s%N) && t=$((n + $1)) && \
     date -u -s \"@$((t / 1000000000)).$(printf '%09d' $((t % 1000000000)))\" >/dev/null; }";

/// Command that sets the faketime file to `offset_ms`.
pub fn faketime_write_command(path: &Path, offset_ms: i64) -> String {
    format!("{}; w {}", faketime_writer(path), shell_quote(&faketime_spec(offset_ms)))
}

/// Command that moves the system clock by `delta_ms`.
pub fn system_bump_command(delta_ms: i64) -> String {
    format!("{SYSTEM_BUMPER}; b {}", delta_ms.saturating_mul(1_000_000))
}

fn seconds(ms: i64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// Strobe loop: `flips` times, `delta_ms` away from the base and back, `period_ms` each,
/// stopping early once `duration_ms` of uptime passed (uptime, not the clock we are
/// moving); ends on the base offset and prints how many flips it did.
pub fn strobe_command(how: &ClockMethod, base_ms: i64, delta_ms: i64, period_ms: i64, duration_ms: i64) -> String {
    let flips = (duration_ms / (2 * period_ms)).clamp(1, MAX_STROBE_FLIPS);
    let (setup, away, back, end) = match how {
        ClockMethod::File(path) => (
            faketime_writer(path),
            format!("w {}", shell_quote(&faketime_spec(base_ms + delta_ms))),
            format!("w {}", shell_quote(&faketime_spec(base_ms))),
            format!("w {}", shell_quote(&faketime_spec(base_ms))),
        ),
        ClockMethod::System => (
            SYSTEM_BUMPER.to_string(),
            format!("b {}", delta_ms * 1_000_000),
            format!("b {}", -delta_ms * 1_000_000),
            ":".to_string(),
        ),
    };
    let sleep = seconds(period_ms);
    let duration_cs = duration_ms / 10;
    format!(
        "{setup}; up() {{ read u _ < /proc/uptime; echo \"${{u%.*}}${{u#*.}}\"; }}; \
         end=$(( $(up) + {duration_cs} )); i=0; \
         while [ $i -lt {flips} ] && [ $(up) -lt $end ]; do \
         {away} && sleep {sleep} && {back} && sleep {sleep} || break; i=$((i+1)); done; \
         {end}; echo $i"
    )
}

/// How the clock of the target on one node is moved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClockMethod {
    File(PathBuf),
    System,
}

fn method(target: &dyn TargetControl, node: &dyn NodeShell) -> Result<ClockMethod, NemesisError> {
    match target.clock_support(node.name()) {
        ClockSupport::FaketimeFile(path) => Ok(ClockMethod::File(path)),
        ClockSupport::SystemClock if node.is_local() => Err(NemesisError::LocalSystemClock {
            node: node.name().to_string(),
        }),
        ClockSupport::SystemClock => Ok(ClockMethod::System),
        ClockSupport::Unsupported(why) => Err(NemesisError::ClockUnsupported {
            node: node.name().to_string(),
            why,
        }),
    }
}

/// Moves the clock on `node` from offset `old_ms` to `new_ms`.
fn set_offset(how: &ClockMethod, node: &dyn NodeShell, old_ms: i64, new_ms: i64) -> Result<(), NemesisError> {
    let command = match how {
        ClockMethod::File(path) => faketime_write_command(path, new_ms),
        ClockMethod::System if old_ms == new_ms => return Ok(()),
        ClockMethod::System => system_bump_command(new_ms - old_ms),
    };
    node.exec_ok(&command, COMMAND_TIMEOUT)?;
    Ok(())
}

/// Draws ±2^k ms for k in `exponents`: mostly small jumps, sometimes minutes.
fn draw_offset_ms(rng: &mut StdRng, exponents: std::ops::RangeInclusive<u32>) -> i64 {
    let magnitude = 1i64 << rng.gen_range(exponents);
    if rng.gen_bool(0.5) {
        magnitude
    } else {
        -magnitude
    }
}

pub struct Clock {
    cluster: Cluster,
    target: Arc<dyn TargetControl>,
    rng: StdRng,
    flip: FlipFlop,
    /// Node -> offset we believe is in effect. An entry exists for every node we tried to
    /// move, so reset reaches it even when the attempt failed half-way.
    offsets: BTreeMap<String, i64>,
}

impl Clock {
    pub fn new(ctx: &NemesisContext) -> Clock {
        Clock {
            cluster: Cluster::new(ctx.nodes.clone()),
            target: ctx.target.clone(),
            rng: rng_for(ctx.seed, "clock"),
            flip: FlipFlop::default(),
            offsets: BTreeMap::new(),
        }
    }

    /// Sets each node's offset to the given value, in parallel; returns each node's
    /// outcome (its new offset). Fails as a whole only for a bad request.
    fn set_offsets_each(
        &mut self,
        f: &str,
        wanted: &BTreeMap<String, i64>,
    ) -> Result<Vec<(String, Result<i64, NemesisError>)>, NemesisError> {
        for (node, ms) in wanted {
            self.cluster.check_names(f, std::slice::from_ref(node))?;
            if ms.abs() > MAX_OFFSET_MS {
                return Err(NemesisError::bad_value(
                    f,
                    format!("the offset of {node} would be {ms} ms, beyond ±{MAX_OFFSET_MS}"),
                ));
            }
        }
        let names: Vec<String> = wanted.keys().cloned().collect();
        let target = self.target.as_ref();
        let offsets = Mutex::new(&mut self.offsets);
        Ok(self.cluster.each(f, &names, |node| {
            // Asked first: a node whose clock cannot move was not touched at all.
            let how = method(target, node)?;
            let name = node.name().to_string();
            let old_ms = *lock(&offsets).entry(name.clone()).or_insert(0);
            let new_ms = wanted[&name];
            set_offset(&how, node, old_ms, new_ms)?;
            lock(&offsets).insert(name, new_ms);
            Ok(new_ms)
        }))
    }

    fn set_offsets(&mut self, f: &str, wanted: &BTreeMap<String, i64>) -> Result<Value, NemesisError> {
        let outcomes = self.set_offsets_each(f, wanted)?;
        offsets_value(NemesisError::collect(f, outcomes)?)
    }

    fn bump(&mut self, op: &FaultOp) -> Result<Value, NemesisError> {
        let delta_ms = value::bounded_i64(op, "delta_ms", -MAX_OFFSET_MS, MAX_OFFSET_MS)?;
        let nodes = targets::resolve(op, &self.cluster, self.target.as_ref(), &mut self.rng)?;
        let wanted = nodes
            .into_iter()
            .map(|n| {
                let old = self.offsets.get(&n).copied().unwrap_or(0);
                (n, old + delta_ms)
            })
            .collect();
        self.set_offsets(BUMP, &wanted)
    }

    fn skew(&mut self, op: &FaultOp) -> Result<Value, NemesisError> {
        let map = op
            .value
            .get("offsets_ms")
            .and_then(Value::as_object)
            .ok_or_else(|| NemesisError::bad_value(SKEW, "`offsets_ms` must map node names to offsets in ms"))?;
        let wanted = map
            .iter()
            .map(|(node, ms)| {
                ms.as_i64()
                    .map(|ms| (node.clone(), ms))
                    .ok_or_else(|| NemesisError::bad_value(SKEW, format!("the offset of {node} must be an integer")))
            })
            .collect::<Result<BTreeMap<_, _>, _>>()?;
        self.set_offsets(SKEW, &wanted)
    }

    fn strobe(&mut self, op: &FaultOp) -> Result<Value, NemesisError> {
        let delta_ms = value::bounded_i64(op, "delta_ms", -MAX_OFFSET_MS, MAX_OFFSET_MS)?;
        let period_ms = value::bounded_i64(op, "period_ms", 1, MAX_STROBE_PERIOD_MS)?;
        let duration_ms = value::bounded_i64(op, "duration_ms", 1, MAX_STROBE_DURATION_MS)?;
        let nodes = targets::resolve(op, &self.cluster, self.target.as_ref(), &mut self.rng)?;
        let target = self.target.as_ref();
        let offsets = Mutex::new(&mut self.offsets);
        let timeout = Duration::from_millis(duration_ms.unsigned_abs()) + COMMAND_TIMEOUT;
        let outcomes = self.cluster.each(STROBE, &nodes, |node| {
            let how = method(target, node)?;
            // Touched before the strobe runs: a strobe cut short leaves the clock moved.
            let base_ms = *lock(&offsets).entry(node.name().to_string()).or_insert(0);
            if (base_ms + delta_ms).abs() > MAX_OFFSET_MS {
                return Err(NemesisError::bad_value(
                    STROBE,
                    format!("{} would be moved beyond ±{MAX_OFFSET_MS} ms", node.name()),
                ));
            }
            let command = strobe_command(&how, base_ms, delta_ms, period_ms, duration_ms);
            let out = node.exec_ok(&command, timeout)?;
            Ok(out.stdout.trim().parse::<i64>().unwrap_or(-1))
        });
        let flips = NemesisError::collect(STROBE, outcomes)?;
        Ok(json!({
            "nodes": nodes,
            "delta_ms": delta_ms,
            "period_ms": period_ms,
            "duration_ms": duration_ms,
            "flips": flips.into_iter().collect::<BTreeMap<_, _>>(),
        }))
    }

    fn reset(&mut self, op: &FaultOp) -> Result<Value, NemesisError> {
        let nodes = match value::opt_names(op, "nodes")? {
            Some(nodes) => nodes,
            None => self.offsets.keys().cloned().collect(),
        };
        let wanted: BTreeMap<String, i64> = nodes.into_iter().map(|n| (n, 0)).collect();
        let outcomes = self.set_offsets_each(RESET, &wanted)?;
        // Nodes whose reset succeeded are back on the true clock; the others stay on the
        // books so the next heal retries them.
        for (node, outcome) in &outcomes {
            if outcome.is_ok() {
                self.offsets.remove(node);
            }
        }
        offsets_value(NemesisError::collect(RESET, outcomes)?)
    }
}

fn offsets_value(done: Vec<(String, i64)>) -> Result<Value, NemesisError> {
    Ok(json!({"offsets_ms": done.into_iter().collect::<BTreeMap<_, _>>()}))
}

fn lock<'a, T>(m: &'a Mutex<T>) -> std::sync::MutexGuard<'a, T> {
    // A step never panics while holding the lock, and if one did, the map is still
    // consistent (each update is one insert), so a poisoned lock is safe to use.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Nemesis for Clock {
    fn name(&self) -> &str {
        "clock"
    }

    fn performs(&self) -> Vec<&'static str> {
        vec![BUMP, STROBE, SKEW, RESET]
    }

    fn next_op(&mut self) -> FaultOp {
        if !self.flip.next_is_start() {
            return FaultOp::new(RESET, Value::Null);
        }
        let names = self.cluster.names();
        match *[BUMP, STROBE, SKEW].choose(&mut self.rng).expect("three kinds") {
            BUMP => {
                let mut value = targets::draw(&Targeting::EVERY, &names, &mut self.rng);
                // 16 ms to 262 s, Jepsen's range.
                value["delta_ms"] = json!(draw_offset_ms(&mut self.rng, 4..=18));
                FaultOp::new(BUMP, value)
            }
            STROBE => {
                let mut value = targets::draw(&Targeting::EVERY, &names, &mut self.rng);
                value["delta_ms"] = json!(draw_offset_ms(&mut self.rng, 4..=12));
                value["period_ms"] = json!(*[1, 5, 10, 50].choose(&mut self.rng).expect("periods"));
                value["duration_ms"] = json!(*[1000, 2000, 4000].choose(&mut self.rng).expect("durations"));
                FaultOp::new(STROBE, value)
            }
            _ => {
                let offsets: Map<String, Value> = names
                    .into_iter()
                    .map(|n| (n, json!(draw_offset_ms(&mut self.rng, 4..=18))))
                    .collect();
                FaultOp::new(SKEW, json!({"offsets_ms": offsets}))
            }
        }
    }

    fn invoke(&mut self, op: &FaultOp) -> Result<Value, NemesisError> {
        match op.f.as_str() {
            BUMP => self.bump(op),
            STROBE => self.strobe(op),
            SKEW => self.skew(op),
            RESET => self.reset(op),
            _ => Err(NemesisError::unknown_op(self, op)),
        }
    }

    fn heal(&mut self) -> HealLog {
        self.flip.reset();
        if self.offsets.is_empty() {
            return Vec::new();
        }
        let nodes: Vec<String> = self.offsets.keys().cloned().collect();
        let op = FaultOp::new(RESET, json!({"nodes": nodes}));
        let outcome = self.reset(&op);
        vec![(op, outcome)]
    }

    fn active(&self) -> Vec<String> {
        self.offsets
            .iter()
            .filter(|(_, ms)| **ms != 0)
            .map(|(node, ms)| format!("{node} clock {ms:+} ms"))
            .collect()
    }
}
