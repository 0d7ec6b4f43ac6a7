//! How large figures are drawn: `smoothlab report --figure-scale`.

use anyhow::{ensure, Result};
use std::ops::RangeInclusive;

/// Panels are drawn at `scale` times their default pixel size while text keeps its
/// size, so a smaller scale gives text that is larger relative to the figure. The
/// defaults suit a screen; for print, scale 0.75 makes a one-panel figure's tick labels
/// about 8 pt (axis labels 9 pt) when it is set 3.3 in wide, a paper's single column.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Style {
    scale: f64,
}

impl Style {
    /// Below 0.5 the axes' labels crowd the plotting area out; above 3 text is tiny.
    pub const SCALES: RangeInclusive<f64> = 0.5..=3.0;

    pub fn new(scale: f64) -> Result<Self> {
        ensure!(
            Self::SCALES.contains(&scale),
            "a figure scale of {scale} is outside {}..={}",
            Self::SCALES.start(),
            Self::SCALES.end()
        );
        Ok(Self { scale })
    }

    pub fn scale(&self) -> f64 {
        self.scale
    }

    pub(super) fn scaled(&self, pixels: u32) -> u32 {
        (f64::from(pixels) * self.scale).round().max(1.0) as u32
    }
}

impl Default for Style {
    fn default() -> Self {
        Self { scale: 1.0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_outside_the_range_are_refused() {
        assert!(Style::new(0.49).is_err());
        assert!(Style::new(3.01).is_err());
        assert!(Style::new(f64::NAN).is_err());
        assert_eq!(Style::new(0.75).unwrap().scaled(480), 360);
        assert_eq!(Style::default().scaled(480), 480);
    }
}
