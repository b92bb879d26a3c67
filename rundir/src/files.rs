//! The names of the files in a run directory and in a store. Every reader and writer
//! uses these; a new file gets its constant here.

/// The run's options, seed included ([`crate::TestJson`]).
pub const TEST_JSON: &str = "test.json";
/// The history distest records (JSON Lines, appended while the run goes).
pub const HISTORY_JSONL: &str = "history.jsonl";
/// The checkers' verdicts (`distest_checkers::Results`).
pub const RESULTS_JSON: &str = "results.json";
/// The message journal of a run whose nodes talk through routers (the maelstrom target):
/// every message sent, delivered or dropped, on the history's clock
/// (`distest_checkers::net`).
pub const MESSAGES_JSONL: &str = "messages.jsonl";
/// The schedule file a run performed (`--nemesis-schedule`), copied as it was read.
pub const NEMESIS_SCHEDULE: &str = "nemesis-schedule.toml";
/// The run's own log: phases, faults, errors.
pub const DISTEST_LOG: &str = "distest.log";
/// What the client programs of a target described in a file wrote to stderr, and
/// distest's notes about them (timeouts, crashes, lines that were no answer).
pub const CLIENTS_LOG: &str = "clients.log";
/// The report page (also the store's index page, at the store's root).
pub const INDEX_HTML: &str = "index.html";
/// `nodes/<node>/` holds each node's log files.
pub const NODES_DIR: &str = "nodes";
/// The store's link to its newest run.
pub const LATEST: &str = "latest";
/// History files a run directory may hold, in the order they are tried: distest's own,
/// then imported Jepsen ones (`history.edn`, a Jepsen text log as `history.txt`).
pub const HISTORY_FILES: [&str; 3] = [HISTORY_JSONL, "history.edn", "history.txt"];
/// Any of these makes a directory a run directory.
pub const RUN_MARKERS: [&str; 5] = [
    TEST_JSON,
    RESULTS_JSON,
    HISTORY_FILES[0],
    HISTORY_FILES[1],
    HISTORY_FILES[2],
];
