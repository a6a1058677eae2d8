//! Mean squared error over all elements, as Keras's `MeanSquaredError()` with its default
//! reduction: loss = sum (pred - target)² / N.

/// The loss, accumulated in f64 in a fixed order.
/// # Panics
/// If the slices differ in length.
pub fn mse(pred: &[f32], target: &[f32]) -> f64 {
    assert_eq!(pred.len(), target.len(), "mse: lengths");
    if pred.is_empty() {
        return 0.0;
    }
    let sum: f64 = pred.iter().zip(target).map(|(&p, &t)| ((p - t) as f64).powi(2)).sum();
    sum / pred.len() as f64
}

/// dpred = 2 (pred - target) / N. Overwrites `dpred`.
/// # Panics
/// If the slices differ in length.
pub fn mse_backward(pred: &[f32], target: &[f32], dpred: &mut [f32]) {
    assert!(pred.len() == target.len() && target.len() == dpred.len(), "mse: lengths");
    let scale = 2.0 / pred.len() as f32;
    for ((d, &p), &t) in dpred.iter_mut().zip(pred).zip(target) {
        *d = scale * (p - t);
    }
}
