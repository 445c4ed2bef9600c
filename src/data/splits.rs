//! Train / validation / forget / retain / test splits, exactly as the reference draws them
//! with NumPy's legacy `RandomState` (SPEC §1).

use anyhow::{bail, Result};

use super::rng::RandomState;
use super::DataSet;

/// Which samples the user asks to forget.
#[derive(Debug, Clone, PartialEq)]
pub enum ForgetRequest {
    /// Forget nothing (plain training): forget is empty, retain = train.
    None,
    /// Forget ⌊fraction · |train|⌋ train samples drawn uniformly (`--indexes_to_replace`).
    Random {
        /// Fraction of the train split to forget, in (0, 1]; the reference uses 0.1.
        fraction: f64,
    },
    /// Forget `count` samples of class `class` (`--class_to_replace`,
    /// `--num_indexes_to_replace`); `None` = the whole class.
    Class {
        /// The class to forget.
        class: usize,
        /// How many of its train samples; `None` forgets all of them.
        count: Option<usize>,
    },
}

/// Seeds and forget request for [`make_splits`].
#[derive(Debug, Clone, PartialEq)]
pub struct SplitConfig {
    /// Seed of the validation split's `RandomState` (reference default 1).
    pub val_set_seed: u32,
    /// The run seed; the forget set is drawn with `RandomState(seed − 1)` (reference default 2).
    pub seed: u32,
    /// What to forget.
    pub forget: ForgetRequest,
    /// Fraction of each class's training images held out as the selection split (0: none, as
    /// the reference).
    pub selection_fraction: f64,
}

impl Default for SplitConfig {
    /// The reference defaults: `val_set_seed = 1`, `seed = 2`, nothing forgotten, no selection
    /// split.
    fn default() -> Self {
        SplitConfig {
            val_set_seed: 1,
            seed: 2,
            forget: ForgetRequest::None,
            selection_fraction: 0.0,
        }
    }
}

/// The index sets of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Splits {
    /// Train split: indices into `ds.train`, ascending.
    pub train: Vec<usize>,
    /// Validation split: indices into `ds.train`, class by class in the order drawn.
    pub val: Vec<usize>,
    /// Selection split: training images no method, Retrain or attacker ever reads, held out to
    /// choose hyper-parameters on (indices into `ds.train`, ascending; empty by default).
    pub selection: Vec<usize>,
    /// Forget set ⊂ train: indices into `ds.train`, ascending.
    pub forget: Vec<usize>,
    /// Retain set = train \ forget: indices into `ds.train`, ascending.
    pub retain: Vec<usize>,
    /// Test set: indices into `ds.test`, ascending (the removed class left out).
    pub test: Vec<usize>,
    /// The class removed from the test set by whole-class forgetting.
    pub removed_class: Option<usize>,
}

/// The validation/train split of labels `labels` (values in `0..num_classes`):
/// for each class in order, `choice(class_indices, ⌊0.1·n_c⌋, replace=False)` with one
/// shared `RandomState(val_set_seed)`. Returns `(train ascending, val as drawn)`.
pub fn val_split(
    labels: &[i64],
    num_classes: usize,
    val_set_seed: u32,
) -> Result<(Vec<usize>, Vec<usize>)> {
    let (train, val, _) = held_out_splits(labels, num_classes, val_set_seed, 0.0)?;
    Ok((train, val))
}

/// [`val_split`], then the selection split: for each class in order,
/// `choice(class members left after validation, ⌊fraction·n_c⌋, replace=False)` with the same
/// `RandomState`, continued (so the validation split is the reference's whatever the
/// fraction). Returns `(train ascending, val as drawn, selection ascending)`.
pub fn held_out_splits(
    labels: &[i64],
    num_classes: usize,
    val_set_seed: u32,
    selection_fraction: f64,
) -> Result<(Vec<usize>, Vec<usize>, Vec<usize>)> {
    if !(0.0..0.9).contains(&selection_fraction) {
        bail!("selection fraction {selection_fraction}: must be at least 0 and below 0.9");
    }
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); num_classes];
    for (i, &l) in labels.iter().enumerate() {
        if l < 0 || l as usize >= num_classes {
            bail!("training label {l} at index {i} is outside 0..{num_classes}");
        }
        by_class[l as usize].push(i);
    }
    let mut rs = RandomState::new(val_set_seed);
    let mut val = Vec::new();
    let mut held_out = vec![false; labels.len()];
    for members in &by_class {
        // The reference calls `choice` for every class, even when k = 0: NumPy's
        // `permutation` then still consumes draws (for ≥ 2 members), so the later classes
        // only match if we draw the same way. ⌊0.1·n⌋ in floating point equals n / 10.
        let k = members.len() / 10;
        for i in rs.choice_without_replacement(members, k) {
            held_out[i] = true;
            val.push(i);
        }
    }
    let mut selection = Vec::new();
    if selection_fraction > 0.0 {
        for members in &by_class {
            let k = (selection_fraction * members.len() as f64).floor() as usize;
            let left: Vec<usize> = members.iter().copied().filter(|&i| !held_out[i]).collect();
            selection.extend(rs.choice_without_replacement(&left, k));
        }
        for &i in &selection {
            held_out[i] = true;
        }
        selection.sort_unstable();
    }
    let train = (0..labels.len()).filter(|&i| !held_out[i]).collect();
    Ok((train, val, selection))
}

/// Builds the splits of SPEC §1 for `ds` and `cfg`.
pub fn make_splits(ds: &DataSet, cfg: &SplitConfig) -> Result<Splits> {
    let labels = &ds.train.labels;
    let (train, val, selection) = held_out_splits(
        labels,
        ds.num_classes,
        cfg.val_set_seed,
        cfg.selection_fraction,
    )?;
    let forget_rng = || -> Result<RandomState> {
        match cfg.seed.checked_sub(1) {
            Some(s) => Ok(RandomState::new(s)),
            None => bail!(
                "seed 0 is not allowed: the forget set is drawn with RandomState(seed - 1), \
                 as the reference does, so the seed must be at least 1"
            ),
        }
    };
    let mut removed_class = None;
    let mut forget: Vec<usize> = match &cfg.forget {
        ForgetRequest::None => Vec::new(),
        ForgetRequest::Random { fraction } => {
            if !(*fraction > 0.0 && *fraction <= 1.0) {
                bail!("forget fraction {fraction} must be in (0, 1]");
            }
            let k = (fraction * train.len() as f64).floor() as usize;
            if k == 0 {
                bail!(
                    "forget fraction {fraction} of {} train samples selects no sample",
                    train.len()
                );
            }
            let positions: Vec<usize> = (0..train.len()).collect();
            let picked = forget_rng()?.choice_without_replacement(&positions, k);
            picked.into_iter().map(|p| train[p]).collect()
        }
        ForgetRequest::Class { class, count } => {
            let class = *class;
            if class >= ds.num_classes {
                bail!(
                    "class {class} to forget does not exist: the data set has {} classes (0..{})",
                    ds.num_classes,
                    ds.num_classes - 1
                );
            }
            let members: Vec<usize> = train
                .iter()
                .copied()
                .filter(|&i| labels[i] as usize == class)
                .collect();
            let n = count.unwrap_or(members.len());
            if n == 0 {
                bail!("number of class-{class} samples to forget must be at least 1");
            }
            if n > members.len() {
                bail!(
                    "cannot forget {n} samples of class {class}: the train split has only {} of them",
                    members.len()
                );
            }
            if n == members.len() {
                removed_class = Some(class);
            }
            forget_rng()?.choice_without_replacement(&members, n)
        }
    };
    forget.sort_unstable();
    let mut is_forget = vec![false; labels.len()];
    for &i in &forget {
        is_forget[i] = true;
    }
    let retain = train.iter().copied().filter(|&i| !is_forget[i]).collect();
    let test = (0..ds.test.len())
        .filter(|&i| removed_class.is_none_or(|c| ds.test.labels[i] != c as i64))
        .collect();
    Ok(Splits {
        train,
        val,
        selection,
        forget,
        retain,
        test,
        removed_class,
    })
}
