//! The full evaluation of SPEC §6 and its `eval_result.json`: accuracies on every split, the
//! SVC membership-inference attack under both protocols, UA/RA/TA/MIA-efficacy, configuration
//! and timings.

use crate::data::splits::{ForgetRequest, Splits};
use crate::data::{DataSet, DatasetName};
use crate::eval::mia::{forget_efficacy, training_privacy, MiaScores, Outputs};
use crate::eval::outputs::{predict, top1_accuracy};
use crate::model::{Arch, Classifier};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Instant;
use tch::Device;

/// Samples of the confidence feature kept in the result for histograms (each of forget, test).
pub const KEPT_CONFIDENCES: usize = 2000;

/// Which samples were forgotten, as recorded in `eval_result.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForgetRecord {
    /// `class`, `random` or `none`.
    pub kind: String,
    /// The forgotten class (class-wise).
    pub class: Option<usize>,
    /// Number of forgotten samples.
    pub count: usize,
    /// Forgotten fraction of the train split (random).
    pub fraction: Option<f64>,
    /// Whether the class was also removed from the test set.
    #[serde(default)]
    pub class_removed_from_test: bool,
}

impl ForgetRecord {
    /// Describes `request` as realised in `splits`.
    pub fn new(request: &ForgetRequest, splits: &Splits) -> ForgetRecord {
        let (kind, class, fraction) = match request {
            ForgetRequest::None => ("none", None, None),
            ForgetRequest::Random { fraction } => ("random", None, Some(*fraction)),
            ForgetRequest::Class { class, .. } => ("class", Some(*class), None),
        };
        ForgetRecord {
            kind: kind.into(),
            class,
            count: splits.forget.len(),
            fraction,
            class_removed_from_test: splits.removed_class.is_some(),
        }
    }
}

/// Top-1 accuracies (%) per split; `forget` is `None` when nothing was forgotten.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Accuracies {
    /// Full train split.
    pub train: f64,
    /// Retain set.
    pub retain: f64,
    /// Forget set.
    pub forget: Option<f64>,
    /// Validation split.
    pub val: f64,
    /// Selection split (held out from every method), `None` when the run has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<f64>,
    /// Test set (without the removed class, if any).
    pub test: f64,
}

/// Confidence feature values for the forget-vs-test histogram.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ConfidenceSample {
    /// p_y of (up to [`KEPT_CONFIDENCES`]) forget samples.
    pub forget: Vec<f64>,
    /// p_y of (up to [`KEPT_CONFIDENCES`]) test samples.
    pub test: Vec<f64>,
}

/// Everything in `eval_result.json`; `gunlearn report` reads it back (the descriptive fields
/// a hand-written or trimmed file may lack default to empty).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalResult {
    /// Unlearning method (`raw` for an evaluated model, `retrain`, `Gan`, ...).
    pub method: String,
    /// Data set.
    pub dataset: DatasetName,
    /// Architecture.
    pub arch: Arch,
    /// Run seed (the forget set is drawn with RandomState(seed − 1)).
    pub seed: u64,
    /// Percentage of the model's conv weights that are pruned (0: dense).
    #[serde(default)]
    pub sparsity: f64,
    /// Forget set.
    pub forget: ForgetRecord,
    /// Split sizes.
    #[serde(default)]
    pub sizes: BTreeMap<String, usize>,
    /// Accuracies (%).
    pub accuracy: Accuracies,
    /// Forget-efficacy MIA scores (fractions), `None` without a forget set.
    #[serde(rename = "SVC_MIA_forget_efficacy")]
    pub forget_efficacy: Option<MiaScores>,
    /// Training-privacy MIA scores (fractions).
    #[serde(rename = "SVC_MIA_training_privacy")]
    pub training_privacy: MiaScores,
    /// Unlearning accuracy = 100 − forget accuracy.
    #[serde(rename = "UA")]
    pub ua: Option<f64>,
    /// Retain accuracy.
    #[serde(rename = "RA")]
    pub ra: f64,
    /// Test accuracy.
    #[serde(rename = "TA")]
    pub ta: f64,
    /// Forget-efficacy confidence score × 100.
    #[serde(rename = "MIA_efficacy")]
    pub mia_efficacy: Option<f64>,
    /// Wall-clock of the unlearning step alone (s); 0 for `raw`.
    #[serde(rename = "RTE_seconds")]
    pub rte_seconds: f64,
    /// Other timings (s): unlearning, prediction, attack.
    #[serde(default)]
    pub timings: BTreeMap<String, f64>,
    /// Device used.
    #[serde(default)]
    pub device: String,
    /// The command's configuration (method hyper-parameters, paths, seeds).
    #[serde(default)]
    pub config: serde_json::Value,
    /// Confidence samples for the report's histogram.
    #[serde(default)]
    pub mia_confidence_features: ConfidenceSample,
}

/// What to evaluate and how to describe it.
pub struct EvalRequest<'a> {
    /// The model (eval mode is used; no augmentation).
    pub model: &'a Classifier,
    /// The data.
    pub data: &'a DataSet,
    /// Its splits.
    pub splits: &'a Splits,
    /// The forget request the splits came from.
    pub forget: &'a ForgetRequest,
    /// Method name for the result.
    pub method: String,
    /// Run seed.
    pub seed: u64,
    /// Percentage of the model's conv weights that are pruned (0: dense).
    pub sparsity: f64,
    /// Unlearning wall time (s).
    pub rte_seconds: f64,
    /// Batch size of the prediction passes.
    pub batch_size: usize,
    /// Device.
    pub device: Device,
    /// Configuration to record.
    pub config: serde_json::Value,
}

fn confidences(outputs: &Outputs) -> Vec<f64> {
    let c = outputs.num_classes;
    let step = outputs.len().div_ceil(KEPT_CONFIDENCES).max(1);
    (0..outputs.len())
        .step_by(step)
        .map(|i| outputs.probs[i * c + outputs.labels[i] as usize] as f64)
        .collect()
}

fn subset(outputs: &Outputs, rows: &[usize]) -> Outputs {
    let c = outputs.num_classes;
    Outputs {
        probs: rows
            .iter()
            .flat_map(|&i| outputs.probs[i * c..(i + 1) * c].iter().copied())
            .collect(),
        labels: rows.iter().map(|&i| outputs.labels[i]).collect(),
        num_classes: c,
    }
}

/// Runs the whole evaluation of SPEC §6.
pub fn evaluate(req: &EvalRequest) -> anyhow::Result<EvalResult> {
    let start = Instant::now();
    let (model, ds, splits) = (req.model, req.data, req.splits);
    let run = |set, idx: &[usize]| predict(model, set, idx, req.batch_size, req.device);
    // One pass over train covers retain, forget and train (they are subsets of it).
    let train_out = run(&ds.train, &splits.train);
    let position: std::collections::HashMap<usize, usize> = splits
        .train
        .iter()
        .enumerate()
        .map(|(pos, &i)| (i, pos))
        .collect();
    let rows = |idx: &[usize]| idx.iter().map(|i| position[i]).collect::<Vec<_>>();
    let retain_out = subset(&train_out, &rows(&splits.retain));
    let forget_out = subset(&train_out, &rows(&splits.forget));
    let val_out = run(&ds.train, &splits.val);
    let selection_out = run(&ds.train, &splits.selection);
    let test_out = run(&ds.test, &splits.test);
    let predict_seconds = start.elapsed().as_secs_f64();

    let mia_start = Instant::now();
    let forget_efficacy = if forget_out.is_empty() {
        None
    } else {
        Some(forget_efficacy(&retain_out, &test_out, &forget_out)?)
    };
    let training_privacy = training_privacy(&retain_out, &test_out)?;
    let mia_seconds = mia_start.elapsed().as_secs_f64();

    let forget_acc = (!forget_out.is_empty()).then(|| top1_accuracy(&forget_out));
    let accuracy = Accuracies {
        train: top1_accuracy(&train_out),
        retain: top1_accuracy(&retain_out),
        forget: forget_acc,
        val: top1_accuracy(&val_out),
        selection: (!selection_out.is_empty()).then(|| top1_accuracy(&selection_out)),
        test: top1_accuracy(&test_out),
    };
    let sizes = BTreeMap::from([
        ("train".to_string(), splits.train.len()),
        ("val".to_string(), splits.val.len()),
        ("selection".to_string(), splits.selection.len()),
        ("forget".to_string(), splits.forget.len()),
        ("retain".to_string(), splits.retain.len()),
        ("test".to_string(), splits.test.len()),
    ]);
    let timings = BTreeMap::from([
        ("unlearn".to_string(), req.rte_seconds),
        ("predict".to_string(), predict_seconds),
        ("mia".to_string(), mia_seconds),
    ]);
    Ok(EvalResult {
        method: req.method.clone(),
        dataset: ds.name,
        arch: model.spec.arch,
        seed: req.seed,
        sparsity: req.sparsity,
        forget: ForgetRecord::new(req.forget, splits),
        sizes,
        ua: forget_acc.map(|a| 100.0 - a),
        ra: accuracy.retain,
        ta: accuracy.test,
        mia_efficacy: forget_efficacy.map(|s| s.confidence * 100.0),
        accuracy,
        forget_efficacy,
        training_privacy,
        rte_seconds: req.rte_seconds,
        timings,
        device: crate::device::device_name(req.device),
        config: req.config.clone(),
        mia_confidence_features: ConfidenceSample {
            forget: confidences(&forget_out),
            test: confidences(&test_out),
        },
    })
}

impl EvalResult {
    /// UA, MIA-efficacy, RA and TA (%), the four metrics of SPEC §6's Avg. gap.
    pub fn metrics(&self) -> [Option<f64>; 4] {
        [self.ua, self.mia_efficacy, Some(self.ra), Some(self.ta)]
    }
}

/// SPEC §6's Avg. gap: the mean of |x − Retrain's x| over UA, MIA-efficacy, RA and TA
/// (percentage points); `None` when a metric is missing from either side.
pub fn avg_gap(x: &[Option<f64>; 4], retrain: &[Option<f64>; 4]) -> Option<f64> {
    let mut sum = 0.0;
    for (a, b) in x.iter().zip(retrain) {
        sum += (a.as_ref()? - b.as_ref()?).abs();
    }
    Some(sum / x.len() as f64)
}
