//! Whole networks: the book's LeNet (6.6) and NiN (7.3), and torchvision's
//! AlexNet, VGG-11, GoogLeNet, ResNet-18/50 and DenseNet-121, each with
//! exactly torchvision's `state_dict` names, so a converted torchvision
//! checkpoint loads strictly.
//!
//! A model is a [`Sequential`] of named layers: train it, save it, load it
//! like any module. For inference, [`ModelConfig::fold`] builds a second,
//! eval-only copy from a loaded model in which every BatchNorm that directly
//! follows a convolution is folded into that convolution (the model itself
//! keeps its separate layers, for training and for its state dict).
//!
//! ```
//! use convlab::{models::{Arch, Init, ModelConfig}, autograd::{no_grad, Var}, nn::Module, Tensor};
//! let config = ModelConfig::new(Arch::LeNet);
//! let mut net = config.build(Init::Seed(0))?;
//! net.eval();
//! let x = Var::new(Tensor::zeros(&[1, 1, 28, 28])?);
//! let y = no_grad(|| net.forward(&x))?;
//! assert_eq!(y.shape(), vec![1, 10]);
//! let fast = config.fold(&net)?;
//! let z = no_grad(|| fast.forward(&x))?;
//! assert!((y.tensor().data()[0] - z.tensor().data()[0]).abs() < 1e-5);
//! # Ok::<(), convlab::Error>(())
//! ```

mod alexnet;
mod build;
mod densenet;
mod googlenet;
mod lenet;
mod nin;
mod resnet;
mod transform;
mod vgg;

pub use build::fold_conv_bn;
pub use googlenet::TransformInput;
pub use resnet::{ResNetBlock, ResNetConfig};
pub use transform::{imagenet_eval_transform, IMAGENET_MEAN, IMAGENET_STD};

use crate::error::{Error, Result};
use crate::io::{self, LoadOptions};
use crate::nn::{Module, Sequential};
use crate::tensor::Tensor;
use build::Builder;
use std::fmt;
use std::str::FromStr;

/// A network family and depth.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Arch {
    /// The book's LeNet-5 (6.6): sigmoid, average pooling, 1x28x28 input.
    LeNet,
    /// The book's Network in Network (7.3), 1x224x224 input.
    NiN,
    /// `torchvision.models.alexnet`.
    AlexNet,
    /// `torchvision.models.vgg11` (no BatchNorm).
    Vgg11,
    /// `torchvision.models.googlenet` without auxiliary heads.
    GoogLeNet,
    /// `torchvision.models.resnet18`.
    ResNet18,
    /// `torchvision.models.resnet50`.
    ResNet50,
    /// `torchvision.models.densenet121`.
    DenseNet121,
}

impl Arch {
    /// Every architecture, smallest first.
    pub const ALL: [Arch; 8] = [
        Arch::LeNet,
        Arch::NiN,
        Arch::AlexNet,
        Arch::Vgg11,
        Arch::GoogLeNet,
        Arch::ResNet18,
        Arch::ResNet50,
        Arch::DenseNet121,
    ];

    /// The name torchvision (or the book) uses: `resnet18`, `lenet`.
    pub fn name(self) -> &'static str {
        match self {
            Arch::LeNet => "lenet",
            Arch::NiN => "nin",
            Arch::AlexNet => "alexnet",
            Arch::Vgg11 => "vgg11",
            Arch::GoogLeNet => "googlenet",
            Arch::ResNet18 => "resnet18",
            Arch::ResNet50 => "resnet50",
            Arch::DenseNet121 => "densenet121",
        }
    }

    /// The input `[C, H, W]` the network was designed for.
    pub fn input_shape(self) -> [usize; 3] {
        match self {
            Arch::LeNet => [1, 28, 28],
            Arch::NiN => [1, 224, 224],
            _ => [3, 224, 224],
        }
    }

    /// The default number of classes: 10 for the book's networks, 1000
    /// (ImageNet) for torchvision's.
    pub fn default_classes(self) -> usize {
        match self {
            Arch::LeNet | Arch::NiN => 10,
            _ => 1000,
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Arch {
    type Err = Error;
    fn from_str(s: &str) -> Result<Arch> {
        Arch::ALL
            .into_iter()
            .find(|a| a.name() == s.to_ascii_lowercase())
            .ok_or_else(|| {
                let names: Vec<&str> = Arch::ALL.iter().map(|a| a.name()).collect();
                Error::param(
                    "models",
                    "arch",
                    format!(
                        "unknown architecture '{s}'; expected one of {}",
                        names.join(", ")
                    ),
                )
            })
    }
}

/// How a new model's weights start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Init {
    /// Zeros, for weights that will be loaded.
    Zeros,
    /// PyTorch's default layer initialisation (`nn.Conv2d`, `nn.Linear`;
    /// BatchNorm at weight 1, bias 0), from one seeded generator.
    Seed(u64),
}

/// Which network to build, with torchvision's options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelConfig {
    /// The architecture.
    pub arch: Arch,
    /// Outputs of the last layer.
    pub num_classes: usize,
    /// GoogLeNet only: re-normalise an ImageNet-normalised input as the
    /// published weights expect (torchvision's `transform_input`; true for
    /// `GoogLeNet_Weights.IMAGENET1K_V1`, false by default).
    pub transform_input: bool,
}

impl ModelConfig {
    /// `arch` with its default number of classes and no input transform.
    pub fn new(arch: Arch) -> ModelConfig {
        ModelConfig {
            arch,
            num_classes: arch.default_classes(),
            transform_input: false,
        }
    }

    /// Set the number of classes.
    pub fn num_classes(mut self, k: usize) -> ModelConfig {
        self.num_classes = k;
        self
    }

    /// Set GoogLeNet's `transform_input` (ignored by other architectures).
    pub fn transform_input(mut self, on: bool) -> ModelConfig {
        self.transform_input = on;
        self
    }

    /// The network in training mode, weights as `init` says.
    ///
    /// # Errors
    /// [`Error::Param`] for zero classes; [`Error::TooLarge`] when the
    /// weights do not fit in memory.
    pub fn build(&self, init: Init) -> Result<Sequential> {
        let b = match init {
            Init::Zeros => Builder::zeros(),
            Init::Seed(seed) => Builder::random(seed),
        };
        self.build_with(&b)
    }

    /// An eval-mode copy of `model` (a network of this configuration) for
    /// inference: every BatchNorm that directly follows a convolution is
    /// folded into it. The copy shares nothing with `model`.
    ///
    /// # Errors
    /// [`Error::Param`] or [`Error::Shape`] when `model`'s state dict is not
    /// this configuration's.
    pub fn fold(&self, model: &dyn Module) -> Result<Sequential> {
        self.fold_state_dict(io::state_dict(model))
    }

    /// [`ModelConfig::fold`] straight from a torchvision-named state dict,
    /// checked as strictly as [`ModelConfig::load`] (every key used, none
    /// left over but `num_batches_tracked` and GoogLeNet's aux heads, shapes
    /// equal). The tensors move into the network: the weights are held once.
    ///
    /// # Errors
    /// [`Error::Param`] naming a missing or unexpected key, [`Error::Shape`]
    /// naming a tensor of the wrong shape.
    pub fn fold_state_dict(&self, mut state: Vec<(String, Tensor)>) -> Result<Sequential> {
        if self.arch == Arch::GoogLeNet {
            state.retain(|(n, _)| !is_aux(n));
        }
        let mut net = Builder::folded(state).fold_all(|b| self.build_with(b))?;
        net.eval();
        Ok(net)
    }

    fn build_with(&self, b: &Builder) -> Result<Sequential> {
        if self.num_classes == 0 {
            return Err(Error::param("models", "num_classes", "must be at least 1"));
        }
        let k = self.num_classes;
        match self.arch {
            Arch::LeNet => lenet::build(b, k),
            Arch::NiN => nin::build(b, k),
            Arch::AlexNet => alexnet::build(b, k),
            Arch::Vgg11 => vgg::build(b, &vgg::VGG11, k),
            Arch::GoogLeNet => googlenet::build(b, k, self.transform_input),
            Arch::ResNet18 => resnet::build(b, &ResNetConfig::resnet18(k)),
            Arch::ResNet50 => resnet::build(b, &ResNetConfig::resnet50(k)),
            Arch::DenseNet121 => densenet::build(b, k),
        }
    }

    /// Load a torchvision-named state dict into `model` strictly (every key
    /// present, none left over, shapes equal). GoogLeNet's auxiliary heads
    /// (`aux1.*`, `aux2.*`, in the published file) are accepted and ignored.
    ///
    /// # Errors
    /// [`Error::Param`] listing missing or unexpected keys, or
    /// [`Error::Shape`] naming a tensor of the wrong shape.
    pub fn load(&self, model: &dyn Module, tensors: &[(String, Tensor)]) -> Result<()> {
        let kept: Vec<(String, Tensor)>;
        let tensors = if self.arch == Arch::GoogLeNet {
            kept = tensors
                .iter()
                .filter(|(n, _)| !is_aux(n))
                .cloned()
                .collect();
            &kept[..]
        } else {
            tensors
        };
        io::load_state_dict_with(model, tensors, &LoadOptions::strict()).map(|_| ())
    }
}

/// GoogLeNet's auxiliary heads, in torchvision's published file only.
fn is_aux(name: &str) -> bool {
    name.starts_with("aux1.") || name.starts_with("aux2.")
}

/// `"{prefix}.{name}"`, or `name` at the top level.
pub(crate) fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}
