//! The run's own log, `distest.log`: a timestamped line per phase, fault and error.
//!
//! Provisioning happens before the run directory exists (a refused run writes nothing),
//! so a log may start in memory and be written out once the directory is there.

use anyhow::Context;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Appends a timestamped line to the run's `distest.log` and to tracing.
#[derive(Clone, Default)]
pub struct RunLog {
    sink: Arc<Mutex<Sink>>,
}

enum Sink {
    /// The lines so far, for the file to come.
    Memory(Vec<String>),
    File(std::fs::File),
}

impl Default for Sink {
    fn default() -> Self {
        Sink::Memory(Vec::new())
    }
}

impl RunLog {
    /// A log writing to `path` from the start.
    pub fn create(path: &Path) -> anyhow::Result<RunLog> {
        let log = RunLog::in_memory();
        log.attach(path)?;
        Ok(log)
    }

    /// A log held in memory until [`attach`](Self::attach).
    pub fn in_memory() -> RunLog {
        RunLog::default()
    }

    /// Writes the lines so far to `path` and appends every later line there.
    pub fn attach(&self, path: &Path) -> anyhow::Result<()> {
        use std::io::Write;
        let mut file = std::fs::File::create(path)
            .with_context(|| format!("could not create {}", path.display()))?;
        let mut sink = self.sink.lock().unwrap_or_else(|e| e.into_inner());
        if let Sink::Memory(lines) = &*sink {
            for line in lines {
                writeln!(file, "{line}")
                    .with_context(|| format!("could not write {}", path.display()))?;
            }
        }
        *sink = Sink::File(file);
        Ok(())
    }

    pub fn line(&self, text: &str) {
        use std::io::Write;
        tracing::info!("{text}");
        let line = format!(
            "{} {text}",
            chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ")
        );
        match &mut *self.sink.lock().unwrap_or_else(|e| e.into_inner()) {
            Sink::File(f) => {
                let _ = writeln!(f, "{line}");
            }
            Sink::Memory(lines) => lines.push(line),
        }
    }

    /// A line the user sees now (stderr) as well as in the log: what the run does about
    /// something it found (leftovers removed, packages installed).
    pub fn say(&self, text: &str) {
        eprintln!("{text}");
        self.line(text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_before_the_file_exists_are_written_first() {
        let dir = std::env::temp_dir().join(format!("dt-runlog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("distest.log");
        let log = RunLog::in_memory();
        log.line("provisioning");
        log.clone().line("provisioned");
        log.attach(&path).unwrap();
        log.line("main phase");
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().map(|l| l.split_once(' ').unwrap().1).collect();
        assert_eq!(lines, ["provisioning", "provisioned", "main phase"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
