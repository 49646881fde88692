//! Ctrl-C and SIGTERM during `stylize file`.
//!
//! The first signal asks the running pipeline to finish: each branch ends at its next
//! buffer with an end-of-stream event, the muxer finalises the container, and the frames
//! done are kept under the output name. A second signal aborts at once: the temporary
//! file is removed (nothing else) and the process exits with 128 + the signal number.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

pub struct Interrupt {
    /// Read by the pipeline's gates.
    pub stop: Arc<AtomicBool>,
    signal: AtomicI32,
    /// The temporary files a second signal removes.
    temps: Mutex<Vec<PathBuf>>,
}

impl Interrupt {
    /// Install the handlers (they replace the default "die at once" of SIGINT/SIGTERM).
    pub fn install() -> Result<Arc<Self>> {
        let this = Arc::new(Self {
            stop: Arc::new(AtomicBool::new(false)),
            signal: AtomicI32::new(0),
            temps: Mutex::new(Vec::new()),
        });
        let mut signals = Signals::new([SIGINT, SIGTERM]).context("installing signal handlers")?;
        let shared = this.clone();
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for signal in signals.forever() {
                    shared.on_signal(signal);
                }
            })
            .context("starting the signal thread")?;
        Ok(this)
    }

    fn on_signal(&self, signal: i32) {
        if !self.stop.swap(true, Ordering::SeqCst) {
            self.signal.store(signal, Ordering::SeqCst);
            eprintln!(
                "\nstylize: stopping: finishing the output with the frames done \
                 (signal again to abort)"
            );
            return;
        }
        eprintln!("\nstylize: aborted");
        for temp in self
            .temps
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            let _ = std::fs::remove_file(temp);
        }
        std::process::exit(128 + signal);
    }

    /// Whether a stop was asked for.
    pub fn requested(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// The exit status for an interrupted run: 128 + the signal number.
    pub fn exit_code(&self) -> u8 {
        (128 + self.signal.load(Ordering::SeqCst).clamp(0, 127)) as u8
    }

    /// Register the temporary files in progress (none once renamed or removed).
    pub fn set_temps(&self, temps: &[&std::path::Path]) {
        *self.temps.lock().unwrap_or_else(|e| e.into_inner()) =
            temps.iter().map(|t| t.to_path_buf()).collect();
    }
}

/// Returned by `stylize file` when it stopped early on a signal, after keeping what was
/// done: the process exits with this status.
#[derive(Debug)]
pub struct Interrupted {
    pub code: u8,
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "interrupted")
    }
}

impl std::error::Error for Interrupted {}
