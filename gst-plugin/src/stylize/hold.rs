//! Test seams: holding background work back, so a test sees what frames do while it is
//! pending for as long as it needs, instead of racing work that may finish before the first
//! buffer. Two gates: model loads (`background-load`) and style resolves (a new
//! `style-image` runs the predictor off the streaming thread).

use std::sync::{Condvar, Mutex, PoisonError};

/// A process-wide gate: closed while any guard from [`Gate::hold`] lives.
pub(super) struct Gate {
    holds: Mutex<usize>,
    released: Condvar,
}

impl Gate {
    const fn new() -> Self {
        Self {
            holds: Mutex::new(0),
            released: Condvar::new(),
        }
    }

    fn hold(&'static self) -> Hold {
        *self.holds.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        Hold(self)
    }

    /// Called first by every piece of background work this gate holds.
    pub(super) fn wait_while_held(&self) {
        let mut holds = self.holds.lock().unwrap_or_else(PoisonError::into_inner);
        while *holds > 0 {
            holds = self
                .released
                .wait(holds)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

pub(super) static LOADS: Gate = Gate::new();
pub(super) static RESOLVES: Gate = Gate::new();

/// While the guard lives, every background load of every `stylize` element in this process
/// waits before it starts. For tests of the element only (`background-load`).
#[doc(hidden)]
#[must_use = "loads are held only while the guard lives"]
pub fn hold_background_loads() -> Hold {
    LOADS.hold()
}

/// While the guard lives, style changes (style, style-weights, style-image, prompt) are
/// not resolved: frames go on with the previous style. For tests of the element only.
#[doc(hidden)]
#[must_use = "resolves are held only while the guard lives"]
pub fn hold_style_resolves() -> Hold {
    RESOLVES.hold()
}

#[doc(hidden)]
pub struct Hold(&'static Gate);

impl Drop for Hold {
    fn drop(&mut self) {
        *self.0.holds.lock().unwrap_or_else(PoisonError::into_inner) -= 1;
        self.0.released.notify_all();
    }
}
