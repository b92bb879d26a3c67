//! `distest compare RUN_DIR... | --store DIR`: one table and overlaid charts for several
//! runs, as `compare.html` and `compare.md` (for publishing).

use anyhow::{bail, Context};
use distest_reports::CompareOutput;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Run directories to compare, in this order. Relative names that do not exist here
    /// are looked up in --store.
    pub runs: Vec<PathBuf>,
    /// The store. With no RUN_DIR, every run in it is compared and its index.html refreshed.
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// Where compare.html and compare.md go (default: the store with --store, else the
    /// current directory).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Exit code 0 when both files were written, 3 when they could not be.
pub fn run(args: Args) -> anyhow::Result<i32> {
    let runs: Vec<PathBuf> = match (&args.store, args.runs.is_empty()) {
        (None, true) => bail!("nothing to compare: pass run directories, or --store DIR to compare every run in a store"),
        (Some(store), true) => {
            let runs = distest_rundir::find_runs(store);
            if runs.is_empty() {
                bail!("found no runs in {}; pass run directories or the right --store", store.display());
            }
            distest_reports::store_index(store)
                .with_context(|| format!("could not index the store {}", store.display()))?;
            runs
        }
        (store, false) => args
            .runs
            .iter()
            .map(|r| match store {
                Some(s) if !r.exists() && !r.is_absolute() => s.join(r),
                _ => r.clone(),
            })
            .collect(),
    };
    let out_dir = args
        .out
        .clone()
        .or_else(|| args.store.clone())
        .unwrap_or_else(|| PathBuf::from("."));
    let written = distest_reports::compare(&runs, &out_dir).with_context(|| {
        format!(
            "could not compare {} runs into {}",
            runs.len(),
            out_dir.display()
        )
    })?;
    println!("{}", written.html.display());
    println!("{}", written.markdown.display());
    Ok(0)
}

/// For `distest suite`: compares the suite's runs into `store` (compare.html, compare.md,
/// titled with the suite's `name`) and refreshes `store/index.html`.
pub fn write_comparison(
    name: &str,
    dirs: &[PathBuf],
    store: &Path,
) -> anyhow::Result<CompareOutput> {
    let written = distest_reports::compare::compare_titled(dirs, store, &format!("suite {name}"))
        .with_context(|| {
        format!(
            "could not write the comparison of suite {name} into {}",
            store.display()
        )
    })?;
    distest_reports::store_index(store)
        .with_context(|| format!("could not index the store {}", store.display()))?;
    Ok(written)
}
