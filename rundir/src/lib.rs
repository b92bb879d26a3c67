//! distest-rundir: the run directory and the store, owned in one place.
//!
//! A run directory is `store/<target>-<workload>-<nemesis>/<timestamp>/` holding
//! `test.json` (the run's options, [`TestJson`]), `history.jsonl`, `results.json`,
//! `index.html` + SVGs, `nodes/<node>/*.log` and `distest.log`; `store/latest` points at
//! the newest run. `distest run` writes it, `check`, `report`, `ls`, `compare` and the
//! reports crate read it, all through this crate: the file names, the shape of
//! `test.json` and the walk over a store are written once.
//!
//! It sits below both `distest` (src/) and `distest-reports`, which may not depend on
//! src/; it depends only on `distest-checkers` (for `Results`, `History`, `CheckerSpec`).
//! No logic about how a run is done or how a page looks lives here.

pub mod files;
pub mod run_dir;
pub mod store;
pub mod test_json;

pub use run_dir::{JsonFile, RunDir, RunDirError};
pub use store::{find_runs, is_run_dir, RunEntry, Store};
pub use test_json::TestJson;
