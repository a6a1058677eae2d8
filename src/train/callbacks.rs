//! Keras's epoch-end callbacks on the validation loss: early stopping and the learning-rate
//! schedule.

/// Keras `EarlyStopping(mode="min", restore_best_weights=True)` on the monitored figure
/// (`train::Monitor::of`: the validation loss, or 1 - a validation SSIM).
#[derive(Clone, Debug, PartialEq)]
pub struct EarlyStopping {
    pub patience: usize,
    pub min_delta: f64,
    pub best: f64,
    pub best_epoch: usize,
    /// Epochs since the last improvement.
    pub wait: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A new best: keep these weights.
    Improved,
    /// No improvement, patience not yet exhausted.
    Wait,
    /// Patience exhausted: stop and restore the best weights.
    Stop,
}

impl EarlyStopping {
    pub fn new(patience: usize, min_delta: f64) -> Self {
        EarlyStopping { patience, min_delta, best: f64::INFINITY, best_epoch: 0, wait: 0 }
    }

    /// Records `epoch`'s monitored figure. An improvement means figure < best - min_delta.
    pub fn update(&mut self, epoch: usize, val_loss: f64) -> Verdict {
        if val_loss < self.best - self.min_delta {
            self.best = val_loss;
            self.best_epoch = epoch;
            self.wait = 0;
            return Verdict::Improved;
        }
        self.wait += 1;
        if self.wait >= self.patience {
            Verdict::Stop
        } else {
            Verdict::Wait
        }
    }
}

/// Keras `ReduceLROnPlateau(mode="min", cooldown=0)` on the monitored figure: after `patience`
/// epochs without figure < best - min_delta, the learning rate is multiplied by `factor`
/// (not below `min_lr`) and the count starts again.
#[derive(Clone, Debug, PartialEq)]
pub struct ReduceLrOnPlateau {
    /// 0: never reduce.
    pub patience: usize,
    pub factor: f32,
    pub min_lr: f32,
    pub min_delta: f64,
    pub best: f64,
    /// Epochs since the last improvement or reduction.
    pub wait: usize,
}

impl ReduceLrOnPlateau {
    /// Keras's `ReduceLROnPlateau(patience, factor, min_lr, min_delta)`; patience 0 never
    /// changes the rate.
    pub fn new(patience: usize, factor: f32, min_lr: f32, min_delta: f64) -> Self {
        ReduceLrOnPlateau { patience, factor, min_lr, min_delta, best: f64::INFINITY, wait: 0 }
    }

    /// Records an epoch's validation loss; returns the reduced learning rate when `lr` must
    /// change.
    pub fn update(&mut self, val_loss: f64, lr: f32) -> Option<f32> {
        if self.patience == 0 {
            return None;
        }
        if val_loss < self.best - self.min_delta {
            self.best = val_loss;
            self.wait = 0;
            return None;
        }
        self.wait += 1;
        if self.wait < self.patience || lr <= self.min_lr {
            return None;
        }
        self.wait = 0;
        Some((lr * self.factor).max(self.min_lr))
    }
}
