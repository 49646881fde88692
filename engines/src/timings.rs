//! Where a frame's time goes: reported by the stylizer and the backends, shown by the
//! element's frame messages and the benchmarks.

/// Milliseconds spent in each step of one frame.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timings {
    pub convert_in_ms: f64,
    pub infer_ms: f64,
    pub convert_out_ms: f64,
    /// Motion-compensated smoothing (0 when stability is off).
    pub temporal_ms: f64,
    /// Host↔device memory copies for this frame (0 on the CPU; 2 for a device-resident frame,
    /// plus one when the style vector changed).
    pub host_copies: u32,
}

impl Timings {
    pub fn total_ms(&self) -> f64 {
        self.convert_in_ms + self.infer_ms + self.convert_out_ms + self.temporal_ms
    }
}
