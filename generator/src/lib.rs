//! distest-generator: the time and the randomness of a run, owned in one place (Jepsen's
//! Generator noun).
//!
//! - [`seed`]: every random stream of a run derived from its one `--seed` by name
//!   ([`rng_for`]`(seed, "clients/7")`), so one seed replays the op mix and the fault
//!   schedule, and adding a stream never shifts another.
//! - [`pace`]: when a client sends its next op (stagger, Poisson gaps at `--rate`,
//!   backoff after failures).
//! - [`process`]: process ids, and retiring a process after an indeterminate op.
//! - [`phases`]: the phases of a run and how long the timed ones last.
//! - [`schedule`]: timed steps as data ([`Step`]), streams of them ([`Schedule`]), random
//!   gaps, fixed lists and their composition: the nemesis schedule is built on these.
//!
//! Pure: no I/O, no threads, no clock. Callers (the orchestrator in `src/run`, the fault
//! schedules in `distest-nemeses`) do the waiting; this crate says how long.

pub mod pace;
pub mod phases;
pub mod process;
pub mod schedule;
pub mod seed;

pub use pace::Pace;
pub use phases::Phase;
pub use process::Processes;
pub use schedule::{Gaps, Merge, Schedule, Step, Steps};
pub use seed::rng_for;
