//! SynFlow (Tanaka et al. 2020), data-free pruning scores (SPEC §3).
//!
//! The network is linearised — every parameter and buffer replaced by its absolute value,
//! BatchNorm in eval mode — and R = Σ outputs on an all-ones input of one sample. The score of a
//! weight is |∂R/∂w · w|. Pruning runs `rounds` rounds on the exponential schedule: after round
//! k the kept fraction of conv weights is (1 − rate)^(k/rounds), pruned weights staying pruned.
//!
//! Precision: scores are computed in f64 on a scratch copy of the model. R is a product of
//! |w| sums across ~20 layers, which overflows f32 for ResNet-18 (the reference code notes the
//! same risk); f64 has room, and the ranking is then exact for ties below f32 resolution. The
//! scratch copy also means the caller's weights, signs included, are never touched.

use crate::checkpoint::copy_into;
use crate::model::mask::Mask;
use crate::model::Classifier;
use tch::{Device, Kind, Tensor};

/// SynFlow scores |∂R/∂w · w| of `params` for a linearised network: `forward` maps the all-ones
/// input of shape `input_shape` to outputs whose sum is R. The parameters must already hold
/// their absolute values (and require gradients); gradients are cleared before and after.
pub fn scores(
    params: &[(String, Tensor)],
    forward: impl Fn(&Tensor) -> Tensor,
    input_shape: &[i64],
) -> Vec<(String, Tensor)> {
    let kind = params.first().map_or(Kind::Double, |(_, p)| p.kind());
    let device = params.first().map_or(Device::Cpu, |(_, p)| p.device());
    for (_, p) in params {
        let mut g = p.grad();
        if g.defined() {
            let _ = g.zero_();
        }
    }
    let input = Tensor::ones(input_shape, (kind, device));
    let r = forward(&input).sum(kind);
    r.backward();
    let out = params
        .iter()
        .map(|(n, p)| (n.clone(), (p.grad() * p).abs().detach()))
        .collect();
    for (_, p) in params {
        let mut g = p.grad();
        if g.defined() {
            let _ = g.zero_();
        }
    }
    out
}

/// Prunes the fraction `rate` of `model`'s conv weights by iterative SynFlow over `rounds`
/// rounds, starting from `current` (its pruned weights stay pruned), with an all-ones input of
/// one `height`×`width` image (the data shape). Leaves `model` unchanged.
pub fn synflow_mask(
    model: &Classifier,
    rate: f64,
    rounds: usize,
    current: Option<&Mask>,
    (height, width): (usize, usize),
) -> anyhow::Result<Mask> {
    let rounds = rounds.max(1);
    let device = model.vs.device();
    // A scratch copy in f64 with every variable replaced by its absolute value.
    let mut scratch = Classifier::try_new(&model.spec, device)?;
    copy_into(&scratch.vs, model.vs.variables())?;
    scratch.vs.double();
    tch::no_grad(|| {
        for (_, v) in scratch.vs.variables() {
            let _ = v.shallow_clone().abs_();
        }
    });
    let vars = scratch.vs.variables();
    let names = scratch.conv_weight_names();
    let params: Vec<(String, Tensor)> = names
        .iter()
        .map(|n| (n.clone(), vars[n].shallow_clone()))
        .collect();
    let shape = [
        1,
        model.spec.in_channels as i64,
        height as i64,
        width as i64,
    ];
    let start = current.cloned().unwrap_or_else(|| Mask::dense(model));
    // Remaining fraction before this call, so that the schedule ends at exactly `rate`.
    let already = 1.0 - start.sparsity().overall / 100.0;
    let target_keep = 1.0 - rate;
    let mut mask = start;
    for k in 1..=rounds {
        mask.apply_to_weights(&scratch.vs);
        let s = scores(&params, |x| scratch.forward(x, false).0, &shape);
        let keep =
            already * (target_keep / already.max(f64::MIN_POSITIVE)).powf(k as f64 / rounds as f64);
        mask = Mask::global_from_scores(&s, 1.0 - keep, Some(&mask));
    }
    Ok(mask)
}
