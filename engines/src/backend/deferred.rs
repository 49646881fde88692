//! Slow loads on a background thread, polled without blocking.
//!
//! The first start of a TensorRT backend builds an engine for the GPU, which takes minutes; a
//! video element that did that on its streaming thread would freeze the pipeline. A
//! [`Deferred`] runs the load on its own thread and the caller asks, once per frame, whether it
//! is done: [`Deferred::poll`] never waits.

use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::sync::{Mutex, PoisonError};
use std::thread::{self, JoinHandle};
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
/// cancel a session build) and does not wait for it: its result is dropped on that thread when
/// it finishes. A job still running then is joined at process exit ([`join_unfinished`]);
/// whoever can afford to wait calls [`Deferred::settle`] instead (an element stopping).
pub struct Deferred<T> {
    what: String,
    /// `None` once the result has been handed out.
    rx: Option<Receiver<Result<T>>>,
    /// The job's thread; joined, or handed to [`UNFINISHED`], on drop.
    thread: Option<JoinHandle<()>>,
}

/// Threads of dropped jobs that were still running.
static UNFINISHED: Mutex<Vec<JoinHandle<()>>> = Mutex::new(Vec::new());

/// Wait for every background job whose [`Deferred`] was dropped before it finished.
///
/// Registered with `atexit` when such a job is handed over: a process that exits while a job
/// still builds (or drops) an ONNX Runtime session runs the library's exit handlers under it,
/// which ended short `background-load=always` pipelines with SIGSEGV or SIGABRT. Exit handlers
/// run in reverse order of registration, so this one, registered after the job had been
/// running a while, runs before the library's handlers registered when it loaded. (Static
/// objects the library creates lazily later register later; [`Deferred::settle`] covers
/// them by not handing a young job over at all.)
pub fn join_unfinished() {
    let threads = std::mem::take(&mut *UNFINISHED.lock().unwrap_or_else(PoisonError::into_inner));
    for thread in threads {
        let _ = thread.join();
    }
}

extern "C" fn join_unfinished_at_exit() {
    join_unfinished();
}

impl<T> Drop for Deferred<T> {
    fn drop(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        if thread.is_finished() {
            let _ = thread.join();
            return;
        }
        let mut unfinished = UNFINISHED.lock().unwrap_or_else(PoisonError::into_inner);
        // Reap the ones that ended meanwhile, so a long-lived process does not collect them.
        let (done, running): (Vec<_>, Vec<_>) =
            unfinished.drain(..).partition(JoinHandle::is_finished);
        *unfinished = running;
        unfinished.push(thread);
        drop(unfinished);
        for thread in done {
            let _ = thread.join();
        }
        // SAFETY: atexit with a plain function that neither unwinds nor calls exit.
        unsafe {
            libc::atexit(join_unfinished_at_exit);
        }
    }
}

impl<T> Deferred<T> {
    /// Give the job up to `timeout` to end, then drop it (its result, if any, unused).
    /// Returns whether it ended. A stopping element calls this: a CPU load ends within a
    /// second, and a job that ends here never races the process's exit; only one still
    /// running after `timeout` (a TensorRT engine build) is handed over to [`join_unfinished`].
    pub fn settle(mut self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let Some(thread) = self.thread.take() else {
            return true;
        };
        while !thread.is_finished() && std::time::Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        let ended = thread.is_finished();
        self.thread = Some(thread);
        ended
    }
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
                        crate::error::panic_message(p.as_ref())
                    )))
                });
                let _ = tx.send(result);
            });
        match spawned {
            Ok(thread) => Self {
                what,
                rx: Some(rx),
                thread: Some(thread),
            },
            Err(e) => {
                let (tx, rx) = mpsc::sync_channel(1);
                let _ = tx.send(Err(Error::Backend(format!(
                    "{what}: cannot start a thread: {e}"
                ))));
                Self {
                    what,
                    rx: Some(rx),
                    thread: None,
                }
            }
        }
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
    fn a_dropped_job_finishes_quietly_and_is_joined_at_exit() {
        let gate = Arc::new(Barrier::new(2));
        let job_gate = gate.clone();
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let job_done = done.clone();
        let job = Deferred::spawn("orphan", move || {
            job_gate.wait();
            thread::sleep(Duration::from_millis(200));
            job_done.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok(vec![1u8; 16])
        });
        // Dropping must not wait for the job (the job is parked on the gate until after the
        // drop, so a joining drop would hang this test).
        drop(job);
        gate.wait();
        // What runs at exit waits for it: nothing of the job outlives `join_unfinished`.
        join_unfinished();
        assert!(done.load(std::sync::atomic::Ordering::SeqCst));
    }

    #[test]
    fn settle_waits_a_bounded_time_for_the_job() {
        let job = Deferred::spawn("short", || {
            thread::sleep(Duration::from_millis(100));
            Ok(1)
        });
        assert!(
            job.settle(Duration::from_secs(10)),
            "a short job ends within the wait"
        );
        let gate = Arc::new(Barrier::new(2));
        let job_gate = gate.clone();
        let job = Deferred::spawn("parked", move || {
            job_gate.wait();
            Ok(2)
        });
        let start = Instant::now();
        assert!(!job.settle(Duration::from_millis(100)), "still parked");
        assert!(start.elapsed() < Duration::from_secs(5));
        gate.wait();
        join_unfinished();
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
