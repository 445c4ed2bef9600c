//! Running a model over a set of images in eval mode: predictions, softmax outputs, accuracy.

use crate::data::batches::to_tensor;
use crate::data::ImageSet;
use crate::model::Classifier;
use tch::{Device, Kind, Tensor};

/// Softmax outputs of a model on some images, with their labels.
#[derive(Debug, Clone, Default)]
pub struct Predictions {
    /// Row-major n×C softmax probabilities (computed in f32).
    pub probs: Vec<f32>,
    /// The true labels.
    pub labels: Vec<i64>,
    /// C.
    pub num_classes: usize,
}

impl Predictions {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Top-1 accuracy in percent (0 for an empty set).
    pub fn accuracy(&self) -> f64 {
        if self.is_empty() {
            return 0.0;
        }
        let c = self.num_classes;
        let correct = self
            .labels
            .iter()
            .enumerate()
            .filter(|&(i, &y)| {
                let row = &self.probs[i * c..(i + 1) * c];
                // First maximum, as torch.argmax.
                let best = row.iter().enumerate().fold(0, |b, (j, &p)| if p > row[b] { j } else { b });
                best as i64 == y
            })
            .count();
        100.0 * correct as f64 / self.len() as f64
    }
}

/// Eval-mode softmax outputs of `model` on `set[indices]`, in batches, without gradients.
pub fn predict(model: &Classifier, set: &ImageSet, indices: &[usize], batch_size: usize, device: Device) -> Predictions {
    let c = model.spec.num_classes;
    let mut probs = Vec::with_capacity(indices.len() * c);
    let mut labels = Vec::with_capacity(indices.len());
    tch::no_grad(|| {
        for chunk in indices.chunks(batch_size.max(1)) {
            let batch = to_tensor(set, chunk);
            let (logits, _) = model.forward(&batch.images.to_device(device), false);
            let p = logits.softmax(-1, Kind::Float).to_device(Device::Cpu).contiguous();
            let flat: Vec<f32> = Vec::<f32>::try_from(p.view([-1])).expect("f32 softmax");
            probs.extend_from_slice(&flat);
            labels.extend(chunk.iter().map(|&i| set.labels[i]));
        }
    });
    Predictions { probs, labels, num_classes: c }
}

/// Top-1 accuracy (%) of `model` on `set[indices]`, eval mode, no augmentation.
pub fn accuracy(model: &Classifier, set: &ImageSet, indices: &[usize], batch_size: usize, device: Device) -> f64 {
    predict(model, set, indices, batch_size, device).accuracy()
}

/// Mean of a scalar tensor as f64 (for logging).
pub fn scalar(t: &Tensor) -> f64 {
    t.double_value(&[])
}
