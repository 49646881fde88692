//! A picture or tensor size, always width then height: the engine once mixed (width, height)
//! tuples for pictures with (height, width) tuples for tensors, which is how a transposed
//! size slips through unnoticed on square test inputs.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Size {
    pub width: usize,
    pub height: usize,
}

impl Size {
    pub const fn new(width: usize, height: usize) -> Self {
        Self { width, height }
    }

    pub fn pixels(self) -> usize {
        self.width * self.height
    }

    /// Whether a picture of this size fits inside `other`.
    pub fn fits_in(self, other: Size) -> bool {
        self.width <= other.width && self.height <= other.height
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn width_comes_first() {
        let s = Size::new(640, 360);
        assert_eq!(s.to_string(), "640x360");
        assert_eq!(s.pixels(), 230_400);
        assert!(Size::new(320, 180).fits_in(s));
        assert!(!Size::new(360, 640).fits_in(s));
    }
}
