//! Running a model over a set of images in eval mode: predictions, softmax outputs, accuracy.

use crate::data::batches::to_tensor;
use crate::data::ImageSet;
use crate::eval::mia::Outputs;
use crate::model::Classifier;
use tch::{Device, Kind};

/// Top-1 accuracy in percent of softmax outputs (0 for an empty set); ties go to the first
/// maximum, as `torch.argmax`.
pub fn top1_accuracy(outputs: &Outputs) -> f64 {
    if outputs.is_empty() {
        return 0.0;
    }
    let c = outputs.num_classes;
    let correct = outputs
        .labels
        .iter()
        .zip(outputs.probs.chunks(c))
        .filter(|&(&y, row)| {
            let best = row
                .iter()
                .enumerate()
                .fold(0, |b, (j, &p)| if p > row[b] { j } else { b });
            best as i64 == y
        })
        .count();
    100.0 * correct as f64 / outputs.len() as f64
}

/// Eval-mode softmax outputs of `model` on `set[indices]`, in batches, without gradients.
pub fn predict(
    model: &Classifier,
    set: &ImageSet,
    indices: &[usize],
    batch_size: usize,
    device: Device,
) -> Outputs {
    let c = model.spec.num_classes;
    let mut probs = Vec::with_capacity(indices.len() * c);
    let mut labels = Vec::with_capacity(indices.len());
    tch::no_grad(|| {
        for chunk in indices.chunks(batch_size.max(1)) {
            let batch = to_tensor(set, chunk);
            let (logits, _) = model.forward(&batch.images.to_device(device), false);
            let p = logits
                .softmax(-1, Kind::Float)
                .to_device(Device::Cpu)
                .contiguous();
            let flat: Vec<f32> = Vec::<f32>::try_from(p.view([-1])).expect("f32 softmax");
            probs.extend_from_slice(&flat);
            labels.extend(chunk.iter().map(|&i| set.labels[i]));
        }
    });
    Outputs {
        probs,
        labels,
        num_classes: c,
    }
}

/// Top-1 accuracy (%) of `model` on `set[indices]`, eval mode, no augmentation.
pub fn accuracy(
    model: &Classifier,
    set: &ImageSet,
    indices: &[usize],
    batch_size: usize,
    device: Device,
) -> f64 {
    top1_accuracy(&predict(model, set, indices, batch_size, device))
}
