//! Running a model over a set of images in eval mode: predictions, softmax outputs, accuracy.

use crate::data::batches::to_tensor;
use crate::data::device_batches::DeviceImages;
use crate::data::ImageSet;
use crate::eval::mia::{argmax_first, Outputs};
use crate::model::Classifier;
use tch::{Device, Kind, Tensor};

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
        .filter(|&(&y, row)| argmax_first(row) as i64 == y)
        .count();
    100.0 * correct as f64 / outputs.len() as f64
}

/// Eval-mode softmax outputs of `model` on `set[indices]`, in batches, without gradients.
///
/// On a GPU the selected images are copied once as `u8` and converted there, and the
/// probabilities come back in one copy at the end, so the GPU never waits on the host.
pub fn predict(
    model: &Classifier,
    set: &ImageSet,
    indices: &[usize],
    batch_size: usize,
    device: Device,
) -> Outputs {
    let c = model.spec.num_classes;
    let batch_size = batch_size.max(1);
    let labels: Vec<i64> = indices.iter().map(|&i| set.labels[i]).collect();
    let on_device = device
        .is_cuda()
        .then(|| DeviceImages::subset(set, indices, device));
    let mut parts = Vec::with_capacity(indices.len().div_ceil(batch_size));
    tch::no_grad(|| {
        for (n, chunk) in indices.chunks(batch_size).enumerate() {
            let images = match &on_device {
                Some(store) => store.range(n * batch_size, chunk.len()),
                None => to_tensor(set, chunk).images,
            };
            let (logits, _) = model.forward(&images, false);
            parts.push(logits.softmax(-1, Kind::Float));
        }
    });
    let probs = if parts.is_empty() {
        Vec::new()
    } else {
        let all = Tensor::cat(&parts, 0).to_device(Device::Cpu).contiguous();
        Vec::<f32>::try_from(all.view([-1])).expect("f32 softmax")
    };
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
