//! `distest report RUN_DIR`: writes the run's `index.html` (self-contained: inline CSS
//! and SVG, no script); with no RUN_DIR, writes the store's `index.html` listing all runs.
//! A directory holding only a `history.jsonl` works too: it is checked with `stats` first.
//! A history over 256 MB (`DISTEST_REPORT_LIGHT_BYTES` to change it) is drawn from one
//! pass over it in bounded memory (`distest_reports::light`); the page says what that
//! leaves out.

use anyhow::Context;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The run directory (or any directory with a history.jsonl). A relative name that does
    /// not exist here is looked up in the store. Omit it to index the whole store.
    pub run_dir: Option<PathBuf>,
    /// Where runs live.
    #[arg(long, default_value = "store")]
    pub store: PathBuf,
    /// The window of the message-flow diagram (runs with a message journal), in seconds
    /// since the run started: `FROM-TO`, e.g. `12.5-13`. Default: around the first anomaly.
    #[arg(long, value_name = "FROM-TO", value_parser = parse_window)]
    pub messages_window: Option<distest_reports::lamport::Window>,
}

fn parse_window(s: &str) -> Result<distest_reports::lamport::Window, String> {
    let bad =
        || format!("expected FROM-TO in seconds since the run started (e.g. 12.5-13), got {s:?}");
    let (from, to) = s.split_once('-').ok_or_else(bad)?;
    let (from, to): (f64, f64) = (
        from.trim().parse().map_err(|_| bad())?,
        to.trim().parse().map_err(|_| bad())?,
    );
    if !(from.is_finite() && to.is_finite() && 0.0 <= from && from < to) {
        return Err(bad());
    }
    Ok(distest_reports::lamport::Window {
        from_ns: (from * 1e9) as u64,
        to_ns: (to * 1e9) as u64,
    })
}

/// Exit code 0 when the page was written (the run's verdict is on the page, and is what
/// `distest check` exits with), 3 when it could not be.
pub fn run(args: Args) -> anyhow::Result<i32> {
    match &args.run_dir {
        Some(dir) => {
            let dir = if dir.exists() || dir.is_absolute() {
                dir.clone()
            } else {
                args.store.join(dir)
            };
            let page = distest_reports::RunData::load(&dir)
                .and_then(|mut run| {
                    run.messages_window = args.messages_window;
                    distest_reports::render(&run)
                })
                .with_context(|| format!("could not render the report of {}", dir.display()))?;
            println!("{}", page.display());
        }
        None => {
            let page = distest_reports::store_index(&args.store).with_context(|| {
                format!(
                    "could not index the store {} (pass a run directory, or --store DIR)",
                    args.store.display()
                )
            })?;
            println!("{}", page.display());
        }
    }
    Ok(0)
}
