//! SGD and Adam with PyTorch's exact update rules, written out so that their state can be
//! checkpointed (for `--resume`) and so that pruning masks can be enforced on the gradients
//! before the update (momentum and weight decay then never revive a pruned weight).

use tch::{no_grad, Tensor};

/// SGD with momentum and L2 weight decay, as `torch.optim.SGD` (dampening 0, no Nesterov).
pub struct Sgd {
    params: Vec<Tensor>,
    momentum_buffers: Vec<Option<Tensor>>,
    /// Learning rate used by the next step.
    pub lr: f64,
    /// Momentum factor.
    pub momentum: f64,
    /// L2 penalty added to the gradient.
    pub weight_decay: f64,
}

impl Sgd {
    /// An optimizer over `params` (typically `vs.trainable_variables()`).
    pub fn new(params: Vec<Tensor>, lr: f64, momentum: f64, weight_decay: f64) -> Sgd {
        let momentum_buffers = params.iter().map(|_| None).collect();
        Sgd {
            params,
            momentum_buffers,
            lr,
            momentum,
            weight_decay,
        }
    }

    /// Clears every parameter's gradient.
    pub fn zero_grad(&mut self) {
        for p in &mut self.params {
            p.zero_grad();
        }
    }

    /// One update: `d = g + wd·p; buf = m·buf + d (buf = d at first); p -= lr·buf`.
    pub fn step(&mut self) {
        no_grad(|| {
            for (p, buf) in self.params.iter_mut().zip(self.momentum_buffers.iter_mut()) {
                let grad = p.grad();
                if !grad.defined() {
                    continue;
                }
                let mut d = if self.weight_decay != 0.0 {
                    grad.g_add(&(&*p * self.weight_decay))
                } else {
                    grad.shallow_clone()
                };
                if self.momentum != 0.0 {
                    match buf {
                        Some(b) => {
                            let _ = b.g_mul_scalar_(self.momentum).g_add_(&d);
                        }
                        None => *buf = Some(d.detach().copy()),
                    }
                    d = buf
                        .as_ref()
                        .expect("momentum buffer set above")
                        .shallow_clone();
                }
                let _ = p.g_sub_(&(d * self.lr));
            }
        });
    }

    /// The momentum buffers in parameter order (undefined-zero for parameters not yet stepped).
    pub fn state(&self) -> Vec<Tensor> {
        self.momentum_buffers
            .iter()
            .zip(&self.params)
            .map(|(b, p)| match b {
                Some(b) => b.shallow_clone(),
                None => p.zeros_like(),
            })
            .collect()
    }

    /// Restores momentum buffers saved by [`Sgd::state`].
    pub fn load_state(&mut self, buffers: Vec<Tensor>) -> anyhow::Result<()> {
        anyhow::ensure!(
            buffers.len() == self.params.len(),
            "optimizer state has {} buffers, the model has {} parameters",
            buffers.len(),
            self.params.len()
        );
        for (i, (b, p)) in buffers.into_iter().zip(&self.params).enumerate() {
            anyhow::ensure!(
                b.size() == p.size(),
                "optimizer buffer {i} has shape {:?}, parameter has {:?}",
                b.size(),
                p.size()
            );
            self.momentum_buffers[i] = Some(b.to_device(p.device()));
        }
        Ok(())
    }
}

/// Adam as `torch.optim.Adam` (betas 0.9/0.999, eps 1e-8, no weight decay, no amsgrad).
pub struct Adam {
    params: Vec<Tensor>,
    exp_avg: Vec<Tensor>,
    exp_avg_sq: Vec<Tensor>,
    steps: i32,
    /// Learning rate.
    pub lr: f64,
}

impl Adam {
    /// An optimizer over `params`.
    pub fn new(params: Vec<Tensor>, lr: f64) -> Adam {
        let exp_avg = params.iter().map(|p| p.zeros_like()).collect();
        let exp_avg_sq = params.iter().map(|p| p.zeros_like()).collect();
        Adam {
            params,
            exp_avg,
            exp_avg_sq,
            steps: 0,
            lr,
        }
    }

    /// Clears every parameter's gradient.
    pub fn zero_grad(&mut self) {
        for p in &mut self.params {
            p.zero_grad();
        }
    }

    /// One Adam update with bias correction, in PyTorch's order of operations.
    pub fn step(&mut self) {
        const BETA1: f64 = 0.9;
        const BETA2: f64 = 0.999;
        const EPS: f64 = 1e-8;
        self.steps += 1;
        let bias_correction1 = 1.0 - BETA1.powi(self.steps);
        let bias_correction2 = 1.0 - BETA2.powi(self.steps);
        no_grad(|| {
            for ((p, m), v) in self
                .params
                .iter_mut()
                .zip(&mut self.exp_avg)
                .zip(&mut self.exp_avg_sq)
            {
                let grad = p.grad();
                if !grad.defined() {
                    continue;
                }
                let _ = m.lerp_(&grad, 1.0 - BETA1);
                let _ = v
                    .g_mul_scalar_(BETA2)
                    .g_add_(&(&grad * &grad * (1.0 - BETA2)));
                let denom = v.sqrt() / bias_correction2.sqrt() + EPS;
                let _ = p.g_sub_(&(&*m / denom * (self.lr / bias_correction1)));
            }
        });
    }
}
