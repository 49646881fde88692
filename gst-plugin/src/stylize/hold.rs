//! Test seam: holding background loads back, so a test sees frames pass through for as long
//! as it needs instead of racing a load that may finish before the first buffer.

use std::sync::{Condvar, Mutex, PoisonError};

static HOLDS: Mutex<usize> = Mutex::new(0);
static RELEASED: Condvar = Condvar::new();

/// While the guard lives, every background load of every `stylize` element in this process
/// waits before it starts. For tests of the element only (`background-load`).
#[doc(hidden)]
#[must_use = "loads are held only while the guard lives"]
pub fn hold_background_loads() -> LoadHold {
    *HOLDS.lock().unwrap_or_else(PoisonError::into_inner) += 1;
    LoadHold(())
}

#[doc(hidden)]
pub struct LoadHold(());

impl Drop for LoadHold {
    fn drop(&mut self) {
        *HOLDS.lock().unwrap_or_else(PoisonError::into_inner) -= 1;
        RELEASED.notify_all();
    }
}

/// Called first by every background job.
pub(super) fn wait_while_held() {
    let mut holds = HOLDS.lock().unwrap_or_else(PoisonError::into_inner);
    while *holds > 0 {
        holds = RELEASED.wait(holds).unwrap_or_else(PoisonError::into_inner);
    }
}
