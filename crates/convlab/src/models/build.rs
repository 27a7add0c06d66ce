//! The one place a model's layers are made: with zero weights (to load), with
//! PyTorch's default initialisation (to train), or folded for inference from
//! a loaded model's state dict (each BatchNorm that directly follows a
//! convolution merged into that convolution's weight and bias).

use crate::autograd::Var;
use crate::error::{Dims, Error, Result};
use crate::nn::{
    BatchNorm, BatchNorm2d, BatchNormConfig, Conv2d, Conv2dConfig, Linear, Sequential,
};
use crate::tensor::{seeded_rng, Rng64, Tensor};
use std::cell::RefCell;
use std::collections::HashMap;

/// Where a model builder takes its weights from.
pub(crate) enum Source {
    /// Zeros (weights to be loaded).
    Zeros,
    /// PyTorch's default initialisation from one generator, layer by layer.
    Random(Box<RefCell<Rng64>>),
    /// A loaded model's state dict; convolution + BatchNorm pairs folded.
    /// Each tensor is moved out when its layer is made, so the weights are
    /// held once, not twice.
    Folded(RefCell<HashMap<String, Tensor>>),
}

/// Makes the layers of one model; every path is the layer's full
/// `state_dict` prefix (`layer1.0.conv1`).
pub(crate) struct Builder {
    source: Source,
}

const OP: &str = "models";

impl Builder {
    pub(crate) fn zeros() -> Builder {
        Builder {
            source: Source::Zeros,
        }
    }

    pub(crate) fn random(seed: u64) -> Builder {
        Builder {
            source: Source::Random(Box::new(RefCell::new(seeded_rng(seed)))),
        }
    }

    pub(crate) fn folded(state: Vec<(String, Tensor)>) -> Builder {
        Builder {
            source: Source::Folded(RefCell::new(state.into_iter().collect())),
        }
    }

    /// Builds with `make` from the folded state dict, then refuses the
    /// entries no layer took (BatchNorm's `num_batches_tracked` aside).
    pub(crate) fn fold_all<T>(self, make: impl FnOnce(&Builder) -> Result<T>) -> Result<T> {
        let made = make(&self)?;
        if let Source::Folded(map) = &self.source {
            let mut left: Vec<String> = map
                .borrow()
                .keys()
                .filter(|k| !k.ends_with(".num_batches_tracked"))
                .cloned()
                .collect();
            if !left.is_empty() {
                left.sort();
                let more = left.len().saturating_sub(5);
                left.truncate(5);
                let tail = if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                };
                return Err(Error::param(
                    OP,
                    "state",
                    format!(
                        "unexpected keys in the state dict: {}{tail}",
                        left.join(", ")
                    ),
                ));
            }
        }
        Ok(made)
    }

    /// The tensor `name` of the state dict being folded, checked against
    /// the shape the layer expects.
    fn take(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let Source::Folded(map) = &self.source else {
            return Err(Error::param(OP, "state", "no state dict to fold from"));
        };
        let t = map
            .borrow_mut()
            .remove(name)
            .ok_or_else(|| Error::param(OP, "state", format!("the state dict has no '{name}'")))?;
        if t.shape() != shape {
            return Err(Error::shape(
                OP,
                format!(
                    "'{name}' has shape {} but the layer needs {}",
                    Dims(t.shape()),
                    Dims(shape)
                ),
            ));
        }
        Ok(t)
    }

    /// A convolution named `path` (without a BatchNorm after it).
    pub(crate) fn conv(&self, path: &str, config: Conv2dConfig) -> Result<Conv2d> {
        match &self.source {
            Source::Zeros => Conv2d::zeroed(config),
            Source::Random(rng) => Conv2d::new(config, &mut *rng.borrow_mut()),
            Source::Folded(_) => {
                let mut conv = Conv2d::zeroed(config)?;
                conv.weight =
                    Var::param(self.take(&format!("{path}.weight"), &conv.weight.shape())?);
                if let Some(b) = &conv.bias {
                    conv.bias = Some(Var::param(self.take(&format!("{path}.bias"), &b.shape())?));
                }
                Ok(conv)
            }
        }
    }

    /// A fully connected layer named `path`.
    pub(crate) fn linear(
        &self,
        path: &str,
        in_features: usize,
        out_features: usize,
    ) -> Result<Linear> {
        match &self.source {
            Source::Zeros => Linear::zeroed(in_features, out_features, true),
            Source::Random(rng) => Linear::new(in_features, out_features, &mut *rng.borrow_mut()),
            Source::Folded(_) => Ok(Linear {
                weight: Var::param(
                    self.take(&format!("{path}.weight"), &[out_features, in_features])?,
                ),
                bias: Some(Var::param(
                    self.take(&format!("{path}.bias"), &[out_features])?,
                )),
            }),
        }
    }

    /// A BatchNorm2d named `path` that stays a layer of its own (one that
    /// follows a ReLU or starts a pre-activation block).
    pub(crate) fn batch_norm(&self, path: &str, channels: usize, eps: f64) -> Result<BatchNorm> {
        let bn = BatchNorm2d::with(BatchNormConfig::new(channels).eps(eps))?;
        if let Source::Folded(_) = &self.source {
            let c = [channels];
            for (name, var) in [("weight", &bn.weight), ("bias", &bn.bias)] {
                if let Some(var) = var {
                    var.set_value(self.take(&format!("{path}.{name}"), &c)?)?;
                }
            }
            for (name, buf) in [
                ("running_mean", &bn.running_mean),
                ("running_var", &bn.running_var),
            ] {
                if let Some(buf) = buf {
                    buf.set(&self.take(&format!("{path}.{name}"), &c)?)?;
                }
            }
        }
        Ok(bn)
    }

    /// `seq` with a convolution named `conv` and the BatchNorm named `bn`
    /// after it (both under `prefix`), or, when folding, the one convolution
    /// (named `conv`) computing both: `w * g / sqrt(v + eps)` and
    /// `beta + (b - mean) * g / sqrt(v + eps)`.
    pub(crate) fn conv_bn(
        &self,
        seq: Sequential,
        prefix: &str,
        (conv, bn): (&str, &str),
        config: Conv2dConfig,
        eps: f64,
    ) -> Result<Sequential> {
        let path = |local: &str| {
            if prefix.is_empty() {
                local.to_string()
            } else {
                format!("{prefix}.{local}")
            }
        };
        let channels = config.out_channels;
        if !matches!(self.source, Source::Folded(_)) {
            let layer = self.conv(&path(conv), config)?;
            return seq
                .push_named(conv, layer)?
                .push_named(bn, self.batch_norm(&path(bn), channels, eps)?);
        }
        let has_bias = config.bias;
        let mut layer = Conv2d::zeroed(config.bias(true))?;
        let w = self.take(&format!("{}.weight", path(conv)), &layer.weight.shape())?;
        let b = if has_bias {
            Some(self.take(&format!("{}.bias", path(conv)), &[channels])?)
        } else {
            None
        };
        let c = [channels];
        let gamma = self.take(&format!("{}.weight", path(bn)), &c)?;
        let beta = self.take(&format!("{}.bias", path(bn)), &c)?;
        let mean = self.take(&format!("{}.running_mean", path(bn)), &c)?;
        let var = self.take(&format!("{}.running_var", path(bn)), &c)?;
        let (weight, bias) = fold_conv_bn(&w, b.as_ref(), [&gamma, &beta, &mean, &var], eps)?;
        layer.weight = Var::param(weight);
        layer.bias = Some(Var::param(bias));
        seq.push_named(conv, layer)
    }
}

/// The weight and bias of one convolution equal to `conv` followed by an
/// eval-mode BatchNorm with `[gamma, beta, running_mean, running_var]`,
/// computed in f64 and rounded once.
///
/// # Errors
/// [`Error::Shape`] when the BatchNorm's vectors do not have one value per
/// output channel.
pub fn fold_conv_bn(
    weight: &Tensor,
    bias: Option<&Tensor>,
    [gamma, beta, mean, var]: [&Tensor; 4],
    eps: f64,
) -> Result<(Tensor, Tensor)> {
    let out = weight.shape().first().copied().unwrap_or(0);
    for (name, t) in [
        ("weight", gamma),
        ("bias", beta),
        ("running_mean", mean),
        ("running_var", var),
    ] {
        if t.shape() != [out] {
            return Err(Error::shape(
                "fold_conv_bn",
                format!(
                    "BatchNorm {name} has shape {} but the convolution has {out} output channels",
                    Dims(t.shape())
                ),
            ));
        }
    }
    if let Some(b) = bias {
        if b.shape() != [out] {
            return Err(Error::shape(
                "fold_conv_bn",
                format!(
                    "bias has shape {} but the convolution has {out} output channels",
                    Dims(b.shape())
                ),
            ));
        }
    }
    let per = weight.numel().checked_div(out).unwrap_or(0);
    let mut w = weight.data().to_vec();
    let mut b = vec![0f32; out];
    for o in 0..out {
        let scale = gamma.data()[o] as f64 / (var.data()[o] as f64 + eps).sqrt();
        for v in &mut w[o * per..(o + 1) * per] {
            *v = (*v as f64 * scale) as f32;
        }
        let b0 = bias.map_or(0.0, |b| b.data()[o] as f64);
        b[o] = (beta.data()[o] as f64 + (b0 - mean.data()[o] as f64) * scale) as f32;
    }
    Ok((
        Tensor::from_vec(w, weight.shape())?,
        Tensor::from_vec(b, &[out])?,
    ))
}
