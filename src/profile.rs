//! Time per pass of a training step, layer by layer, for `autoencoder bench --layers`. A
//! `Profile` that is off (what training uses) reads no clock and records nothing.

use std::time::Instant;

/// Where a pass belongs: a layer of the model (its index), or the step around the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Layer(usize),
    Loss,
    Optimizer,
}

/// The summed time of one pass over the steps profiled.
#[derive(Clone, Debug)]
pub struct PassTime {
    pub stage: Stage,
    /// "forward", "activation", "activation gradient", "weight gradient", "input gradient",
    /// "mse", "adam", ...
    pub pass: &'static str,
    pub seconds: f64,
    /// Floating-point operations of the multiply-adds (2 per multiply-add), 0 for passes
    /// that only move memory.
    pub flops: f64,
    pub calls: usize,
}

#[derive(Debug, Default)]
pub struct Profile {
    /// The clock at the end of the last lap; `None` when profiling is off.
    last: Option<Instant>,
    stage: Option<Stage>,
    passes: Vec<PassTime>,
}

impl Profile {
    /// Records nothing (no allocation, no clock reads).
    pub fn off() -> Self {
        Profile::default()
    }

    pub fn on() -> Self {
        Profile { last: Some(Instant::now()), ..Profile::default() }
    }

    /// Starts timing the passes of `stage`: the clock restarts, so the time since the last
    /// lap is not charged to anything.
    pub fn enter(&mut self, stage: Stage) {
        if self.last.is_some() {
            self.stage = Some(stage);
            self.last = Some(Instant::now());
        }
    }

    /// Charges the time since the last lap (or `enter`) to `pass` of the current stage.
    pub fn lap(&mut self, pass: &'static str, flops: f64) {
        let (Some(last), Some(stage)) = (self.last, self.stage) else { return };
        let now = Instant::now();
        let seconds = (now - last).as_secs_f64();
        self.last = Some(now);
        match self.passes.iter_mut().find(|p| p.stage == stage && p.pass == pass) {
            Some(p) => {
                p.seconds += seconds;
                p.flops += flops;
                p.calls += 1;
            }
            None => self.passes.push(PassTime { stage, pass, seconds, flops, calls: 1 }),
        }
    }

    /// Every pass timed, in the order first seen.
    pub fn passes(&self) -> &[PassTime] {
        &self.passes
    }
}
