//! What the run tests share: a sink that can be read while the run writes to it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_run::{Cancel, RunLimits};

#[derive(Clone, Default)]
pub struct SharedSink(pub Arc<Mutex<Vec<u8>>>);

impl SharedSink {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// Waits until the log contains `needle` (at most 30 s).
    pub async fn wait_for(&self, needle: &str) {
        let started = std::time::Instant::now();
        while !self.text().contains(needle) {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "`{needle}` never appeared in the log: {}",
                self.text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Write for SharedSink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Short limits, so a test that hits one ends quickly.
pub fn limits() -> RunLimits {
    RunLimits {
        hard_timeout: Duration::from_secs(60),
        log_silence: Duration::from_secs(30),
        max_log: 1_000_000,
        grace: Duration::from_secs(5),
    }
}

/// Cancels `cancel` (gracefully, or hard) once `sink` shows `needle`.
pub fn cancel_when(sink: &SharedSink, needle: &'static str, cancel: &Cancel, hard: bool) {
    let sink = sink.clone();
    let cancel = cancel.clone();
    tokio::spawn(async move {
        sink.wait_for(needle).await;
        if hard {
            cancel.hard.cancel();
        } else {
            cancel.graceful.cancel();
        }
    });
}
