//! `distest ls`: the runs in the store, oldest first, with their verdicts (marked when a
//! run was interrupted or failed).

use distest_rundir::Store;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Where runs live.
    #[arg(long, default_value = "store")]
    pub store: PathBuf,
    /// Print the list as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    let runs = Store::new(&args.store).runs();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&runs)?);
        return Ok(0);
    }
    if runs.is_empty() {
        println!("no runs in {}", args.store.display());
        return Ok(0);
    }
    for run in &runs {
        let mut verdict = run
            .valid
            .map(|v| v.as_str())
            .unwrap_or("incomplete")
            .to_string();
        if run.interrupted {
            verdict.push_str(" (interrupted)");
        } else if run.error.is_some() {
            verdict.push_str(" (run failed)");
        }
        let mut notes = run.anomalies.clone();
        if let Some(error) = &run.error {
            notes.push(error.clone());
        }
        let notes = if notes.is_empty() {
            String::new()
        } else {
            format!(" ({})", notes.join("; "))
        };
        println!("{:<24} {}{}", verdict, run.path.display(), notes);
    }
    Ok(0)
}
