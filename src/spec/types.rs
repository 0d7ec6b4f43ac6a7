//! The experiment file's types. Every section has defaults, so `{"name": "x"}` is a
//! complete experiment; unknown keys are rejected everywhere.

use crate::calibration::Calibrator;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

/// An experiment file as written by the user (after defaults are filled in).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// Names the results directory `results/<name>/`.
    pub name: String,
    #[serde(default)]
    pub dataset: DatasetSpec,
    #[serde(default)]
    pub model: ModelSpec,
    #[serde(default)]
    pub loss: LossSpec,
    #[serde(default)]
    pub optimizer: OptimizerSpec,
    #[serde(default)]
    pub schedule: ScheduleSpec,
    #[serde(default)]
    pub training: TrainingSpec,
    #[serde(default)]
    pub evaluation: EvaluationSpec,
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub device: DeviceSpec,
    /// Also write each run's final weights to `model.safetensors`. Not part of the run's
    /// config (it changes no number), so turning it on keeps run ids.
    #[serde(default)]
    pub save_model: bool,
    /// Dotted path → list of values; the plan is the cartesian product, in file order.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub sweep: Map<String, Value>,
}

/// Everything that determines one run's numbers. Its canonical JSON is hashed into the run id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    pub dataset: DatasetSpec,
    pub model: ModelSpec,
    pub loss: LossSpec,
    pub optimizer: OptimizerSpec,
    pub schedule: ScheduleSpec,
    pub training: TrainingSpec,
    pub evaluation: EvaluationSpec,
    pub seed: u64,
}

impl Experiment {
    pub fn run_config(&self) -> RunConfig {
        RunConfig {
            dataset: self.dataset.clone(),
            model: self.model.clone(),
            loss: self.loss.clone(),
            optimizer: self.optimizer.clone(),
            schedule: self.schedule.clone(),
            training: self.training.clone(),
            evaluation: self.evaluation.clone(),
            seed: self.seed,
        }
    }
}

// ---------------------------------------------------------------- dataset

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "kebab-case")]
pub enum DatasetSpec {
    Synthetic(SyntheticSpec),
    Mnist(MnistSpec),
    FashionMnist(MnistSpec),
    Cifar10(CifarSpec),
    Cifar100(Cifar100Spec),
}

impl Default for DatasetSpec {
    fn default() -> Self {
        Self::Synthetic(SyntheticSpec::default())
    }
}

impl DatasetSpec {
    /// Share of the training set held out (with the run's seed) for validation and
    /// temperature scaling.
    pub fn val_fraction(&self) -> f64 {
        match self {
            Self::Synthetic(s) => s.val_fraction,
            _ => self.files().expect("an image data set").val_fraction,
        }
    }

    /// Where an image data set's files are and how much of them to use; `None` for
    /// generated data.
    pub fn files(&self) -> Option<FileSet> {
        let (dir, val_fraction, train_subset, test_subset) = match self {
            Self::Synthetic(_) => return None,
            Self::Mnist(s) | Self::FashionMnist(s) => {
                (&s.dir, s.val_fraction, s.train_subset, s.test_subset)
            }
            Self::Cifar10(s) => (&s.dir, s.val_fraction, s.train_subset, s.test_subset),
            Self::Cifar100(s) => (&s.dir, s.val_fraction, s.train_subset, s.test_subset),
        };
        Some(FileSet {
            dir: dir
                .clone()
                .unwrap_or_else(|| Path::new("data").join(self.name())),
            val_fraction,
            train_subset,
            test_subset,
        })
    }

    /// Forgets where the files are: the run id does not depend on it.
    pub fn without_dir(&self) -> Self {
        let mut spec = self.clone();
        match &mut spec {
            Self::Synthetic(_) => {}
            Self::Mnist(s) | Self::FashionMnist(s) => s.dir = None,
            Self::Cifar10(s) => s.dir = None,
            Self::Cifar100(s) => s.dir = None,
        }
        spec
    }

    /// The name written in the experiment file (`mnist`, `cifar10`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Synthetic(_) => "synthetic",
            Self::Mnist(_) => "mnist",
            Self::FashionMnist(_) => "fashion-mnist",
            Self::Cifar10(_) => "cifar10",
            Self::Cifar100(_) => "cifar100",
        }
    }

    /// The data set as figures and reports name it: `Fashion-MNIST`, `CIFAR-10`, ….
    pub fn label(&self) -> String {
        match self {
            Self::Synthetic(s) => format!("synthetic ({} classes)", s.classes),
            Self::Mnist(_) => "MNIST".into(),
            Self::FashionMnist(_) => "Fashion-MNIST".into(),
            Self::Cifar10(_) => "CIFAR-10".into(),
            Self::Cifar100(_) => "CIFAR-100".into(),
        }
    }

    /// Whether training batches get CIFAR-style random crops and flips.
    pub fn augment(&self) -> bool {
        match self {
            Self::Cifar10(s) => s.augment,
            Self::Cifar100(s) => s.augment,
            _ => false,
        }
    }
}

/// The settings every data set read from files has, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct FileSet {
    pub dir: PathBuf,
    pub val_fraction: f64,
    pub train_subset: Option<usize>,
    pub test_subset: Option<usize>,
}

// The three image specs repeat their common fields because serde's `flatten` cannot be
// combined with `deny_unknown_fields`, and rejecting typos matters more.

/// MNIST or Fashion-MNIST: IDX files, gzipped or not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MnistSpec {
    /// Directory of the files; `data/<dataset name>` (relative to the working directory)
    /// when absent. Not part of the run id: moving the files changes no number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    pub val_fraction: f64,
    /// Use only the first N training samples (file order), before the validation split.
    pub train_subset: Option<usize>,
    /// Use only the first N test samples (file order).
    pub test_subset: Option<usize>,
}

impl Default for MnistSpec {
    fn default() -> Self {
        Self {
            dir: None,
            val_fraction: 0.1,
            train_subset: None,
            test_subset: None,
        }
    }
}

/// CIFAR-10 in the official binary format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CifarSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    pub val_fraction: f64,
    pub train_subset: Option<usize>,
    pub test_subset: Option<usize>,
    /// Random 32×32 crops of the image padded by 4 black pixels, and horizontal flips.
    pub augment: bool,
}

impl Default for CifarSpec {
    fn default() -> Self {
        let m = MnistSpec::default();
        Self {
            dir: m.dir,
            val_fraction: m.val_fraction,
            train_subset: m.train_subset,
            test_subset: m.test_subset,
            augment: true,
        }
    }
}

/// CIFAR-100 in the official binary format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cifar100Spec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    pub val_fraction: f64,
    pub train_subset: Option<usize>,
    pub test_subset: Option<usize>,
    pub augment: bool,
    /// The 100 fine classes or the 20 coarse superclasses.
    pub labels: Cifar100LabelsSpec,
}

impl Default for Cifar100Spec {
    fn default() -> Self {
        let c = CifarSpec::default();
        Self {
            dir: c.dir,
            val_fraction: c.val_fraction,
            train_subset: c.train_subset,
            test_subset: c.test_subset,
            augment: c.augment,
            labels: Cifar100LabelsSpec::Fine,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cifar100LabelsSpec {
    #[default]
    Fine,
    Coarse,
}

/// A seeded Gaussian-mixture classification problem: each class is a mixture of
/// `clusters_per_class` isotropic unit-variance Gaussians whose centres are drawn from
/// N(0, class_sep² I); a share `label_noise` of labels is replaced by a uniformly drawn class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyntheticSpec {
    pub classes: usize,
    pub features: usize,
    /// The shape each sample's `features` values take, e.g. `[3, 32, 32]` for
    /// CIFAR-shaped images that LeNet-5 and the ResNets accept; its product must equal
    /// `features`. Absent: flat vectors (and run ids stay as they were).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shape: Option<Vec<usize>>,
    pub clusters_per_class: usize,
    pub train_size: usize,
    pub test_size: usize,
    pub class_sep: f64,
    pub label_noise: f64,
    /// Seeds the data itself, independently of the run's `seed`, so that a sweep over
    /// seeds varies initialisation and shuffling on one fixed data set.
    pub data_seed: u64,
    pub val_fraction: f64,
}

impl Default for SyntheticSpec {
    fn default() -> Self {
        Self {
            classes: 10,
            features: 32,
            shape: None,
            clusters_per_class: 2,
            train_size: 20_000,
            test_size: 10_000,
            class_sep: 0.6,
            label_noise: 0.0,
            data_seed: 0,
            val_fraction: 0.1,
        }
    }
}

// ---------------------------------------------------------------- model

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum ModelSpec {
    Mlp(MlpSpec),
    Lenet5(Lenet5Spec),
    Resnet(ResnetSpec),
}

impl Default for ModelSpec {
    fn default() -> Self {
        Self::Mlp(MlpSpec::default())
    }
}

impl ModelSpec {
    /// The model as figures and reports name it: `MLP 256-256`, `LeNet-5`, `ResNet-20`.
    pub fn label(&self) -> String {
        match self {
            Self::Mlp(m) if m.hidden.is_empty() => "linear".into(),
            Self::Mlp(m) => {
                let widths: Vec<String> = m.hidden.iter().map(usize::to_string).collect();
                format!("MLP {}", widths.join("-"))
            }
            Self::Lenet5(_) => "LeNet-5".into(),
            Self::Resnet(r) if r.width == ResnetSpec::default().width => {
                format!("ResNet-{}", r.depth)
            }
            Self::Resnet(r) => format!("ResNet-{} (width {})", r.depth, r.width),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MlpSpec {
    /// Widths of the hidden layers (ReLU after each).
    pub hidden: Vec<usize>,
    /// Dropout probability after each hidden activation.
    pub dropout: f64,
}

impl Default for MlpSpec {
    fn default() -> Self {
        Self {
            hidden: vec![256, 256],
            dropout: 0.0,
        }
    }
}

/// LeNet-5 (LeCun et al. 1998) with ReLU and max pooling: for 28×28 or 32×32 inputs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Lenet5Spec {
    /// Dropout probability on the inputs of the first two linear layers.
    pub dropout: f64,
}

/// The CIFAR ResNet of He et al. 2016 (section 4.2): depth 6n+2, three stages of n basic
/// blocks with `width`, 2·`width` and 4·`width` channels, BatchNorm, parameter-free
/// (zero-padded identity) shortcuts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResnetSpec {
    pub depth: usize,
    pub width: usize,
}

impl Default for ResnetSpec {
    fn default() -> Self {
        Self {
            depth: 20,
            width: 16,
        }
    }
}

// ---------------------------------------------------------------- loss

/// The training loss, averaged over the batch (Mukhoti et al.'s released code sums over
/// it instead, which scales the effective learning rate by the batch size).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum LossSpec {
    SmoothedCe(SmoothedCeSpec),
    Focal(FocalSpec),
    FocalAdaptive(FocalAdaptiveSpec),
    ConfidencePenalty(ConfidencePenaltySpec),
    Brier(BrierSpec),
    Mmce(MmceSpec),
    Mbls(MblsSpec),
}

impl Default for LossSpec {
    fn default() -> Self {
        Self::SmoothedCe(SmoothedCeSpec::default())
    }
}

impl LossSpec {
    /// A short name for run ids: `ce`, `ls0.05`, `focal-g3`, `flsd53`, `cp-b0.1`, `brier`,
    /// `mmce-l2`, `mbls-m10-a0.1`.
    pub fn slug(&self) -> String {
        match self {
            Self::SmoothedCe(s) if s.smoothing == 0.0 => "ce".into(),
            Self::SmoothedCe(s) => {
                let mut slug = format!("ls{}", s.smoothing);
                if s.convention == SmoothingConvention::Others {
                    slug.push_str("-others");
                }
                if s.prior == SmoothingPrior::ClassFrequency {
                    slug.push_str("-freq");
                }
                slug
            }
            Self::Focal(f) => format!("focal-g{}", f.gamma),
            Self::FocalAdaptive(f) if *f == FocalAdaptiveSpec::default() => "flsd53".into(),
            Self::FocalAdaptive(f) => {
                let steps: String = f
                    .schedule
                    .iter()
                    .map(|s| format!("g{}lt{}-", s.gamma, s.below))
                    .collect();
                format!("flsd-{steps}g{}", f.gamma)
            }
            Self::ConfidencePenalty(c) => format!("cp-b{}", c.beta),
            Self::Brier(_) => "brier".into(),
            Self::Mmce(m) => match m.estimator {
                MmceEstimator::Paper => format!("mmce-l{}", m.lambda),
                MmceEstimator::ReferenceCode => format!("mmce-l{}-code", m.lambda),
            },
            Self::Mbls(m) => format!("mbls-m{}-a{}", m.margin, m.alpha),
        }
    }

    /// A label for reports and figures: `CE`, `LS ε=0.05`, `focal γ=3`, `FLSD-53`, ….
    pub fn label(&self) -> String {
        match self {
            Self::SmoothedCe(s) if s.smoothing == 0.0 => "CE".into(),
            Self::SmoothedCe(s) => {
                let mut label = format!("LS ε={}", s.smoothing);
                if s.convention == SmoothingConvention::Others {
                    label.push_str(" (others)");
                }
                if s.prior == SmoothingPrior::ClassFrequency {
                    label.push_str(" (class frequency)");
                }
                label
            }
            Self::Focal(f) => format!("focal γ={}", f.gamma),
            Self::FocalAdaptive(f) if *f == FocalAdaptiveSpec::default() => "FLSD-53".into(),
            Self::FocalAdaptive(f) => {
                let steps: Vec<String> = f
                    .schedule
                    .iter()
                    .map(|s| format!("γ={} below {}", s.gamma, s.below))
                    .chain([format!("γ={}", f.gamma)])
                    .collect();
                format!("FLSD ({})", steps.join(", "))
            }
            Self::ConfidencePenalty(c) => format!("CP β={}", c.beta),
            Self::Brier(_) => "Brier".into(),
            Self::Mmce(m) => match m.estimator {
                MmceEstimator::Paper => format!("MMCE λ={}", m.lambda),
                MmceEstimator::ReferenceCode => format!("MMCE λ={} (reference code)", m.lambda),
            },
            Self::Mbls(m) => format!("MbLS m={} α={}", m.margin, m.alpha),
        }
    }
}

/// Label smoothing. The two fields added after the first release are left out of the
/// canonical JSON at their defaults, so that the run ids of existing experiments stay.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmoothedCeSpec {
    /// ε, the probability mass moved off the true class; 0 is plain cross-entropy.
    pub smoothing: f64,
    #[serde(skip_serializing_if = "is_default")]
    pub convention: SmoothingConvention,
    #[serde(skip_serializing_if = "is_default")]
    pub prior: SmoothingPrior,
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// Where the smoothing mass ε goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmoothingConvention {
    /// `ε·π_k` to every class, the true one included (Szegedy et al. 2016, PyTorch,
    /// timm, Müller et al. 2019): target `(1−ε)·onehot(y) + ε·π`.
    #[default]
    Uniform,
    /// ε to the other classes only, in proportion to the prior (`ε/(K−1)` each for the
    /// uniform prior): the true class gets exactly `1−ε` (Mukhoti et al.'s code).
    Others,
}

/// The distribution π the smoothing mass follows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmoothingPrior {
    /// `1/K` per class.
    #[default]
    Uniform,
    /// The label frequencies of the run's training split (Pereyra et al.'s unigram
    /// smoothing).
    ClassFrequency,
}

/// Focal loss `−(1−p_y)^γ·log p_y` (Lin et al. 2017); γ = 0 is cross-entropy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FocalSpec {
    pub gamma: f64,
}

impl Default for FocalSpec {
    fn default() -> Self {
        Self { gamma: 3.0 }
    }
}

/// Focal loss with a sample-dependent γ chosen from the detached `p_y` (Mukhoti et al.
/// 2020): the first step whose `below` exceeds `p_y` gives γ, else `gamma`. The default
/// is FLSD-53: γ = 5 for `p_y < 0.2`, 3 otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FocalAdaptiveSpec {
    pub schedule: Vec<GammaStep>,
    pub gamma: f64,
}

impl Default for FocalAdaptiveSpec {
    fn default() -> Self {
        Self {
            schedule: vec![GammaStep {
                below: 0.2,
                gamma: 5.0,
            }],
            gamma: 3.0,
        }
    }
}

/// γ for the samples whose `p_y` is below `below` (and not below an earlier step's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GammaStep {
    pub below: f64,
    pub gamma: f64,
}

/// Confidence penalty (Pereyra et al. 2017) as the paper writes it: `CE − β·H(p)`.
/// torch-uncertainty adds `β·(log K − H(p))` instead: the same gradient, a loss higher
/// by `β·log K`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConfidencePenaltySpec {
    pub beta: f64,
}

impl Default for ConfidencePenaltySpec {
    fn default() -> Self {
        Self { beta: 0.1 }
    }
}

/// The Brier score `Σ_k (p_k − onehot(y)_k)²` as the loss.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrierSpec {}

/// `CE + λ·MMCE_w` (Kumar et al. 2018, weighted, as Mukhoti et al. 2020 use it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MmceSpec {
    pub lambda: f64,
    #[serde(skip_serializing_if = "is_default")]
    pub estimator: MmceEstimator,
}

impl Default for MmceSpec {
    fn default() -> Self {
        Self {
            lambda: 2.0,
            estimator: MmceEstimator::default(),
        }
    }
}

/// How the three kernel sums of MMCE²_w are normalised.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MmceEstimator {
    /// Kumar et al.'s estimator: the sums over correct×correct, wrong×wrong and
    /// correct×wrong pairs divided by m², n² and mn.
    #[default]
    Paper,
    /// Mukhoti et al.'s released code: the mean of each pair matrix, divided again by
    /// m², n² and mn (so by m⁴, n⁴ and m²n²): a term smaller by about the batch size
    /// squared, which is what their MMCE numbers were trained with.
    ReferenceCode,
}

/// Margin-based label smoothing (Liu et al. 2022):
/// `CE + α·mean_k ReLU(max_j z_j − z_k − margin)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MblsSpec {
    pub margin: f64,
    pub alpha: f64,
}

impl Default for MblsSpec {
    fn default() -> Self {
        Self {
            margin: 10.0,
            alpha: 0.1,
        }
    }
}

// ---------------------------------------------------------------- optimiser

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum OptimizerSpec {
    Sgd(SgdSpec),
    Adamw(AdamwSpec),
}

impl Default for OptimizerSpec {
    fn default() -> Self {
        Self::Sgd(SgdSpec::default())
    }
}

impl OptimizerSpec {
    pub fn lr(&self) -> f64 {
        match self {
            Self::Sgd(s) => s.lr,
            Self::Adamw(s) => s.lr,
        }
    }
}

/// SGD as in PyTorch: `buf = momentum·buf + g` (buf = g on the first step), Nesterov
/// uses `g + momentum·buf`. Weight decay is L2 (`g += wd·w`) unless
/// `decoupled_weight_decay`, which shrinks the weights directly (`w -= lr·wd·w`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SgdSpec {
    pub lr: f64,
    pub momentum: f64,
    pub nesterov: bool,
    pub weight_decay: f64,
    pub decoupled_weight_decay: bool,
}

impl Default for SgdSpec {
    fn default() -> Self {
        Self {
            lr: 0.1,
            momentum: 0.9,
            nesterov: false,
            weight_decay: 5e-4,
            decoupled_weight_decay: false,
        }
    }
}

/// AdamW (Loshchilov & Hutter) with bias correction and decoupled weight decay, as in
/// PyTorch's `torch.optim.AdamW` (whose default `weight_decay` is also 0.01).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdamwSpec {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamwSpec {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
}

// ---------------------------------------------------------------- schedule

/// Learning-rate schedule over (fractional) epochs, with an optional linear warm-up
/// from 0 to the optimiser's `lr` over the first `warmup_epochs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum ScheduleSpec {
    Constant(ConstantSchedule),
    Multistep(MultistepSchedule),
    Cosine(CosineSchedule),
}

impl Default for ScheduleSpec {
    fn default() -> Self {
        Self::Cosine(CosineSchedule::default())
    }
}

impl ScheduleSpec {
    pub fn warmup_epochs(&self) -> f64 {
        match self {
            Self::Constant(s) => s.warmup_epochs,
            Self::Multistep(s) => s.warmup_epochs,
            Self::Cosine(s) => s.warmup_epochs,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConstantSchedule {
    pub warmup_epochs: f64,
}

/// Multiply the rate by `gamma` at each milestone epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MultistepSchedule {
    pub milestones: Vec<usize>,
    pub gamma: f64,
    pub warmup_epochs: f64,
}

impl Default for MultistepSchedule {
    fn default() -> Self {
        Self {
            milestones: Vec::new(),
            gamma: 0.1,
            warmup_epochs: 0.0,
        }
    }
}

/// Cosine decay from `lr` (after warm-up) to `min_lr` at the end of training.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CosineSchedule {
    pub warmup_epochs: f64,
    pub min_lr: f64,
}

// ---------------------------------------------------------------- training / evaluation

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainingSpec {
    pub epochs: usize,
    pub batch_size: usize,
    /// Batch size for evaluation passes (no gradients, so it can be large).
    pub eval_batch_size: usize,
    /// Mixup on every training batch; absent (and left out of the canonical JSON) without.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mixup: Option<MixupSpec>,
}

/// Mixup (Zhang et al. 2018): each batch is mixed with a permutation of itself,
/// `x̃ = λ·x + (1−λ)·x[perm]`, with `λ ~ Beta(α, α)` drawn per batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MixupSpec {
    pub alpha: f64,
}

impl Default for MixupSpec {
    fn default() -> Self {
        Self { alpha: 0.2 }
    }
}

impl Default for TrainingSpec {
    fn default() -> Self {
        Self {
            epochs: 10,
            batch_size: 128,
            eval_batch_size: 2048,
            mixup: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvaluationSpec {
    /// Number of equal-width confidence bins for ECE and reliability diagrams.
    pub bins: NonZeroUsize,
    /// Fit a temperature on the validation split and report test metrics after scaling.
    pub temperature_scaling: bool,
    /// The post-hoc calibrators fitted on the validation split and applied to the test
    /// predictions. Temperature scaling's results stay where they always were
    /// (`metrics.temperature`, `metrics.test_scaled`), every other method's go under
    /// `metrics.calibrators.<name>`. Left out of the canonical config at its default,
    /// so that run ids from before it existed are unchanged.
    #[serde(skip_serializing_if = "is_default_calibrators")]
    pub calibrators: Vec<Calibrator>,
    /// Bootstrap intervals on the test metrics (before and after each calibrator),
    /// drawn from the run's seed. Left out of the canonical config at its default.
    #[serde(skip_serializing_if = "BootstrapSpec::is_default")]
    pub bootstrap: BootstrapSpec,
}

/// `B` resamples (0: no intervals) and the level of the percentile intervals.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BootstrapSpec {
    pub resamples: usize,
    pub level: f64,
}

impl Default for BootstrapSpec {
    fn default() -> Self {
        Self {
            resamples: 200,
            level: 0.95,
        }
    }
}

impl BootstrapSpec {
    /// The most resamples accepted: each costs a pass over the test set per metric set.
    pub const MAX_RESAMPLES: usize = 100_000;

    fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// The bootstrap of a run with `seed`; `None` when switched off.
    pub fn with_seed(&self, seed: u64) -> Option<crate::calibration::Bootstrap> {
        (self.resamples > 0).then_some(crate::calibration::Bootstrap {
            resamples: self.resamples,
            level: self.level,
            seed,
        })
    }
}

impl EvaluationSpec {
    /// Whether temperature scaling runs: listed, and not switched off.
    pub fn fits_temperature(&self) -> bool {
        self.temperature_scaling && self.calibrators.contains(&Calibrator::Temperature)
    }

    /// The listed calibrators other than temperature scaling, in the order given.
    pub fn other_calibrators(&self) -> impl Iterator<Item = Calibrator> + '_ {
        self.calibrators
            .iter()
            .copied()
            .filter(|&c| c != Calibrator::Temperature)
    }
}

fn default_calibrators() -> Vec<Calibrator> {
    vec![Calibrator::Temperature]
}

fn is_default_calibrators(calibrators: &[Calibrator]) -> bool {
    calibrators == default_calibrators()
}

impl Default for EvaluationSpec {
    fn default() -> Self {
        Self {
            bins: NonZeroUsize::new(15).expect("15 > 0"),
            temperature_scaling: true,
            calibrators: default_calibrators(),
            bootstrap: BootstrapSpec::default(),
        }
    }
}

// ---------------------------------------------------------------- device

/// Where to train: `"auto"` (CUDA when compiled in and present, else CPU), `"cpu"`,
/// `"cuda"` (device 0) or `"cuda:N"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DeviceSpec {
    #[default]
    Auto,
    Cpu,
    Cuda(usize),
}

impl std::str::FromStr for DeviceSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("expected \"auto\", \"cpu\", \"cuda\" or \"cuda:N\", got {s:?}");
        match s {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Self::Cuda)
                .ok_or_else(bad),
        }
    }
}

impl TryFrom<String> for DeviceSpec {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<DeviceSpec> for String {
    fn from(d: DeviceSpec) -> String {
        d.to_string()
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}
