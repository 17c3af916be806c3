//! The learning-rate schedule: linear warm-up, then linear or cosine decay to a floor, as in
//! nanoGPT's `get_lr` and the Hugging Face Trainer.

use serde::{Deserialize, Serialize};

/// The shape of the decay after warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decay {
    /// Half a cosine from the peak to the floor.
    Cosine,
    /// A straight line from the peak to the floor.
    Linear,
    /// Stay at the peak.
    Constant,
}

/// A learning-rate schedule over `total` steps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// Peak learning rate.
    pub lr: f64,
    /// Floor reached at the last step.
    pub min_lr: f64,
    /// Steps of linear warm-up from 0.
    pub warmup: usize,
    /// Steps in the run.
    pub total: usize,
    /// Decay after warm-up.
    pub decay: Decay,
}

impl Schedule {
    /// The learning rate at `step` (0-based).
    pub fn at(&self, step: usize) -> f64 {
        // 1) linear warm-up
        if step < self.warmup {
            return self.lr * (step + 1) as f64 / self.warmup as f64;
        }
        // 2) past the end: the floor
        if step >= self.total || self.decay == Decay::Constant {
            return if self.decay == Decay::Constant {
                self.lr
            } else {
                self.min_lr
            };
        }
        // 3) decay from the peak to the floor
        let span = (self.total - self.warmup).max(1) as f64;
        let progress = (step - self.warmup) as f64 / span;
        let coeff = match self.decay {
            Decay::Cosine => 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
            Decay::Linear => 1.0 - progress,
            Decay::Constant => 1.0,
        };
        self.min_lr + coeff * (self.lr - self.min_lr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_up_then_decay_to_the_floor() {
        let s = Schedule {
            lr: 1.0,
            min_lr: 0.1,
            warmup: 10,
            total: 110,
            decay: Decay::Cosine,
        };
        assert_eq!(s.at(0), 0.1);
        assert_eq!(s.at(9), 1.0);
        assert!((s.at(10) - 1.0).abs() < 1e-12);
        assert!((s.at(60) - 0.55).abs() < 1e-9, "half way is the mid point");
        assert!((s.at(109) - 0.1).abs() < 1e-3);
        assert_eq!(s.at(500), 0.1);
        let l = Schedule {
            decay: Decay::Linear,
            ..s
        };
        assert!((l.at(60) - 0.55).abs() < 1e-9);
        assert!((l.at(35) - (0.1 + 0.75 * 0.9)).abs() < 1e-9);
    }
}
