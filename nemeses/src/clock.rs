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

use crate::cluster::{lock, shell_quote, PerNode, COMMAND_TIMEOUT};
use crate::error::NemesisError;
use crate::nemesis::{FaultOp, HealLog, Nemesis, NemesisContext};
use crate::node::{ClockSupport, NodeShell, TargetControl};
use crate::preflight::{self, Lack};
use crate::start_stop::FlipFlop;
use crate::targeting::Reach;
use crate::value;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
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
    format!(
        "{}; w {}",
        faketime_writer(path),
        shell_quote(&faketime_spec(offset_ms))
    )
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
/// moving); ends on the base offset, prints how many flips it did, and exits non-zero if
/// any step failed.
pub fn strobe_command(
    how: &ClockMethod,
    base_ms: i64,
    delta_ms: i64,
    period_ms: i64,
    duration_ms: i64,
) -> String {
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
         end=$(( $(up) + {duration_cs} )); i=0; rc=0; \
         while [ $i -lt {flips} ] && [ $(up) -lt $end ]; do \
         {away} && sleep {sleep} && {back} && sleep {sleep} || {{ rc=1; break; }}; \
         i=$((i+1)); done; {end} || rc=1; echo $i; exit $rc"
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
fn set_offset(
    how: &ClockMethod,
    node: &dyn NodeShell,
    old_ms: i64,
    new_ms: i64,
) -> Result<(), NemesisError> {
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
    /// The nodes, the target and this fault's random stream.
    reach: Reach,
    flip: FlipFlop,
    /// Node -> offset we believe is in effect. An entry exists for every node we tried to
    /// move, so reset reaches it even when the attempt failed half-way.
    offsets: BTreeMap<String, i64>,
}

impl Clock {
    pub fn new(ctx: &NemesisContext) -> Clock {
        Clock {
            reach: Reach::new(ctx, "clock"),
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
    ) -> Result<PerNode<i64>, NemesisError> {
        for (node, ms) in wanted {
            self.reach
                .cluster
                .check_names(f, std::slice::from_ref(node))?;
            if ms.unsigned_abs() > MAX_OFFSET_MS.unsigned_abs() {
                return Err(NemesisError::bad_value(
                    f,
                    format!("the offset of {node} would be {ms} ms, beyond ±{MAX_OFFSET_MS}"),
                ));
            }
        }
        let names: Vec<String> = wanted.keys().cloned().collect();
        let target = self.reach.target.as_ref();
        let offsets = Mutex::new(&mut self.offsets);
        Ok(self.reach.cluster.each(f, &names, |node| {
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

    /// Sets each node's offset; when any node fails, the nodes that moved are put back
    /// where they were, so a failed op leaves no clock moved (what cannot be put back
    /// stays on the books for heal).
    fn set_offsets(
        &mut self,
        f: &str,
        wanted: &BTreeMap<String, i64>,
    ) -> Result<Value, NemesisError> {
        let before: BTreeMap<String, i64> = wanted
            .keys()
            .map(|n| (n.clone(), self.offsets.get(n).copied().unwrap_or(0)))
            .collect();
        let outcomes = self.set_offsets_each(f, wanted)?;
        let moved: BTreeMap<String, i64> = outcomes
            .iter()
            .filter(|(_, outcome)| outcome.is_ok())
            .map(|(node, _)| (node.clone(), before[node]))
            .collect();
        match NemesisError::collect(f, outcomes) {
            Ok(done) => offsets_value(done),
            Err(e) => {
                if let Ok(back) = self.set_offsets_each(f, &moved) {
                    if let Err(undo) = NemesisError::collect(f, back) {
                        tracing::warn!("putting clocks back after a failed `{f}` failed (heal retries it): {undo}");
                    }
                }
                Err(e)
            }
        }
    }

    fn bump(&mut self, op: &FaultOp) -> Result<Value, NemesisError> {
        let delta_ms = value::bounded_i64(op, "delta_ms", -MAX_OFFSET_MS, MAX_OFFSET_MS)?;
        let nodes = self.reach.resolve(op)?;
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
            .ok_or_else(|| {
                NemesisError::bad_value(SKEW, "`offsets_ms` must map node names to offsets in ms")
            })?;
        let wanted = map
            .iter()
            .map(|(node, ms)| {
                ms.as_i64().map(|ms| (node.clone(), ms)).ok_or_else(|| {
                    NemesisError::bad_value(
                        SKEW,
                        format!("the offset of {node} must be an integer"),
                    )
                })
            })
            .collect::<Result<BTreeMap<_, _>, _>>()?;
        self.set_offsets(SKEW, &wanted)
    }

    fn strobe(&mut self, op: &FaultOp) -> Result<Value, NemesisError> {
        let delta_ms = value::bounded_i64(op, "delta_ms", -MAX_OFFSET_MS, MAX_OFFSET_MS)?;
        let period_ms = value::bounded_i64(op, "period_ms", 1, MAX_STROBE_PERIOD_MS)?;
        let duration_ms = value::bounded_i64(op, "duration_ms", 1, MAX_STROBE_DURATION_MS)?;
        let nodes = self.reach.resolve(op)?;
        let target = self.reach.target.as_ref();
        let offsets = Mutex::new(&mut self.offsets);
        let timeout = Duration::from_millis(duration_ms.unsigned_abs()) + COMMAND_TIMEOUT;
        let outcomes = self.reach.cluster.each(STROBE, &nodes, |node| {
            let how = method(target, node)?;
            let base_ms = lock(&offsets).get(node.name()).copied().unwrap_or(0);
            if (base_ms + delta_ms).abs() > MAX_OFFSET_MS {
                return Err(NemesisError::bad_value(
                    STROBE,
                    format!("{} would be moved beyond ±{MAX_OFFSET_MS} ms", node.name()),
                ));
            }
            // Touched before the strobe runs: a strobe cut short leaves the clock moved.
            lock(&offsets).insert(node.name().to_string(), base_ms);
            let command = strobe_command(&how, base_ms, delta_ms, period_ms, duration_ms);
            let out = node.exec_ok(&command, timeout)?;
            // The loop prints its flip count last; None if something else got in the way.
            Ok(out
                .stdout
                .lines()
                .last()
                .and_then(|l| l.trim().parse::<i64>().ok()))
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
        let names = self.reach.cluster.names();
        match *[BUMP, STROBE, SKEW]
            .choose(&mut self.reach.rng)
            .expect("three kinds")
        {
            BUMP => {
                let mut value = self.reach.draw();
                // 16 ms to 262 s, Jepsen's range.
                value["delta_ms"] = json!(draw_offset_ms(&mut self.reach.rng, 4..=18));
                FaultOp::new(BUMP, value)
            }
            STROBE => {
                let mut value = self.reach.draw();
                value["delta_ms"] = json!(draw_offset_ms(&mut self.reach.rng, 4..=12));
                value["period_ms"] =
                    json!(*[1, 5, 10, 50].choose(&mut self.reach.rng).expect("periods"));
                value["duration_ms"] = json!(*[1000, 2000, 4000]
                    .choose(&mut self.reach.rng)
                    .expect("durations"));
                FaultOp::new(STROBE, value)
            }
            _ => {
                let offsets: Map<String, Value> = names
                    .into_iter()
                    .map(|n| (n, json!(draw_offset_ms(&mut self.reach.rng, 4..=18))))
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

    /// Every node's target clock can be moved: under libfaketime (which the target
    /// reports ready), or as a system clock that GNU `date` may set (CAP_SYS_TIME). A
    /// target that says why it cannot (etcd, a Go binary) is refused with its reason.
    fn preflight(&self) -> Result<(), NemesisError> {
        let target = self.reach.target.as_ref();
        let names = self.reach.cluster.names();
        let whys: BTreeSet<String> = names
            .iter()
            .filter_map(|n| match target.clock_support(n) {
                ClockSupport::Unsupported(why) => Some(why),
                _ => None,
            })
            .collect();
        let all_unsupported = names
            .iter()
            .all(|n| matches!(target.clock_support(n), ClockSupport::Unsupported(_)));
        if all_unsupported && whys.len() == 1 {
            return Err(NemesisError::TargetUnsupported {
                fault: self.name().to_string(),
                why: whys.into_iter().next().expect("one reason"),
            });
        }
        preflight::require_nodes(self.name(), &self.reach.cluster, 1)?;
        preflight::check_nodes(self.name(), &self.reach.cluster, |node| {
            match method(target, node) {
                Ok(ClockMethod::File(_)) => Ok(()),
                Ok(ClockMethod::System) => {
                    let out = node.exec(SETTABLE_CHECK, COMMAND_TIMEOUT)?;
                    if out.success() {
                        Ok(())
                    } else {
                        Err(Lack::new(
                            "a system clock it may set (GNU date, CAP_SYS_TIME)",
                            preflight::said(&out),
                        ))
                    }
                }
                Err(e) => Err(Lack::new("a target clock it can move", e.to_string())),
            }
        })
    }
}

/// Checks, without touching the clock, what `system_bump_command` needs: GNU `date`
/// (`-d @SECONDS`, `%N`) and the capability to set the time.
const SETTABLE_CHECK: &str = "[ \"$(date -u -d @0 +%s%N 2>/dev/null)\" = 0000000000 ] || \
     { echo 'date is not GNU date (needs -d @SECONDS and %N)' >&2; exit 1; }; \
     cap=$(sed -n 's/^CapEff:[[:space:]]*//p' /proc/self/status); \
     [ -n \"$cap\" ] && [ $(( 0x$cap >> 25 & 1 )) = 1 ] || \
     { echo 'no CAP_SYS_TIME: the clock cannot be set from this login' >&2; exit 1; }";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{self, FakeNode, FakeTarget};
    use std::sync::Arc;

    fn setup(nodes: Vec<Arc<FakeNode>>, support: &[ClockSupport]) -> (Clock, Vec<Arc<FakeNode>>) {
        let target = Arc::new(FakeTarget::default());
        for (node, s) in nodes.iter().zip(support) {
            target
                .clock
                .lock()
                .unwrap()
                .insert(node.name().to_string(), s.clone());
        }
        let ctx = NemesisContext {
            nodes: fake::shells(&nodes),
            target,
            seed: 5,
        };
        (Clock::new(&ctx), nodes)
    }

    fn file(i: u8) -> ClockSupport {
        ClockSupport::FaketimeFile(PathBuf::from(format!("/tmp/dt-n{i}/faketime")))
    }

    #[test]
    fn faketime_specs_are_signed_seconds_with_milliseconds() {
        assert_eq!(faketime_spec(1250), "+1.250");
        assert_eq!(faketime_spec(-500), "-0.500");
        assert_eq!(faketime_spec(0), "+0.000");
        assert_eq!(faketime_spec(-262_144), "-262.144");
    }

    #[test]
    fn bump_writes_the_accumulated_offset_and_reset_writes_zero() {
        let (mut clock, nodes) = setup(vec![Arc::new(FakeNode::ok(1))], &[file(1)]);
        let bump = |ms| FaultOp::new(BUMP, json!({"nodes": ["n1"], "delta_ms": ms}));
        clock.invoke(&bump(1250)).unwrap();
        let done = clock.invoke(&bump(-500)).unwrap();
        assert_eq!(done, json!({"offsets_ms": {"n1": 750}}));
        assert_eq!(clock.active(), vec!["n1 clock +750 ms"]);
        let healed = clock.heal();
        assert_eq!(healed[0].0.f, RESET);
        assert_eq!(
            healed[0].1.as_ref().unwrap(),
            &json!({"offsets_ms": {"n1": 0}})
        );
        let commands = nodes[0].commands();
        assert_eq!(commands.len(), 3);
        assert!(commands[0].ends_with("w '+1.250'"), "{}", commands[0]);
        assert!(commands[1].ends_with("w '+0.750'"), "{}", commands[1]);
        assert!(commands[2].ends_with("w '+0.000'"), "{}", commands[2]);
        assert!(commands[0].contains("> '/tmp/dt-n1/faketime.distest-tmp' && mv -f '/tmp/dt-n1/faketime.distest-tmp' '/tmp/dt-n1/faketime'"));
        assert!(clock.heal().is_empty());
    }

    #[test]
    fn system_clock_is_reset_by_the_inverse_of_what_was_applied() {
        let (mut clock, nodes) = setup(
            vec![Arc::new(FakeNode::ok(1))],
            &[ClockSupport::SystemClock],
        );
        clock
            .invoke(&FaultOp::new(SKEW, json!({"offsets_ms": {"n1": -300}})))
            .unwrap();
        clock
            .invoke(&FaultOp::new(
                BUMP,
                json!({"nodes": ["n1"], "delta_ms": 100}),
            ))
            .unwrap();
        clock.heal();
        let commands = nodes[0].commands();
        assert!(commands[0].ends_with("; b -300000000"), "{}", commands[0]);
        assert!(commands[1].ends_with("; b 100000000"), "{}", commands[1]);
        assert!(commands[2].ends_with("; b 200000000"), "{}", commands[2]);
        assert!(commands[0].contains("date -u -s"));
    }

    #[test]
    fn system_clock_of_a_local_node_is_refused() {
        let (mut clock, nodes) = setup(
            vec![Arc::new(FakeNode::ok(1).local())],
            &[ClockSupport::SystemClock],
        );
        let err = clock
            .invoke(&FaultOp::new(
                BUMP,
                json!({"nodes": ["n1"], "delta_ms": 100}),
            ))
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("refusing to set the system clock of local node n1"),
            "{err}"
        );
        assert!(nodes[0].commands().is_empty());
        assert!(clock.heal().is_empty());
    }

    #[test]
    fn unsupported_clock_fails_with_the_targets_reason_and_touches_nothing() {
        let why = "etcd is a Go binary and ignores LD_PRELOAD".to_string();
        let (mut clock, nodes) = setup(
            vec![Arc::new(FakeNode::ok(1)), Arc::new(FakeNode::ok(2))],
            &[file(1), ClockSupport::Unsupported(why.clone())],
        );
        let err = clock
            .invoke(&FaultOp::new(
                BUMP,
                json!({"nodes": ["n1", "n2"], "delta_ms": 100}),
            ))
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("failed on 1 of 2") && text.contains(&why),
            "{text}"
        );
        assert!(nodes[1].commands().is_empty());
        // n1 moved, so heal resets n1 and only n1.
        let healed = clock.heal();
        assert_eq!(healed[0].0.value, json!({"nodes": ["n1"]}));
        assert!(healed[0].1.is_ok());
    }

    #[test]
    fn a_bump_that_fails_on_one_node_puts_the_others_back() {
        let n2 = FakeNode::with(2, |_| crate::fake::failed("read-only file system"));
        let (mut clock, nodes) = setup(
            vec![Arc::new(FakeNode::ok(1)), Arc::new(n2)],
            &[file(1), file(2)],
        );
        clock
            .invoke(&FaultOp::new(
                BUMP,
                json!({"nodes": ["n1"], "delta_ms": 100}),
            ))
            .unwrap();
        let err = clock
            .invoke(&FaultOp::new(
                BUMP,
                json!({"nodes": ["n1", "n2"], "delta_ms": 500}),
            ))
            .unwrap_err();
        assert!(err.to_string().contains("read-only file system"), "{err}");
        let n1 = nodes[0].commands();
        assert!(n1[1].ends_with("w '+0.600'"), "{}", n1[1]);
        assert!(
            n1[2].ends_with("w '+0.100'"),
            "n1 goes back to the earlier bump: {}",
            n1[2]
        );
        assert_eq!(clock.active(), vec!["n1 clock +100 ms"]);
    }

    #[test]
    fn preflight_refuses_a_target_whose_clock_cannot_move_with_its_reason() {
        let why = "etcd is a Go binary and ignores LD_PRELOAD".to_string();
        let unsupported = ClockSupport::Unsupported(why.clone());
        let (clock, _) = setup(
            vec![Arc::new(FakeNode::ok(1)), Arc::new(FakeNode::ok(2))],
            &[unsupported.clone(), unsupported],
        );
        assert_eq!(
            clock.preflight().unwrap_err().to_string(),
            format!("clock cannot act on this target: {why}")
        );
        let (clock, _) = setup(
            vec![Arc::new(FakeNode::ok(1).local()), Arc::new(FakeNode::ok(2))],
            &[ClockSupport::SystemClock, file(2)],
        );
        let text = clock.preflight().unwrap_err().to_string();
        assert!(
            text.starts_with("clock needs a target clock it can move, which n1 lacks (refusing to set the system clock of local node n1"),
            "{text}"
        );
        let no_cap = FakeNode::with(1, |_| {
            crate::fake::failed("no CAP_SYS_TIME: the clock cannot be set from this login")
        });
        let (clock, nodes) = setup(vec![Arc::new(no_cap)], &[ClockSupport::SystemClock]);
        assert_eq!(
            clock.preflight().unwrap_err().to_string(),
            "clock needs a system clock it may set (GNU date, CAP_SYS_TIME), which n1 lacks (no CAP_SYS_TIME: the clock cannot be set from this login)"
        );
        assert!(
            !nodes[0].commands()[0].contains("date -u -s"),
            "the check never sets the clock"
        );
        let (clock, _) = setup(vec![Arc::new(FakeNode::ok(1))], &[file(1)]);
        clock.preflight().unwrap();
    }

    #[test]
    fn the_settable_check_passes_for_root_with_gnu_date() {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(SETTABLE_CHECK)
            .output()
            .unwrap();
        let root = nix::unistd::Uid::effective().is_root();
        assert_eq!(out.status.success(), root, "{out:?}");
    }

    #[test]
    fn strobe_is_bounded_and_ends_on_the_base_offset() {
        let cmd = strobe_command(
            &ClockMethod::File(PathBuf::from("/f")),
            100,
            50,
            1,
            1_000_000,
        );
        assert!(
            cmd.contains(&format!("[ $i -lt {MAX_STROBE_FLIPS} ]")),
            "{cmd}"
        );
        assert!(
            cmd.contains("w '+0.150' && sleep 0.001 && w '+0.100'"),
            "{cmd}"
        );
        assert!(
            cmd.ends_with("w '+0.100' || rc=1; echo $i; exit $rc"),
            "{cmd}"
        );
        let cmd = strobe_command(&ClockMethod::System, 0, 200, 10, 1000);
        assert!(cmd.contains("[ $i -lt 50 ]"), "{cmd}");
        assert!(
            cmd.contains("b 200000000 && sleep 0.010 && b -200000000"),
            "{cmd}"
        );
    }

    #[test]
    fn strobe_reports_flips_and_leaves_offsets_unchanged() {
        let node = FakeNode::with(1, |cmd| crate::node::ExecOutput {
            status: 0,
            stdout: if cmd.contains("echo $i") {
                "12\n".into()
            } else {
                String::new()
            },
            stderr: String::new(),
        });
        let (mut clock, _) = setup(vec![Arc::new(node)], &[file(1)]);
        let done = clock
            .invoke(&FaultOp::new(
                STROBE,
                json!({"nodes": ["n1"], "delta_ms": 64, "period_ms": 5, "duration_ms": 1000}),
            ))
            .unwrap();
        assert_eq!(done["flips"], json!({"n1": 12}));
        assert!(clock.active().is_empty());
        assert_eq!(
            clock.heal().len(),
            1,
            "a strobed node is still reset on heal"
        );
    }

    #[test]
    fn out_of_range_values_are_refused() {
        let (mut clock, nodes) = setup(vec![Arc::new(FakeNode::ok(1))], &[file(1)]);
        for op in [
            FaultOp::new(
                BUMP,
                json!({"nodes": ["n1"], "delta_ms": MAX_OFFSET_MS + 1}),
            ),
            FaultOp::new(
                STROBE,
                json!({"nodes": ["n1"], "delta_ms": 5, "period_ms": 0, "duration_ms": 10}),
            ),
            FaultOp::new(
                STROBE,
                json!({"nodes": ["n1"], "delta_ms": 5, "period_ms": 1, "duration_ms": MAX_STROBE_DURATION_MS + 1}),
            ),
            FaultOp::new(SKEW, json!({"offsets_ms": {"n1": "soon"}})),
            FaultOp::new(SKEW, json!({"offsets_ms": {"n1": i64::MAX}})),
            FaultOp::new(SKEW, json!({"offsets_ms": {"n1": i64::MIN}})),
        ] {
            assert!(
                matches!(clock.invoke(&op), Err(NemesisError::BadValue { .. })),
                "{op:?}"
            );
        }
        assert!(nodes[0].commands().is_empty());
    }

    #[test]
    fn schedule_alternates_a_clock_fault_with_a_reset() {
        let (mut clock, _) = setup(
            vec![Arc::new(FakeNode::ok(1)), Arc::new(FakeNode::ok(2))],
            &[file(1), file(2)],
        );
        for _ in 0..20 {
            let start = clock.next_op();
            assert!(
                [BUMP, STROBE, SKEW].contains(&start.f.as_str()),
                "{start:?}"
            );
            assert_eq!(clock.next_op().f, RESET);
        }
    }
}
