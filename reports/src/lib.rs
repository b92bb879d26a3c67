//! distest-reports: what a person looks at after a run.
//!
//! - [`render_run`] turns a run directory (`test.json`, `history.jsonl`, `results.json`,
//!   `nodes/<node>/*.log`; any of them may be missing) into one self-contained
//!   `index.html` (inline CSS and SVG, no script, no network) plus `latency.svg` and
//!   `throughput.svg`. A directory holding only a history is checked with the `stats`
//!   checker first. [`render`] renders a [`RunData`] a finished run hands over in memory.
//! - Runs with a message journal (`messages.jsonl`, the maelstrom target) get a
//!   message-flow diagram ([`lamport`]) around the first anomaly, in `messages.svg`.
//! - [`compare`] writes `compare.html` and `compare.md` for several runs.
//! - [`store_index`] writes `store/index.html` listing every run; runs are found
//!   by `distest_rundir::find_runs`, which owns the run directory's files and shapes.
//! - [`junit`] renders results as JUnit XML: invalid → `<failure>`, unknown → `<error>`.
//!
//! Everything read from a run is untrusted and escaped (see [`html::esc`]). Sizes are
//! bounded whatever the history's length: the latency scatter keeps at most
//! [`charts::MAX_SCATTER_POINTS`] points, timelines at most [`timeline::MAX_ROWS`] rows.
//! So is memory: a history over [`light::threshold_bytes`] is read in one pass into its
//! [`light`] form (exact counts and rates, sampled latency points, the ops around
//! anomalies only), and the page says so.

pub mod analysis;
pub mod charts;
pub mod compare;
pub mod cycle;
pub mod error;
pub mod evidence;
pub mod faults;
pub mod html;
pub mod junit;
pub mod lamport;
pub mod lanes;
pub mod light;
pub mod logs;
pub mod plot;
pub mod run_data;
pub mod run_page;
pub mod store_index;
pub mod timeline;

pub use compare::{compare, CompareOutput};
pub use distest_rundir::find_runs;
pub use error::ReportError;
pub use junit::junit;
pub use run_data::RunData;
pub use run_page::{render, render_run};
pub use store_index::store_index;
