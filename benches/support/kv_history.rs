//! A keyed kv history of any size for the end-to-end benches (`check_files`, `report`).

#[path = "../../checkers/tests/linearizable_support/gen.rs"]
mod gen;

use distest_checkers::format::write_jsonl_line;
use distest_checkers::{Op, Process};
use gen::{simulate, GenConfig};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use serde_json::Value;
use std::io::{BufWriter, Write};
use std::path::Path;

/// Writes a keyed kv history of about `target_bytes`: segments of 4 keys each, every
/// segment on fresh keys and processes (keys retire as the history goes, as a run's
/// do), indices dense, one op per microsecond. As distest JSON Lines, or each op
/// written by `edn_line` (Jepsen EDN).
/// Returns the number of ops written.
pub fn write(path: &Path, target_bytes: u64, edn_line: Option<fn(&Op, &mut String)>) -> u64 {
    let cfg = GenConfig {
        processes: 20,
        ops: 4_000,
        values: 5,
        keys: 40,
        p_info: 0.05,
        kv: true,
    };
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let mut rng = SmallRng::seed_from_u64(7);
    let (mut written, mut index, mut segment) = (0u64, 0u64, 0u64);
    let (mut bytes, mut text) = (Vec::new(), String::new());
    while written < target_bytes {
        for mut op in simulate(&mut rng, &cfg) {
            op.index = index;
            op.time = index * 1_000;
            index += 1;
            if let Process::Client(p) = op.process {
                op.process = Process::Client(p + segment * 1_000);
            }
            if let Some(k) = op.value.get(0).and_then(Value::as_u64) {
                op.value[0] = (k + segment * cfg.keys).into();
            }
            bytes.clear();
            if let Some(edn_line) = edn_line {
                text.clear();
                edn_line(&op, &mut text);
                bytes.extend_from_slice(text.as_bytes());
            } else {
                write_jsonl_line(&op, &mut bytes);
            }
            w.write_all(&bytes).unwrap();
            written += bytes.len() as u64;
        }
        segment += 1;
    }
    w.flush().unwrap();
    index
}
