//! The run's own log, `distest.log`: a timestamped line per phase, fault and error.

use anyhow::Context;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Appends a timestamped line to the run's `distest.log` and to tracing.
#[derive(Clone)]
pub struct RunLog {
    file: Arc<Mutex<std::fs::File>>,
}

impl RunLog {
    pub fn create(path: &Path) -> anyhow::Result<RunLog> {
        let file = std::fs::File::create(path)
            .with_context(|| format!("could not create {}", path.display()))?;
        Ok(RunLog {
            file: Arc::new(Mutex::new(file)),
        })
    }

    pub fn line(&self, text: &str) {
        use std::io::Write;
        tracing::info!("{text}");
        let stamp = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
        let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(f, "{stamp} {text}");
    }
}
