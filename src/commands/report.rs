//! `distest report RUN_DIR`: writes the run's `index.html` (self-contained: inline CSS
//! and SVG, no script); with no RUN_DIR, writes the store's `index.html` listing all runs.
//! A directory holding only a `history.jsonl` works too: it is checked with `stats` first.

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
            let page = distest_reports::render_run(&dir)
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
