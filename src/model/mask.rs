//! Pruning masks over conv weights (SPEC §3): global magnitude pruning, enforcement on
//! weights and gradients, sparsity reports, and safetensors persistence.
//!
//! Only conv weights are ever masked (shortcut convs included; never BN or the Linear layer).
//! Enforcement during training: call [`Mask::apply_to_grads`] after `backward` and before the
//! optimiser step (so weight decay and momentum see zero gradients there), then
//! [`Mask::apply_to_weights`] after the step (so a momentum buffer filled before pruning
//! cannot revive a pruned weight).

use super::Classifier;
use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use tch::{nn, Device, Kind, Tensor};

/// Conv-weight masks: 1 keeps a weight, 0 prunes it.
#[derive(Debug)]
pub struct Mask {
    /// Conv weight name → 0/1 f32 tensor of the weight's shape, on the weight's device.
    pub masks: BTreeMap<String, Tensor>,
}

/// Percentage of conv weights that are pruned (zero in the mask).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Sparsity {
    /// (conv weight name, % pruned) in name order.
    pub per_layer: Vec<(String, f64)>,
    /// % pruned over all conv weights together.
    pub overall: f64,
}

fn conv_weights(model: &Classifier) -> Vec<(String, Tensor)> {
    let mut vars = model.vs.variables();
    model
        .conv_weight_names()
        .into_iter()
        .map(|n| {
            let t = vars
                .remove(&n)
                .expect("conv weight registered in the var store");
            (n, t)
        })
        .collect()
}

impl Clone for Mask {
    fn clone(&self) -> Mask {
        Mask {
            masks: self
                .masks
                .iter()
                .map(|(k, v)| (k.clone(), v.copy()))
                .collect(),
        }
    }
}

impl Mask {
    /// All-ones mask (nothing pruned) for every conv weight of `model`.
    pub fn dense(model: &Classifier) -> Mask {
        let masks = conv_weights(model)
            .into_iter()
            .map(|(n, w)| (n, w.ones_like().detach()))
            .collect();
        Mask { masks }
    }

    /// Mask with 1 where the current conv weight is nonzero (recovers a mask from pruned weights).
    pub fn from_zeros(model: &Classifier) -> Mask {
        let masks = conv_weights(model)
            .into_iter()
            .map(|(n, w)| (n, w.detach().ne(0.0).to_kind(Kind::Float)))
            .collect();
        Mask { masks }
    }

    /// Global magnitude pruning: prunes the `round(rate · N)` conv weights (N = all conv
    /// weights of the model, as `torch.nn.utils.prune` rounds) with the smallest |w|.
    ///
    /// Weights already pruned by `current` count as smaller than every live weight, so they are
    /// chosen first, and they stay pruned even if `rate` is below the current sparsity (masks
    /// only shrink). Ties in |w| are broken by position: definition order of the conv layers
    /// ([`Classifier::conv_weight_names`]), then row-major index inside the tensor — the earlier
    /// weight is pruned first. `rate` is clamped to [0, 1] (NaN counts as 0).
    ///
    /// Note: this is the fraction of *all* conv weights. PyTorch's pruning containers (used by
    /// the reference's IMP) prune a fraction of the *remaining* weights; for round r of IMP at
    /// rate p pass `1 − (1 − p)^r` here.
    pub fn global_magnitude(model: &Classifier, rate: f64, current: Option<&Mask>) -> Mask {
        let magnitudes: Vec<(String, Tensor)> = conv_weights(model)
            .into_iter()
            .map(|(name, w)| (name, w.detach().abs()))
            .collect();
        Mask::global_from_scores(&magnitudes, rate, current)
    }

    /// Global pruning by arbitrary scores (one tensor per conv weight, in layer order): prunes
    /// the `round(rate · N)` weights (N = all of them) with the smallest score, as
    /// [`Mask::global_magnitude`] does with |w|: weights pruned in `current` first and kept
    /// pruned, ties by position (layer order of `scores`, then row-major, the earlier pruned
    /// first). Scores must be ≥ 0; NaN counts as +∞ (never pruned before a number). Scores are
    /// compared in f64, so f32 magnitudes and SynFlow's large products both order exactly.
    pub fn global_from_scores(
        scores: &[(String, Tensor)],
        rate: f64,
        current: Option<&Mask>,
    ) -> Mask {
        let rate = if rate.is_nan() {
            0.0
        } else {
            rate.clamp(0.0, 1.0)
        };
        let mut flat: Vec<f64> = Vec::new();
        for (name, s) in scores {
            let mut s = s.detach().to_kind(Kind::Double).to_device(Device::Cpu);
            if let Some(m) = current.and_then(|c| c.masks.get(name)) {
                let m = m.to_kind(Kind::Double).to_device(Device::Cpu);
                // Pruned entries get −1, below any score ≥ 0.
                s = &s * &m + (&m - 1.0);
            }
            let v = Vec::<f64>::try_from(s.flatten(0, -1)).expect("f64 CPU tensor to Vec");
            flat.extend(
                v.into_iter()
                    .map(|x| if x.is_nan() { f64::INFINITY } else { x }),
            );
        }
        let n = flat.len();
        let k = ((rate * n as f64).round() as usize).min(n);
        let mut pruned = vec![false; n];
        if k > 0 {
            // An O(N) selection of the k smallest (score, position) pairs keeps ResNet-18's
            // 11 M weights fast.
            let mut order: Vec<u32> = (0..n as u32).collect();
            order.select_nth_unstable_by(k - 1, |&a, &b| {
                flat[a as usize]
                    .total_cmp(&flat[b as usize])
                    .then(a.cmp(&b))
            });
            for &i in &order[..k] {
                pruned[i as usize] = true;
            }
        }
        let mut masks = BTreeMap::new();
        let mut off = 0;
        for (name, s) in scores {
            let len = s.numel();
            let keep: Vec<f32> = pruned[off..off + len]
                .iter()
                .map(|&p| if p { 0.0 } else { 1.0 })
                .collect();
            off += len;
            let mut m = Tensor::from_slice(&keep)
                .view(s.size().as_slice())
                .to_device(s.device());
            if let Some(c) = current.and_then(|c| c.masks.get(name)) {
                // Masks only shrink, even when `rate` is below the current sparsity.
                m *= c.to_device(s.device());
            }
            masks.insert(name.clone(), m);
        }
        Mask { masks }
    }

    /// Zeroes the pruned weights in place (`w *= mask`, outside autograd). Panics if `vs` lacks
    /// a masked name (masks are built from, or checked against, the model they apply to).
    pub fn apply_to_weights(&self, vs: &nn::VarStore) {
        let vars = vs.variables();
        tch::no_grad(|| {
            for (name, m) in &self.masks {
                let mut w = vars
                    .get(name)
                    .unwrap_or_else(|| panic!("mask names unknown variable {name}"))
                    .shallow_clone();
                let _ = w.g_mul_(&m.to_device(w.device()));
            }
        });
    }

    /// Zeroes the gradients of pruned weights (`grad *= mask`), so that momentum and weight
    /// decay cannot move them; weights without a gradient are left alone.
    pub fn apply_to_grads(&self, vs: &nn::VarStore) {
        let vars = vs.variables();
        tch::no_grad(|| {
            for (name, m) in &self.masks {
                let w = vars
                    .get(name)
                    .unwrap_or_else(|| panic!("mask names unknown variable {name}"));
                let mut g = w.grad();
                if g.defined() {
                    let _ = g.g_mul_(&m.to_device(g.device()));
                }
            }
        });
    }

    /// Per-layer and overall percentage of pruned conv weights.
    pub fn sparsity(&self) -> Sparsity {
        let mut zeros = 0i64;
        let mut total = 0i64;
        let per_layer = self
            .masks
            .iter()
            .map(|(n, m)| {
                let z = m.eq(0.0).sum(Kind::Int64).int64_value(&[]);
                let t = m.numel() as i64;
                zeros += z;
                total += t;
                (n.clone(), 100.0 * z as f64 / t.max(1) as f64)
            })
            .collect();
        Sparsity {
            per_layer,
            overall: 100.0 * zeros as f64 / total.max(1) as f64,
        }
    }

    /// Writes the masks to a safetensors file (one tensor per conv weight name).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let named: Vec<(&str, Tensor)> = self
            .masks
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_device(tch::Device::Cpu)))
            .collect();
        Tensor::write_safetensors(&named, path)
            .with_context(|| format!("writing mask {}", path.display()))
    }

    /// Reads a mask written by [`Mask::save`] for `model`, checking that it names exactly the
    /// model's conv weights with their shapes and holds only 0/1 values.
    pub fn load(path: impl AsRef<Path>, model: &Classifier) -> Result<Mask> {
        let path = path.as_ref();
        let mut file: HashMap<String, Tensor> = crate::checkpoint::read_safetensors(path)
            .with_context(|| format!("reading mask {}", path.display()))?;
        let mut masks = BTreeMap::new();
        for (name, w) in conv_weights(model) {
            let Some(m) = file.remove(&name) else {
                bail!(
                    "mask {}: no tensor for conv weight `{name}`",
                    path.display()
                );
            };
            if m.size() != w.size() {
                bail!(
                    "mask {}: `{name}` has shape {:?}, the model's weight {:?}",
                    path.display(),
                    m.size(),
                    w.size()
                );
            }
            let m = m.to_kind(Kind::Float);
            let bad = m.ne(0.0).logical_and(&m.ne(1.0)).any().int64_value(&[]) != 0;
            if bad {
                bail!(
                    "mask {}: `{name}` holds values other than 0 and 1",
                    path.display()
                );
            }
            masks.insert(name, m.to_device(w.device()));
        }
        if let Some(extra) = file.keys().next() {
            bail!(
                "mask {}: tensor `{extra}` is not a conv weight of this model",
                path.display()
            );
        }
        Ok(Mask { masks })
    }
}
