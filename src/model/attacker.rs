//! The membership-inference attacker of SPEC §5: a small post-norm transformer over the C
//! classes, with the reference's PyTorch state-dict names.
//!
//! Layout (names as in the reference module):
//! `bn` BatchNorm1d(3C) → tokens t = `(x[t], x[C+t], x[2C+t])` → `fc1` Linear(3→64) → GELU →
//! `transformer_encoder.layers.{0,1,2}` (post-norm `nn.TransformerEncoderLayer`, d_model 64,
//! 4 heads, feed-forward 128, erf GELU, LayerNorm eps 1e-5, **batch_first**: attention runs
//! across the C class tokens of one sample — the parity file rules out sequence-first) →
//! flatten C·64 → `fc2` Linear(64C→64) → ReLU → `fc3` Linear(64→2).

use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::path::Path;
use tch::nn;
use tch::{Device, Kind, Tensor};

const D_MODEL: i64 = 64;
const N_HEADS: i64 = 4;
const D_FF: i64 = 128;
const LN_EPS: f64 = 1e-5;

/// PyTorch's Linear default init: kaiming-uniform with a = √5, i.e. U(±1/√fan_in), for the
/// weight and (from the same bound) the bias.
fn torch_linear(p: nn::Path, fan_in: i64, fan_out: i64) -> nn::Linear {
    let b = 1.0 / (fan_in as f64).sqrt();
    let u = nn::Init::Uniform { lo: -b, up: b };
    nn::linear(
        p,
        fan_in,
        fan_out,
        nn::LinearConfig {
            ws_init: u,
            bs_init: Some(u),
            bias: true,
        },
    )
}

fn layer_norm(p: nn::Path) -> nn::LayerNorm {
    let cfg = nn::LayerNormConfig {
        eps: LN_EPS,
        ws_init: nn::Init::Const(1.0),
        bs_init: nn::Init::Const(0.0),
        ..Default::default()
    };
    nn::layer_norm(p, vec![D_MODEL], cfg)
}

fn gelu(x: &Tensor) -> Tensor {
    x.gelu("none")
}

/// One `nn.TransformerEncoderLayer` (norm_first = False).
struct EncoderLayer {
    in_proj_weight: Tensor,
    in_proj_bias: Tensor,
    out_proj: nn::Linear,
    linear1: nn::Linear,
    linear2: nn::Linear,
    norm1: nn::LayerNorm,
    norm2: nn::LayerNorm,
}

impl EncoderLayer {
    fn new(p: nn::Path) -> EncoderLayer {
        let a = p.sub("self_attn");
        // nn.MultiheadAttention: xavier_uniform on the packed [3E, E] in_proj_weight, zero
        // in_proj_bias; out_proj weight keeps the Linear default, its bias is zeroed.
        let xb = (6.0 / (D_MODEL + 3 * D_MODEL) as f64).sqrt();
        let in_proj_weight = a.var(
            "in_proj_weight",
            &[3 * D_MODEL, D_MODEL],
            nn::Init::Uniform { lo: -xb, up: xb },
        );
        let in_proj_bias = a.var("in_proj_bias", &[3 * D_MODEL], nn::Init::Const(0.0));
        let ob = 1.0 / (D_MODEL as f64).sqrt();
        let out_proj = nn::linear(
            a.sub("out_proj"),
            D_MODEL,
            D_MODEL,
            nn::LinearConfig {
                ws_init: nn::Init::Uniform { lo: -ob, up: ob },
                bs_init: Some(nn::Init::Const(0.0)),
                bias: true,
            },
        );
        EncoderLayer {
            in_proj_weight,
            in_proj_bias,
            out_proj,
            linear1: torch_linear(p.sub("linear1"), D_MODEL, D_FF),
            linear2: torch_linear(p.sub("linear2"), D_FF, D_MODEL),
            norm1: layer_norm(p.sub("norm1")),
            norm2: layer_norm(p.sub("norm2")),
        }
    }

    /// `nn.MultiheadAttention` self-attention on x: [B, L, E] (batch first), as PyTorch
    /// computes it: packed q/k/v projection, q scaled by 1/√head_dim, softmax, dropout on the
    /// attention weights, weighted sum, out_proj.
    fn self_attention(&self, x: &Tensor, dropout: f64, train: bool) -> Tensor {
        let (b, l, e) = x.size3().expect("attention input is [B, L, E]");
        let hd = e / N_HEADS;
        let qkv = x.linear(&self.in_proj_weight, Some(&self.in_proj_bias));
        let heads = |t: &Tensor| t.view([b, l, N_HEADS, hd]).transpose(1, 2); // [B, H, L, hd]
        let chunks = qkv.chunk(3, -1);
        let q = heads(&chunks[0]) * (1.0 / (hd as f64).sqrt());
        let k = heads(&chunks[1]);
        let v = heads(&chunks[2]);
        let attn = q.matmul(&k.transpose(-2, -1)).softmax(-1, Kind::Float);
        let attn = attn.dropout(dropout, train);
        let out = attn.matmul(&v).transpose(1, 2).contiguous().view([b, l, e]);
        out.apply(&self.out_proj)
    }

    fn forward(&self, x: &Tensor, dropout: f64, train: bool) -> Tensor {
        let sa = self
            .self_attention(x, dropout, train)
            .dropout(dropout, train);
        let x = (x + sa).apply(&self.norm1);
        let ff = gelu(&x.apply(&self.linear1))
            .dropout(dropout, train)
            .apply(&self.linear2);
        let ff = ff.dropout(dropout, train);
        (x + ff).apply(&self.norm2)
    }
}

/// The membership-inference attacker A (SPEC §5): input rows `[z, onehot(y), s]` (B×3C),
/// output logits B×2 (class 1 = member / forget).
pub struct Attacker {
    /// The variables, named as the reference's state dict.
    pub vs: nn::VarStore,
    /// Number of classes C of the defender (the input has 3C columns).
    pub num_classes: usize,
    /// Dropout probability inside the transformer layers (reference: 0.2).
    pub dropout: f64,
    bn: nn::BatchNorm,
    fc1: nn::Linear,
    layers: Vec<EncoderLayer>,
    fc2: nn::Linear,
    fc3: nn::Linear,
}

impl Attacker {
    /// Builds a freshly initialised attacker for `num_classes` classes with PyTorch's default
    /// initialisation distributions (same distributions, not the same random draws), its three
    /// transformer layers identical as in the reference.
    pub fn new(num_classes: usize, dropout: f64, device: Device) -> Attacker {
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let c = num_classes as i64;
        let bn_cfg = nn::BatchNormConfig {
            eps: 1e-5,
            momentum: 0.1,
            ws_init: nn::Init::Const(1.0),
            bs_init: nn::Init::Const(0.0),
            ..Default::default()
        };
        let bn = nn::batch_norm1d(root.sub("bn"), 3 * c, bn_cfg);
        let fc1 = torch_linear(root.sub("fc1"), 3, D_MODEL);
        let enc = root.sub("transformer_encoder").sub("layers");
        let layers: Vec<EncoderLayer> = (0..3).map(|i| EncoderLayer::new(enc.sub(i))).collect();
        // `nn.TransformerEncoder` deep-copies one initialised layer, so the reference's three
        // layers start identical: copy layer 0's values into the others.
        tch::no_grad(|| {
            let vars = vs.variables();
            for (name, value) in &vars {
                if let Some(rest) = name.strip_prefix("transformer_encoder.layers.0.") {
                    for i in 1..3 {
                        let mut other =
                            vars[&format!("transformer_encoder.layers.{i}.{rest}")].shallow_clone();
                        other.copy_(value);
                    }
                }
            }
        });
        let fc2 = torch_linear(root.sub("fc2"), D_MODEL * c, D_MODEL);
        let fc3 = torch_linear(root.sub("fc3"), D_MODEL, 2);
        Attacker {
            vs,
            num_classes,
            dropout,
            bn,
            fc1,
            layers,
            fc2,
            fc3,
        }
    }

    /// Logits [B, 2] for attacker inputs x [B, 3C]; `train` selects BatchNorm batch statistics
    /// (and updates the running ones) and enables dropout.
    pub fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let c = self.num_classes as i64;
        let x = x.apply_t(&self.bn, train);
        // [B, 3C] → [B, 3, C] → [B, C, 3]: token t gathers (x[t], x[C+t], x[2C+t]).
        let tokens = x.view([-1, 3, c]).transpose(1, 2);
        let mut h = gelu(&tokens.apply(&self.fc1));
        for layer in &self.layers {
            h = layer.forward(&h, self.dropout, train);
        }
        h.flatten(1, -1).apply(&self.fc2).relu().apply(&self.fc3)
    }

    /// Loads every variable from the safetensors file at `path`, where variable `n` is stored
    /// as `prefix + n` (e.g. prefix `"weight."` for the shared parity file; `""` for a file
    /// written by `vs.save`). Extra tensors in the file are ignored.
    pub fn load_safetensors_prefixed(
        &mut self,
        path: impl AsRef<Path>,
        prefix: &str,
    ) -> Result<()> {
        let path = path.as_ref();
        let tensors: HashMap<String, Tensor> = crate::checkpoint::read_safetensors(path)
            .with_context(|| format!("reading attacker weights from {}", path.display()))?;
        let mut vars: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        // Check everything before copying anything, so a bad file leaves the model untouched.
        for (name, var) in &vars {
            let key = format!("{prefix}{name}");
            let Some(src) = tensors.get(&key) else {
                bail!(
                    "{}: tensor `{key}` missing (attacker for C = {})",
                    path.display(),
                    self.num_classes
                );
            };
            if src.size() != var.size() {
                bail!(
                    "{}: tensor `{key}` has shape {:?}, expected {:?} (attacker for C = {})",
                    path.display(),
                    src.size(),
                    var.size(),
                    self.num_classes
                );
            }
            if src.kind() != var.kind() {
                bail!(
                    "{}: tensor `{key}` is stored as {}, but the attacker's weights are {}: the \
                     file's header does not match its weights; write the attacker again",
                    path.display(),
                    crate::checkpoint::kind_name(src.kind()),
                    crate::checkpoint::kind_name(var.kind())
                );
            }
        }
        tch::no_grad(|| {
            for (name, var) in &mut vars {
                let src = &tensors[&format!("{prefix}{name}")];
                var.copy_(&src.to_kind(var.kind()).to_device(var.device()));
            }
        });
        Ok(())
    }
}
