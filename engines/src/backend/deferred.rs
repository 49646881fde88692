//! Slow loads on a background thread, polled without blocking.
//!
//! The first start of a TensorRT backend builds an engine for the GPU, which takes minutes; a
//! video element that did that on its streaming thread would freeze the pipeline. A
//! [`Deferred`] runs the load on its own thread and the caller asks, once per frame, whether it
//! is done: [`Deferred::poll`] never waits.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::thread;
use std::time::Duration;

use super::{Backend, BackendOptions};
use crate::error::{Error, Result};

/// Where a background load stands.
#[derive(Debug)]
pub enum Poll<T> {
    Pending,
    Ready(T),
    /// The job returned an error or panicked (the panic message is kept).
    Failed(Error),
}

/// A job running on its own thread. Dropping it does not stop the job (ONNX Runtime cannot
/// cancel a session build); its result is then dropped on that thread when it finishes.
pub struct Deferred<T> {
    what: String,
    /// `None` once the result has been handed out.
    rx: Option<Receiver<Result<T>>>,
}

fn panic_text(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

impl<T: Send + 'static> Deferred<T> {
    /// Start `job` on a new thread; `what` names it in errors ("loading model.onnx").
    pub fn spawn(
        what: impl Into<String>,
        job: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Self {
        let what = what.into();
        // Capacity 1: the job never blocks on sending, even when nobody polls any more.
        let (tx, rx) = mpsc::sync_channel(1);
        let label = what.clone();
        let spawned = thread::Builder::new()
            .name("stylize-load".into())
            .spawn(move || {
                // A panic must reach the poller as an error: the element turns it into a
                // GStreamer error message instead of waiting forever.
                let result = panic::catch_unwind(AssertUnwindSafe(job)).unwrap_or_else(|p| {
                    Err(Error::Backend(format!(
                        "{label} panicked: {}",
                        panic_text(p.as_ref())
                    )))
                });
                let _ = tx.send(result);
            });
        if let Err(e) = spawned {
            let (tx, rx) = mpsc::sync_channel(1);
            let _ = tx.send(Err(Error::Backend(format!(
                "{what}: cannot start a thread: {e}"
            ))));
            return Self { what, rx: Some(rx) };
        }
        Self { what, rx: Some(rx) }
    }

    /// The job's state, without waiting. `Ready` and `Failed` are returned once; later calls
    /// return `Failed` saying the result was already taken.
    pub fn poll(&mut self) -> Poll<T> {
        let Some(rx) = &self.rx else {
            return Poll::Failed(self.taken());
        };
        match rx.try_recv() {
            Err(TryRecvError::Empty) => Poll::Pending,
            other => {
                self.rx = None;
                Self::finished(&self.what, other.ok())
            }
        }
    }

    /// Wait up to `timeout` for the job (for tools and tests; a streaming thread polls).
    pub fn wait(&mut self, timeout: Duration) -> Poll<T> {
        let Some(rx) = &self.rx else {
            return Poll::Failed(self.taken());
        };
        match rx.recv_timeout(timeout) {
            Err(mpsc::RecvTimeoutError::Timeout) => Poll::Pending,
            other => {
                self.rx = None;
                Self::finished(&self.what, other.ok())
            }
        }
    }

    pub fn is_pending(&self) -> bool {
        self.rx.is_some()
    }

    fn taken(&self) -> Error {
        Error::Backend(format!("{}: result already taken", self.what))
    }

    /// `None`: the thread ended without sending, which `catch_unwind` rules out except for an
    /// abort; reported rather than assumed impossible.
    fn finished(what: &str, received: Option<Result<T>>) -> Poll<T> {
        match received {
            Some(Ok(value)) => Poll::Ready(value),
            Some(Err(e)) => Poll::Failed(e),
            None => Poll::Failed(Error::Backend(format!(
                "{what}: the loader thread ended without a result"
            ))),
        }
    }
}

/// Load a model on the backend `options` ask for, in the background.
pub fn load(path: &std::path::Path, options: &BackendOptions) -> Deferred<Box<dyn Backend>> {
    let (path, options) = (path.to_path_buf(), options.clone());
    Deferred::spawn(format!("loading {}", path.display()), move || {
        super::load(&path, &options)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};
    use std::time::Instant;

    #[test]
    fn a_slow_job_is_pending_without_blocking_then_ready_once() {
        let gate = Arc::new(Barrier::new(2));
        let job_gate = gate.clone();
        let mut job = Deferred::spawn("slow job", move || {
            job_gate.wait();
            Ok(42)
        });
        let start = Instant::now();
        for _ in 0..100 {
            assert!(matches!(job.poll(), Poll::Pending));
        }
        assert!(
            start.elapsed() < Duration::from_millis(500),
            "polling waited: {:?}",
            start.elapsed()
        );
        assert!(job.is_pending());
        gate.wait();
        let deadline = Instant::now() + Duration::from_secs(10);
        let value = loop {
            match job.poll() {
                Poll::Ready(v) => break v,
                Poll::Pending if Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(1))
                }
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(value, 42);
        assert!(!job.is_pending());
        match job.poll() {
            Poll::Failed(e) => assert!(e.to_string().contains("already taken"), "{e}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_failing_job_reports_its_error() {
        let mut job = Deferred::<()>::spawn("failing job", || {
            Err(Error::Backend("no TensorRT here".into()))
        });
        match job.wait(Duration::from_secs(10)) {
            Poll::Failed(e) => assert_eq!(e.to_string(), "no TensorRT here"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_panicking_job_is_a_failure_not_a_hang() {
        let mut job = Deferred::<()>::spawn("panicking job", || panic!("engine build blew up"));
        match job.wait(Duration::from_secs(10)) {
            Poll::Failed(e) => {
                let text = e.to_string();
                assert!(text.contains("panicking job panicked"), "{text}");
                assert!(text.contains("engine build blew up"), "{text}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_dropped_job_finishes_quietly() {
        let gate = Arc::new(Barrier::new(2));
        let job_gate = gate.clone();
        let job = Deferred::spawn("orphan", move || {
            job_gate.wait();
            Ok(vec![1u8; 16])
        });
        // Dropping must not wait for the job (the job is parked on the gate until after the
        // drop, so a joining drop would hang this test).
        drop(job);
        gate.wait();
    }

    #[test]
    fn a_backend_load_of_a_missing_model_fails_in_the_background() {
        let mut job = load(
            std::path::Path::new("/nonexistent/model.onnx"),
            &BackendOptions::default(),
        );
        match job.wait(Duration::from_secs(30)) {
            Poll::Failed(e) => assert!(e.to_string().contains("does not exist"), "{e}"),
            Poll::Ready(_) => panic!("a missing model loaded"),
            Poll::Pending => panic!("timed out"),
        }
    }
}
