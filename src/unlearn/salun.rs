//! `SalUn` and `SalUn_soft` (SPEC §4b.4; Unlearn-Saliency `generate_mask.py`, `unlearn/RL.py`
//! with a mask, `unlearn/RL_pro.py`).
//!
//! **SalUn** builds a saliency mask once, on the original model: in eval mode, the gradient of
//! the batch-mean −CE is summed over the forget batches (augmented as the forget stream is),
//! s = |G| over every trainable parameter, and the ⌊N·r⌋ entries with the largest s are selected
//! (r = `--mask_ratio`, default 0.5; ties go to the earlier parameter, then the earlier entry).
//! Then random labelling ([`super::random_label`]) runs with every step confined to the mask:
//! gradients are multiplied by it before the step and, as the reference does since its commit
//! "Fix weight decay", after the step the weights outside it are reset to their start-of-epoch
//! values and their momentum is zeroed, so they end bit-identical. `--salun_legacy` gives the
//! older code the paper's numbers come from: only the gradient is masked, so weight decay and
//! momentum still move weights outside the mask. The mask is written to
//! `saliency_mask.safetensors` (u8 0/1 per parameter name) for inspection.
//!
//! Pruned models (which the reference never sees): pruned weights get saliency 0, as the
//! gradient of a pruned `weight_orig` is 0 in PyTorch, and the pruning mask is enforced at every
//! step as everywhere, so they stay 0.
//!
//! **SalUn_soft** (`RL_proximal`) uses no saliency mask. Each epoch, F relabelled once is
//! concatenated with R into one shuffled loader (svhn keeps RL's separate passes); after every
//! step the distance d = θ − θ0 to the start-of-epoch weights θ0 is soft-thresholded at τ, the
//! ρ-th smallest |d| over all trainable entries: d > τ gives θ − τ, d < −τ gives θ + τ, otherwise
//! θ0. ρ = ⌊r·(T − (e·L + 1))/T·n⌋ with r = `--mask_ratio`, L = |F loader| + |R loader|,
//! T = epochs·L, e the 0-based epoch and n the number of trainable entries: constant within an
//! epoch, decaying linearly across epochs (in svhn's retain pass it also counts the retain steps,
//! e·L + i + 1, as the reference writes it). The reference crashes as shipped (`--mask_ratio` is
//! not defined); here it is, default 0.5. ρ = 0, where the reference's `topk` would fail, leaves
//! the weights as the step made them.

use super::random_label::{batches_in, run_rl, Layout, StepHook, StepInfo, Stream};
use super::{batch_source, lr_epochs, UnlearnContext, UnlearnLog, Unlearner};
use crate::data::DatasetName;
use crate::model::Classifier;
use crate::optim::Sgd;
use anyhow::{bail, Context};
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// The file, in the run's folder, that receives SalUn's saliency mask.
pub const SALIENCY_MASK_FILE: &str = "saliency_mask.safetensors";

/// Saliency unlearning: random labelling restricted to the most salient weights.
pub struct SalUn {
    /// `SalUn_soft`: the proximal (soft-threshold) variant instead of the hard saliency mask.
    pub soft: bool,
}

impl Unlearner for SalUn {
    fn name(&self) -> &'static str {
        if self.soft {
            "SalUn_soft"
        } else {
            "SalUn"
        }
    }
    fn defaults(&self) -> (f64, usize) {
        (0.013, 10)
    }
    fn summary(&self) -> &'static str {
        if self.soft {
            "SalUn-soft: random labelling on F ∪ R, after each step θ−θ0 soft-thresholded at its ρ-th smallest |·|, ρ decaying from --mask_ratio 0.5 of all weights"
        } else {
            "SalUn: random labelling confined to the ⌊N·r⌋ weights most salient for the forget loss (--mask_ratio 0.5; --salun_legacy masks only the gradient)"
        }
    }
    fn forget_harness(&self) -> super::Harness {
        super::Harness::Saliency
    }
    fn run(&self, ctx: &UnlearnContext, log: &mut UnlearnLog) -> anyhow::Result<()> {
        let (lr, epochs) = lr_epochs(self, ctx.config);
        if self.soft {
            run_soft(ctx, log, lr, epochs)
        } else {
            run_hard(ctx, log, lr, epochs)
        }
    }
}

/// SalUn: the saliency mask, saved and recorded, then random labelling inside it.
fn run_hard(
    ctx: &UnlearnContext,
    log: &mut UnlearnLog,
    lr: f64,
    epochs: usize,
) -> anyhow::Result<()> {
    let cfg = ctx.config;
    let start = Instant::now();
    let params = named_parameters(ctx.model)?;
    let scores = saliency_scores(ctx)?;
    let mask = saliency_mask(&scores, cfg.mask_ratio);
    let path = ctx.save_dir.join(SALIENCY_MASK_FILE);
    let names: Vec<&str> = params.iter().map(|(n, _)| n.as_str()).collect();
    save_mask(&path, &names, &mask)?;
    let total: usize = mask.iter().map(Tensor::numel).sum();
    log.record("mask_ratio", cfg.mask_ratio);
    log.record("salun_legacy", cfg.salun_legacy);
    log.record("saliency_forget_augmented", ctx.forget_augmented());
    log.record("saliency_mask_ones", selected_count(total, cfg.mask_ratio));
    log.record("saliency_mask_entries", total);
    log.record("saliency_seconds", start.elapsed().as_secs_f64());
    let params = params.into_iter().map(|(_, p)| p).collect();
    let mut hook = SaliencyHook::new(params, mask, cfg.salun_legacy);
    // The random labels come from libtorch's generator: the same command, the same labels.
    tch::manual_seed(cfg.seed as i64);
    run_rl(
        ctx,
        log,
        lr,
        epochs,
        Layout::for_rl(ctx.data.name),
        &mut hook,
    )
}

/// SalUn-soft: random labelling with the proximal soft threshold after every step.
fn run_soft(
    ctx: &UnlearnContext,
    log: &mut UnlearnLog,
    lr: f64,
    epochs: usize,
) -> anyhow::Result<()> {
    let layout = soft_layout(ctx.data.name);
    log.record("mask_ratio", ctx.config.mask_ratio);
    let mut hook = ProximalHook::new(ctx, epochs, layout);
    tch::manual_seed(ctx.config.seed as i64);
    run_rl(ctx, log, lr, epochs, layout, &mut hook)
}

/// SalUn-soft's layout: one concatenated loader, except for svhn (separate passes).
pub fn soft_layout(name: DatasetName) -> Layout {
    if name == DatasetName::Svhn {
        Layout::Separate
    } else {
        Layout::Concatenated
    }
}

/// The trainable parameters with their names, in the optimizer's order.
pub fn named_parameters(model: &Classifier) -> anyhow::Result<Vec<(String, Tensor)>> {
    // A parameter's storage is its identity: the var store lists names and the trainable
    // tensors separately.
    let names: HashMap<usize, String> = model
        .vs
        .variables()
        .into_iter()
        .map(|(name, t)| (t.data_ptr() as usize, name))
        .collect();
    model
        .vs
        .trainable_variables()
        .into_iter()
        .map(|t| match names.get(&(t.data_ptr() as usize)) {
            Some(name) => Ok((name.clone(), t)),
            None => bail!("a trainable parameter of shape {:?} has no name", t.size()),
        })
        .collect()
}

/// s = |Σ_batches ∇(−CE batch-mean)| per trainable parameter ([`named_parameters`] order), on
/// the forget set in eval mode (batches of `--batch_size`, augmented as the forget stream is);
/// 0 at pruned weights. The model's weights and statistics are left as they were.
pub fn saliency_scores(ctx: &UnlearnContext) -> anyhow::Result<Vec<Tensor>> {
    let cfg = ctx.config;
    if ctx.splits.forget.is_empty() {
        bail!("SalUn's saliency mask needs a forget set, and it is empty");
    }
    let params = named_parameters(ctx.model)?;
    zero_grads(&params);
    let batches = batch_source(ctx).epoch(
        ctx.splits.forget.clone(),
        cfg.batch_size,
        true,
        false,
        ctx.forget_augmented().then(|| ctx.augment()).flatten(),
        cfg.seed.wrapping_mul(7_919) ^ 0x7361_6c69_656e_6379,
    );
    for batch in batches {
        let images = batch.images.to_device(ctx.device);
        let labels = batch.labels.to_device(ctx.device);
        let (logits, _) = ctx.model.forward(&images, false);
        // Gradients accumulate across backward passes: after the loop they hold G = Σ ∇(−CE).
        (-logits.cross_entropy_for_logits(&labels)).backward();
    }
    let scores = tch::no_grad(|| {
        params
            .iter()
            .map(|(name, p)| {
                let g = p.grad();
                let s = if g.defined() { g.abs() } else { p.zeros_like() };
                match ctx.mask.and_then(|m| m.masks.get(name)) {
                    Some(m) => s * m.to_device(p.device()),
                    None => s.copy(),
                }
            })
            .collect()
    });
    zero_grads(&params);
    Ok(scores)
}

/// Clears the gradients of `params`.
fn zero_grads(params: &[(String, Tensor)]) {
    for (_, p) in params {
        p.shallow_clone().zero_grad();
    }
}

/// How many entries a ratio selects out of `total`: ⌊total·ratio⌋ (at most `total`).
pub fn selected_count(total: usize, ratio: f64) -> usize {
    ((total as f64 * ratio) as usize).min(total)
}

/// The hard saliency mask (f32 0/1, one tensor per score tensor, same shapes and devices): 1 at
/// the ⌊N·ratio⌋ largest scores of all tensors together (N = all entries). Ties go to the
/// earlier tensor, then the earlier entry (row-major); NaN counts as the largest score.
pub fn saliency_mask(scores: &[Tensor], ratio: f64) -> Vec<Tensor> {
    let mut flat: Vec<f32> = Vec::new();
    for s in scores {
        let s = s.detach().to_kind(Kind::Float).to_device(Device::Cpu);
        flat.extend(Vec::<f32>::try_from(s.flatten(0, -1)).expect("f32 CPU tensor to Vec"));
    }
    let n = flat.len();
    let k = selected_count(n, ratio);
    let mut chosen = vec![0f32; n];
    if k > 0 {
        // O(N) selection keeps ResNet-18's 11 M entries fast.
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.select_nth_unstable_by(k - 1, |&a, &b| {
            let (sa, sb) = (order_key(flat[a as usize]), order_key(flat[b as usize]));
            sb.total_cmp(&sa).then(a.cmp(&b))
        });
        for &i in &order[..k] {
            chosen[i as usize] = 1.0;
        }
    }
    let mut off = 0;
    scores
        .iter()
        .map(|s| {
            let len = s.numel();
            let m = Tensor::from_slice(&chosen[off..off + len])
                .view(s.size().as_slice())
                .to_device(s.device());
            off += len;
            m
        })
        .collect()
}

/// A score for ordering: NaN as +∞ (above every number), else the score itself.
fn order_key(score: f32) -> f32 {
    if score.is_nan() {
        f32::INFINITY
    } else {
        score
    }
}

/// Writes `masks` as u8 0/1 tensors named `names` to a safetensors file.
pub fn save_mask(path: &Path, names: &[&str], masks: &[Tensor]) -> anyhow::Result<()> {
    let named: Vec<(&str, Tensor)> = names
        .iter()
        .zip(masks)
        .map(|(&n, m)| (n, m.to_kind(Kind::Uint8).to_device(Device::Cpu)))
        .collect();
    Tensor::write_safetensors(&named, path)
        .with_context(|| format!("writing the saliency mask {}", path.display()))
}

/// SalUn's additions to each random-labelling step: the saliency mask on the gradients and,
/// unless legacy, the weights and momentum outside it held at their start-of-epoch values.
pub struct SaliencyHook {
    params: Vec<Tensor>,
    masks: Vec<Tensor>,
    keep: Vec<Tensor>,
    snapshot: Vec<Tensor>,
    legacy: bool,
}

impl SaliencyHook {
    /// A hook for `params` (the optimizer's order) and their 0/1 `masks`; `legacy` masks only the
    /// gradient, as the paper's code did.
    pub fn new(params: Vec<Tensor>, masks: Vec<Tensor>, legacy: bool) -> SaliencyHook {
        let keep = masks.iter().map(|m| m.ne(0.0)).collect();
        SaliencyHook {
            params,
            masks,
            keep,
            snapshot: Vec::new(),
            legacy,
        }
    }
}

impl StepHook for SaliencyHook {
    fn start_epoch(&mut self, _ctx: &UnlearnContext, _epoch: usize) -> anyhow::Result<()> {
        if !self.legacy {
            self.snapshot = self.params.iter().map(|p| p.detach().copy()).collect();
        }
        Ok(())
    }

    fn before_step(&mut self, _ctx: &UnlearnContext, _step: &StepInfo) -> anyhow::Result<()> {
        tch::no_grad(|| {
            for (p, m) in self.params.iter().zip(&self.masks) {
                let mut g = p.grad();
                if g.defined() {
                    let _ = g.g_mul_(m);
                }
            }
        });
        Ok(())
    }

    fn after_step(
        &mut self,
        _ctx: &UnlearnContext,
        opt: &mut Sgd,
        _step: &StepInfo,
    ) -> anyhow::Result<()> {
        if self.legacy {
            return Ok(());
        }
        tch::no_grad(|| {
            for ((p, keep), snap) in self.params.iter().zip(&self.keep).zip(&self.snapshot) {
                let restored = p.where_self(keep, snap);
                p.shallow_clone().copy_(&restored);
            }
            // The momentum buffers share storage with the optimizer's (`Sgd::state`), so this
            // zeroes the momentum outside the mask in place.
            for (mut buf, m) in opt.state().into_iter().zip(&self.masks) {
                let _ = buf.g_mul_(m);
            }
        });
        Ok(())
    }
}

/// ρ of SalUn-soft's threshold after `done` steps' worth of schedule (e·L + 1, or e·L + i + 1 in
/// svhn's retain pass) of `total_steps` (T), for `n_params` entries:
/// ⌊ratio·((T − done)/T·n_params)⌋, in the reference's order of operations.
pub fn proximal_rank(ratio: f64, total_steps: usize, done: usize, n_params: usize) -> usize {
    let remaining = total_steps as f64 - done as f64;
    let value = ratio * (remaining / total_steps as f64 * n_params as f64);
    if value > 0.0 {
        value as usize
    } else {
        0
    }
}

/// Soft-thresholds d = θ − θ0 over all of `params` together, in place: τ = the ρ-th smallest
/// |d| (1-based `rho`); d > τ gives θ − τ, d < −τ gives θ + τ, otherwise θ0 (so at least ρ
/// entries end equal to θ0). Returns τ, or `None` (nothing changed) when ρ is 0.
pub fn soft_threshold(params: &[Tensor], theta0: &[Tensor], rho: usize) -> Option<f64> {
    if rho == 0 {
        return None;
    }
    tch::no_grad(|| {
        let diffs: Vec<Tensor> = params
            .iter()
            .zip(theta0)
            .map(|(p, p0)| p.detach() - p0)
            .collect();
        let all: Vec<Tensor> = diffs.iter().map(|d| d.abs().flatten(0, -1)).collect();
        let all = Tensor::cat(&all, 0);
        let rho = rho.min(all.numel()) as i64;
        let (tau, _) = all.kthvalue(rho, 0, false);
        for ((p, p0), d) in params.iter().zip(theta0).zip(&diffs) {
            let below = (p + &tau).where_self(&d.lt_tensor(&-&tau), p0);
            let new = (p - &tau).where_self(&d.gt_tensor(&tau), &below);
            p.shallow_clone().copy_(&new);
        }
        Some(tau.double_value(&[]))
    })
}

/// SalUn-soft's addition to each random-labelling step: θ0 snapshotted at each epoch's start,
/// the soft threshold at ρ after each step.
pub struct ProximalHook {
    params: Vec<Tensor>,
    theta0: Vec<Tensor>,
    ratio: f64,
    loader_len: usize,
    total_steps: usize,
    n_params: usize,
    layout: Layout,
    /// ρ of the last step (0 before the first).
    pub last_rho: usize,
}

impl ProximalHook {
    /// The hook for a run of `epochs` epochs of `layout` on `ctx` (ratio `--mask_ratio`).
    pub fn new(ctx: &UnlearnContext, epochs: usize, layout: Layout) -> ProximalHook {
        let bs = ctx.config.batch_size;
        // L counts the separate loaders' batches, whichever layout iterates them.
        let loader_len =
            batches_in(ctx.splits.forget.len(), bs) + batches_in(ctx.splits.retain.len(), bs);
        let params = ctx.model.vs.trainable_variables();
        let n_params = params.iter().map(Tensor::numel).sum();
        ProximalHook {
            params,
            theta0: Vec::new(),
            ratio: ctx.config.mask_ratio,
            loader_len,
            total_steps: epochs * loader_len,
            n_params,
            layout,
            last_rho: 0,
        }
    }

    /// ρ after step `index` of `stream` in 0-based `epoch`.
    pub fn rho(&self, epoch: usize, stream: Stream, index: usize) -> usize {
        let mut done = epoch * self.loader_len + 1;
        if self.layout == Layout::Separate && stream == Stream::Retain {
            done += index;
        }
        proximal_rank(self.ratio, self.total_steps, done, self.n_params)
    }
}

impl StepHook for ProximalHook {
    fn start_epoch(&mut self, _ctx: &UnlearnContext, _epoch: usize) -> anyhow::Result<()> {
        self.theta0 = self.params.iter().map(|p| p.detach().copy()).collect();
        Ok(())
    }

    fn after_step(
        &mut self,
        _ctx: &UnlearnContext,
        _opt: &mut Sgd,
        step: &StepInfo,
    ) -> anyhow::Result<()> {
        self.last_rho = self.rho(step.epoch, step.stream, step.index);
        soft_threshold(&self.params, &self.theta0, self.last_rho);
        Ok(())
    }
}
