//! Verification: a history in, verdicts out. Loading a history (any format), running
//! checkers under a time limit, the person-readable summary, and writing `results.json`
//! and JUnit XML. `distest check` and `distest run` both verify through here; neither
//! holds any of it.
//!
//! Online checking (verdicts while ops are recorded, `run/online.rs`) builds its checkers
//! with [`build_checkers`] and produces the same `Results` as [`check`].

use anyhow::Context;
use distest_checkers::format::{self, Format};
use distest_checkers::{CheckContext, CheckerSpec, History, Results, Validity};
use distest_rundir::{run_dir::read_history_file, RunDir};
use std::path::Path;
use std::time::Duration;

/// Reads a history file, detecting its format unless one is forced.
pub fn load_history(path: &Path, format: Option<Format>) -> anyhow::Result<History> {
    Ok(read_history_file(path, format)?)
}

/// Builds every checker of `specs`; an unknown name or option fails before any check.
pub fn build_checkers(
    specs: &[CheckerSpec],
) -> anyhow::Result<Vec<Box<dyn distest_checkers::Checker>>> {
    specs
        .iter()
        .map(|s| {
            let o = with_files(s)?;
            distest_checkers::build(&s.name, &o).map_err(anyhow::Error::from)
        })
        .collect()
}

/// `spec`'s options with the files they name read in (checkers do no I/O): the
/// rw-register transaction order.
fn with_files(spec: &CheckerSpec) -> anyhow::Result<distest_checkers::CheckerOptions> {
    let mut options = spec.options.clone();
    if let Some(path) = &spec.options.transaction_order {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("could not read the transaction order {path}"))?;
        let order = distest_checkers::elle::versions::parse_transaction_order(&text)
            .map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
        options.transaction_order_map = Some(std::sync::Arc::new(order));
    }
    Ok(options)
}

/// Runs the checkers of `specs` on `history`; past `limit` they are asked to stop and
/// answer unknown.
pub fn check(
    history: &History,
    specs: &[CheckerSpec],
    limit: Option<Duration>,
) -> anyhow::Result<Results> {
    let checkers = build_checkers(specs)?;
    Ok(with_time_limit(limit, |ctx| {
        distest_checkers::check_all(history, &checkers, ctx)
    }))
}

/// Files at least this large are checked op by op (as with `stream`).
pub const STREAM_FROM_BYTES: u64 = 1 << 30;

/// Checks the history file at `path`. When only Elle checkers judge a JSONL history,
/// its transactions are streamed straight from the file instead of building a `History`
/// first: a third of the memory on million-transaction histories, and the same verdicts.
/// With `stream` (or a file of [`STREAM_FROM_BYTES`] or more), the other checkers go op
/// by op too ([`check_stream`]).
pub fn check_file(
    path: &Path,
    format: Option<Format>,
    specs: &[CheckerSpec],
    limit: Option<Duration>,
    stream: bool,
) -> anyhow::Result<Results> {
    if let Some(results) = try_streaming_elle(path, format, specs, limit) {
        return results;
    }
    // Bad checker names fail before a large history is read.
    let checkers = build_checkers(specs)?;
    let size_bytes = std::fs::metadata(path).map_or(0, |m| m.len());
    if stream || size_bytes >= STREAM_FROM_BYTES {
        return check_stream(path, format, &checkers, limit);
    }
    let history = load_history(path, format)?;
    let results = check(&history, specs, limit);
    free_in_background(history);
    results
}

/// Frees `value` on a thread of its own. A long history is a few allocations per op,
/// and freeing them took a tenth of a `distest check` after its verdict was known;
/// a command that ends right after does not wait for it.
fn free_in_background<T: Send + 'static>(value: T) {
    // If no thread can be started, the closure (and `value`) is dropped here instead.
    let _ = std::thread::Builder::new()
        .name("free-history".to_string())
        .spawn(move || drop(value));
}

/// Checks a history file op by op in two passes, in the memory of the keys in use at
/// the same time (see `distest_checkers::online::replay_stream`); the same results as
/// [`check`] on the whole history.
pub fn check_stream(
    path: &Path,
    format: Option<Format>,
    checkers: &[Box<dyn distest_checkers::Checker>],
    limit: Option<Duration>,
) -> anyhow::Result<Results> {
    /// Ops between two ticks: the checkers' deferred searches run this often.
    const TICK_EVERY_OPS: u64 = 1 << 14;
    let replay = with_time_limit(limit, |ctx| {
        distest_checkers::online::replay_stream(
            distest_checkers::online::LastUses::default(),
            || std::fs::File::open(path),
            format,
            &path.display().to_string(),
            checkers,
            ctx,
            TICK_EVERY_OPS,
        )
    })?;
    Ok(replay.results)
}

/// Runs `f` with a context whose cancel flag a watchdog raises after `limit`.
fn with_time_limit<T>(limit: Option<Duration>, f: impl FnOnce(&CheckContext) -> T) -> T {
    let ctx = CheckContext::default();
    let cancel = ctx.cancel.clone();
    let done = std::sync::Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
    let watchdog = limit.map(|limit| {
        let done = done.clone();
        std::thread::spawn(move || {
            let (lock, cvar) = &*done;
            let guard = lock.lock().unwrap_or_else(|e| e.into_inner());
            let (guard, timeout) = cvar
                .wait_timeout_while(guard, limit, |finished| !*finished)
                .unwrap_or_else(|e| e.into_inner());
            if timeout.timed_out() && !*guard {
                cancel.cancel();
            }
        })
    });
    let out = f(&ctx);
    {
        let (lock, cvar) = &*done;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cvar.notify_all();
    }
    if let Some(w) = watchdog {
        let _ = w.join();
    }
    out
}

/// The streaming path of [`check_file`]; `None` when it does not apply (other
/// checkers, another format, a pipe whose format is not given). The input is opened once
/// per shape of transaction and read from where its format was detected, so a pipe
/// (`/dev/stdin`, a FIFO) given with `--format jsonl` and one shape checks here too.
fn try_streaming_elle(
    path: &Path,
    format: Option<Format>,
    specs: &[CheckerSpec],
    limit: Option<Duration>,
) -> Option<anyhow::Result<Results>> {
    use distest_checkers::elle::{check_txns, txn::Shape, txn::Txns, ElleOptions};
    use std::io::BufRead;
    let shape_of = |name: &str| match name {
        "list-append" => Some(Shape::ListAppend),
        "rw-register" => Some(Shape::RwRegister),
        _ => None,
    };
    if specs.is_empty() || specs.iter().any(|s| shape_of(&s.name).is_none()) {
        return None;
    }
    if format.is_some_and(|f| f != Format::Jsonl) {
        return None;
    }
    if format.is_none() && !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        // Detecting the format of a pipe consumes its first bytes, which another path
        // could not read again: the general path reads it once (`--format jsonl` keeps
        // this one).
        return None;
    }
    let run = || -> anyhow::Result<Option<Results>> {
        let mut read: std::collections::BTreeMap<&str, Txns> = Default::default();
        let mut verdicts = std::collections::BTreeMap::new();
        for spec in specs {
            let options = ElleOptions::from_checker_options(&spec.name, &with_files(spec)?)?;
            if !read.contains_key(spec.name.as_str()) {
                let file = std::fs::File::open(path)
                    .with_context(|| format!("could not open {}", path.display()))?;
                let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
                if format.is_none() {
                    let prefix = reader
                        .fill_buf()
                        .with_context(|| format!("could not read {}", path.display()))?;
                    if format::detect(&prefix[..prefix.len().min(64 << 10)]) != Format::Jsonl {
                        return Ok(None);
                    }
                }
                let shape = shape_of(&spec.name).expect("checked above");
                // A pipe has no length: its tables grow as it goes.
                let size = std::fs::metadata(path).map_or(0, |m| m.len());
                let txns =
                    Txns::read_jsonl_sized(reader, shape, &path.display().to_string(), size)?;
                if txns.txns.is_empty() {
                    // No transaction at all: the general path tells an empty file or one
                    // without ops (an error) from a history of other ops (a verdict).
                    return Ok(None);
                }
                read.insert(&spec.name, txns);
            }
            let txns = &read[spec.name.as_str()];
            let verdict = with_time_limit(limit, |ctx| check_txns(txns, &options, ctx));
            verdicts.insert(spec.name.clone(), verdict);
        }
        Ok(Some(Results::from_verdicts(verdicts)))
    };
    run().transpose()
}

/// A few lines for a person: the verdict, then each checker's summary and explanation.
/// Why a run failed (`results.error`) is not among them: it goes to stderr, as every
/// error does (see [`say_error`]).
pub fn human_summary(results: &Results) -> String {
    let mut out = String::new();
    for (name, verdict) in &results.checkers {
        out.push_str(&format!("{name}: {}", verdict.valid));
        if !verdict.anomalies.is_empty() {
            out.push_str(&format!(" ({})", verdict.anomalies.join(", ")));
        }
        out.push('\n');
        if !verdict.summary.is_empty() {
            out.push_str(&format!("  {}\n", verdict.summary));
        }
        if !verdict.explanation.is_empty() && verdict.valid != Validity::Valid {
            for line in verdict.explanation.lines() {
                out.push_str(&format!("    {line}\n"));
            }
        }
    }
    if results.interrupted {
        out.push_str("interrupted: the run was cut short by a signal; what was recorded was checked, but the test did not run its course\n");
    }
    out.push_str(&format!("verdict: {}", results.valid));
    if results.interrupted && results.valid != Validity::Invalid {
        out.push_str(" (interrupted)");
    }
    out.push('\n');
    out
}

/// Prints why the run failed, if it did, on stderr as `error: <sentence>`.
pub fn say_error(results: &Results) {
    if let Some(error) = &results.error {
        eprintln!("error: {error}");
    }
}

/// Writes the run's `results.json`.
/// Adds Maelstrom's `net` verdict — the message statistics of the run's journal
/// (`messages.jsonl`), msgs-per-op among them; always valid — when the run has a journal.
/// A journal that cannot be read leaves the results as they are and says why.
pub fn with_net(results: Results, run: &RunDir, client_ops: u64) -> (Results, Option<String>) {
    match run.read_journal() {
        Ok(None) => (results, None),
        Err(e) => (results, Some(format!("no net statistics: {e}"))),
        Ok(Some(journal)) => {
            // Everything else the results say (first anomaly, interrupted, error) stays.
            let mut results = results;
            results.add_verdict("net", distest_checkers::net::verdict(&journal, client_ops));
            (results, None)
        }
    }
}

/// Client invocations in a history file (Maelstrom's "ops" in msgs-per-op), read op by
/// op so a history of any size is counted in constant memory.
pub fn count_client_invocations(path: &Path, format: Option<Format>) -> anyhow::Result<u64> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("could not open the history {}", path.display()))?;
    let mut invocations = 0u64;
    format::stream_history(file, format, &path.display().to_string(), None, |op| {
        if op.is_client() && op.is_invoke() {
            invocations += 1;
        }
        Ok(())
    })?;
    Ok(invocations)
}

pub fn write_results(run: &RunDir, results: &Results) -> anyhow::Result<()> {
    Ok(run.write_results(results)?)
}

/// Writes JUnit XML (one test case per checker) for each `(label, results)`.
pub fn write_junit(path: &Path, results: &[(String, Results)]) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, distest_reports::junit(results))
        .with_context(|| format!("could not write JUnit XML to {}", path.display()))
}
