//! A libsvm-style binary C-SVC with an RBF kernel, written for the SVC membership-inference
//! attack (SPEC §6).
//!
//! Why hand-written: measured against scikit-learn 1.9 `SVC(C=3, gamma='auto')` on 20 000
//! shadow points, no crate qualified — linfa-svm 0.8.1 agrees but is 4.4–24× slower and builds
//! the full n×n kernel in f64 (3 GB at 20k; its shrinking mode panics or gives wrong models),
//! smartcore 0.7 is > 280× slower and fails on 0/1 ties, rustyml 0.17 drifts (97.6 %
//! agreement) and the `libsvm` 0.4 wrapper predicts garbage (use-after-free).
//!
//! The solver follows the SMO algorithm of libsvm as published (Fan, Chen & Lin 2005; Chang &
//! Lin, "LIBSVM: a library for support vector machines"): second-order working-set selection
//! (WSS3, τ = 1e-12 for non-positive curvature, which the many identical rows of the 0/1
//! correctness feature produce), shrinking every min(n, 1000) iterations with un-shrinking and
//! gradient reconstruction once the gap falls below 10·eps, an LRU cache of f32 kernel columns
//! under a byte budget, and ρ as the mean of y·G over free support vectors. Samples are grouped
//! by class (non-members first) as libsvm does so that tie-breaking matches scikit-learn.

use anyhow::{bail, ensure, Result};
use rayon::prelude::*;

/// Curvature used when the working-set pair has a ≤ 0 (WSS3).
const TAU: f64 = 1e-12;
/// Kernel columns at least this long are computed with rayon; shorter ones are not worth it.
const PAR_MIN_LEN: usize = 4096;

/// Hyper-parameters of the C-SVC.
#[derive(Debug, Clone, PartialEq)]
pub struct SvcConfig {
    /// Box constraint C.
    pub c: f64,
    /// RBF width γ; `None` means 1 / number of features (scikit-learn's `gamma='auto'`).
    pub gamma: Option<f64>,
    /// Stopping tolerance on the maximal violating pair gap.
    pub eps: f64,
    /// Byte budget of the kernel column cache.
    pub cache_bytes: usize,
    /// Whether to shrink the active set.
    pub shrinking: bool,
}

impl Default for SvcConfig {
    fn default() -> Self {
        Self {
            c: 3.0,
            gamma: None,
            eps: 1e-3,
            cache_bytes: 200 << 20,
            shrinking: true,
        }
    }
}

/// A trained binary RBF SVC; positive decision values mean "member" (label `true`).
#[derive(Debug, Clone)]
pub struct SvcModel {
    d: usize,
    gamma: f64,
    /// Support vectors, row-major, in f64 as the kernel is evaluated in f64.
    sv: Vec<f64>,
    /// αᵢ·sᵢ with sᵢ = +1 for members, −1 for non-members.
    coef: Vec<f64>,
    /// Added to the kernel sum (it is libsvm's ρ since libsvm's positive class is `false`).
    intercept: f64,
    /// SMO iterations the solver needed.
    pub iterations: usize,
}

/// Fits a C-SVC with the default configuration (C = 3, γ = 1/d).
pub fn fit(x: &[f32], d: usize, y: &[bool]) -> Result<SvcModel> {
    fit_with(x, d, y, &SvcConfig::default())
}

/// Fits a C-SVC on `x` (row-major n×d) with labels `y` (`true` = member).
pub fn fit_with(x: &[f32], d: usize, y: &[bool], cfg: &SvcConfig) -> Result<SvcModel> {
    let n = y.len();
    ensure!(n > 0, "SVC fit: no training samples");
    ensure!(d > 0, "SVC fit: feature dimension is 0");
    ensure!(
        x.len() == n * d,
        "SVC fit: feature buffer has {} values, expected n×d = {}×{}",
        x.len(),
        n,
        d
    );
    if let Some(pos) = x.iter().position(|v| !v.is_finite()) {
        bail!(
            "SVC fit: non-finite feature {} at sample {}, feature {}",
            x[pos],
            pos / d,
            pos % d
        );
    }
    let members = y.iter().filter(|&&b| b).count();
    ensure!(
        members > 0 && members < n,
        "SVC fit: labels contain only one class ({} members, {} non-members)",
        members,
        n - members
    );
    ensure!(
        cfg.c > 0.0 && cfg.c.is_finite(),
        "SVC fit: C must be positive, got {}",
        cfg.c
    );
    ensure!(
        cfg.eps > 0.0,
        "SVC fit: eps must be positive, got {}",
        cfg.eps
    );
    let gamma = cfg.gamma.unwrap_or(1.0 / d as f64);
    ensure!(
        gamma > 0.0 && gamma.is_finite(),
        "SVC fit: gamma must be positive, got {gamma}"
    );

    // libsvm groups samples by class in sorted label order: non-members (libsvm's +1) first.
    let order: Vec<usize> = (0..n)
        .filter(|&i| !y[i])
        .chain((0..n).filter(|&i| y[i]))
        .collect();
    let mut xs = Vec::with_capacity(n * d);
    for &i in &order {
        xs.extend(x[i * d..(i + 1) * d].iter().map(|&v| v as f64));
    }
    let ys: Vec<f64> = order
        .iter()
        .map(|&i| if y[i] { -1.0 } else { 1.0 })
        .collect();

    let mut solver = Solver::new(xs, d, ys, gamma, cfg);
    solver.solve();
    let rho = solver.rho();

    let mut sv = Vec::new();
    let mut coef = Vec::new();
    for pos in 0..n {
        let a = solver.alpha[pos];
        if a > 0.0 {
            sv.extend_from_slice(&solver.x[pos * d..(pos + 1) * d]);
            // libsvm's y is +1 for non-members; we report member-positive decisions.
            coef.push(-solver.y[pos] * a);
        }
    }
    Ok(SvcModel {
        d,
        gamma,
        sv,
        coef,
        intercept: rho,
        iterations: solver.iterations,
    })
}

impl SvcModel {
    /// Feature dimension the model was trained on.
    pub fn dim(&self) -> usize {
        self.d
    }

    /// Number of support vectors.
    pub fn n_support(&self) -> usize {
        self.coef.len()
    }

    /// Decision values for row-major samples `x` (n×d); > 0 means member.
    ///
    /// Panics if `x.len()` is not a multiple of the model dimension; use
    /// [`SvcModel::try_decision`] for unchecked input.
    pub fn decision(&self, x: &[f32]) -> Vec<f64> {
        self.try_decision(x)
            .expect("SvcModel::decision: bad input shape")
    }

    /// Decision values with a shape/NaN check instead of a panic.
    pub fn try_decision(&self, x: &[f32]) -> Result<Vec<f64>> {
        let d = self.d;
        ensure!(
            x.len().is_multiple_of(d),
            "SVC predict: feature buffer of {} values is not a multiple of d = {}",
            x.len(),
            d
        );
        if let Some(pos) = x.iter().position(|v| !v.is_finite()) {
            bail!("SVC predict: non-finite feature at sample {}", pos / d);
        }
        Ok(x.par_chunks(d)
            .with_min_len(64)
            .map(|row| {
                let mut s = self.intercept;
                for (k, &c) in self.coef.iter().enumerate() {
                    let v = &self.sv[k * d..(k + 1) * d];
                    let mut dist = 0.0;
                    for (a, &b) in v.iter().zip(row) {
                        let t = a - b as f64;
                        dist += t * t;
                    }
                    s += c * (-self.gamma * dist).exp();
                }
                s
            })
            .collect())
    }

    /// Member (`true`) / non-member predictions for row-major samples `x`.
    pub fn predict(&self, x: &[f32]) -> Vec<bool> {
        // libsvm predicts its +1 class (non-member) only for a strictly positive value.
        self.decision(x).into_iter().map(|v| v >= 0.0).collect()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Bound {
    Lower,
    Upper,
    Free,
}

/// Kernel data in the solver's current (permuted) order.
struct Kernel {
    x: Vec<f64>,
    xsq: Vec<f64>,
    d: usize,
    gamma: f64,
}

impl Kernel {
    /// Fills `out[k] = y_i y_(start+k) K(i, start+k)`.
    fn fill(&self, i: usize, y: &[f64], start: usize, out: &mut [f32]) {
        let d = self.d;
        let xi = &self.x[i * d..(i + 1) * d];
        let (xsq_i, yi, g) = (self.xsq[i], y[i], self.gamma);
        let eval = |k: usize, o: &mut f32| {
            let j = start + k;
            let xj = &self.x[j * d..(j + 1) * d];
            let dot: f64 = xi.iter().zip(xj).map(|(a, b)| a * b).sum();
            let kv = (-g * (xsq_i + self.xsq[j] - 2.0 * dot)).exp();
            *o = (yi * y[j] * kv) as f32;
        };
        if out.len() >= PAR_MIN_LEN {
            out.par_iter_mut()
                .enumerate()
                .with_min_len(1024)
                .for_each(|(k, o)| eval(k, o));
        } else {
            out.iter_mut().enumerate().for_each(|(k, o)| eval(k, o));
        }
    }

    fn swap(&mut self, i: usize, j: usize) {
        let d = self.d;
        for k in 0..d {
            self.x.swap(i * d + k, j * d + k);
        }
        self.xsq.swap(i, j);
    }
}

/// LRU cache of (partial) kernel columns; column `i` holds entries for positions `0..len`.
struct Cache {
    cols: Vec<Vec<f32>>,
    /// Doubly linked LRU list; index `n` is the sentinel, `next[n]` the least recently used.
    prev: Vec<usize>,
    next: Vec<usize>,
    /// Free budget in f32 entries.
    avail: usize,
}

impl Cache {
    fn new(n: usize, bytes: usize) -> Self {
        // Two full columns must fit: the update step holds columns i and j at once.
        let avail = (bytes / 4).max(2 * n);
        Self {
            cols: vec![Vec::new(); n],
            prev: vec![n; n + 1],
            next: vec![n; n + 1],
            avail,
        }
    }

    fn sentinel(&self) -> usize {
        self.cols.len()
    }

    fn unlink(&mut self, h: usize) {
        let (p, nx) = (self.prev[h], self.next[h]);
        self.next[p] = nx;
        self.prev[nx] = p;
    }

    fn push_back(&mut self, h: usize) {
        let s = self.sentinel();
        let last = self.prev[s];
        self.next[last] = h;
        self.prev[h] = last;
        self.next[h] = s;
        self.prev[s] = h;
    }

    fn drop_col(&mut self, h: usize) {
        self.unlink(h);
        self.avail += self.cols[h].len();
        self.cols[h] = Vec::new();
    }

    /// Makes column `i` at least `len` long and most recently used.
    fn ensure(&mut self, i: usize, len: usize, kernel: &Kernel, y: &[f64]) {
        let have = self.cols[i].len();
        if have > 0 {
            self.unlink(i);
        }
        if len > have {
            let more = len - have;
            while self.avail < more {
                let old = self.next[self.sentinel()];
                debug_assert!(old != self.sentinel(), "cache budget below one column");
                self.drop_col(old);
            }
            self.avail -= more;
            let col = &mut self.cols[i];
            col.resize(len, 0.0);
            kernel.fill(i, y, have, &mut col[have..len]);
        }
        self.push_back(i);
    }

    fn col(&self, i: usize) -> &[f32] {
        &self.cols[i]
    }

    fn swap(&mut self, i: usize, j: usize) {
        if i == j {
            return;
        }
        let (li, lj) = (self.cols[i].len(), self.cols[j].len());
        if li > 0 {
            self.unlink(i);
        }
        if lj > 0 {
            self.unlink(j);
        }
        self.cols.swap(i, j);
        if lj > 0 {
            self.push_back(i);
        }
        if li > 0 {
            self.push_back(j);
        }
        let (lo, hi) = (i.min(j), i.max(j));
        let s = self.sentinel();
        let mut h = self.next[s];
        while h != s {
            let nx = self.next[h];
            let len = self.cols[h].len();
            if len > lo {
                if len > hi {
                    self.cols[h].swap(lo, hi);
                } else {
                    // The column covers one of the two positions only: give it up.
                    self.drop_col(h);
                }
            }
            h = nx;
        }
    }
}

struct Solver {
    n: usize,
    active: usize,
    y: Vec<f64>,
    alpha: Vec<f64>,
    status: Vec<Bound>,
    grad: Vec<f64>,
    grad_bar: Vec<f64>,
    /// Original position of each current position (undone before reading the result).
    perm: Vec<usize>,
    x: Vec<f64>,
    kernel: Kernel,
    cache: Cache,
    c: f64,
    eps: f64,
    shrinking: bool,
    unshrink: bool,
    iterations: usize,
}

impl Solver {
    fn new(x: Vec<f64>, d: usize, y: Vec<f64>, gamma: f64, cfg: &SvcConfig) -> Self {
        let n = y.len();
        let xsq: Vec<f64> = x.chunks(d).map(|r| r.iter().map(|v| v * v).sum()).collect();
        Self {
            n,
            active: n,
            alpha: vec![0.0; n],
            status: vec![Bound::Lower; n],
            // C-SVC dual: min ½αᵀQα − eᵀα, so p = −1 and G = Qα + p = −1 at α = 0.
            grad: vec![-1.0; n],
            grad_bar: vec![0.0; n],
            perm: (0..n).collect(),
            kernel: Kernel { x, xsq, d, gamma },
            x: Vec::new(),
            y,
            cache: Cache::new(n, cfg.cache_bytes),
            c: cfg.c,
            eps: cfg.eps,
            shrinking: cfg.shrinking,
            unshrink: false,
            iterations: 0,
        }
    }

    fn bound_of(&self, a: f64) -> Bound {
        if a >= self.c {
            Bound::Upper
        } else if a <= 0.0 {
            Bound::Lower
        } else {
            Bound::Free
        }
    }

    fn q(&mut self, i: usize, len: usize) {
        self.cache.ensure(i, len, &self.kernel, &self.y);
    }

    fn swap_index(&mut self, i: usize, j: usize) {
        self.cache.swap(i, j);
        self.kernel.swap(i, j);
        self.y.swap(i, j);
        self.grad.swap(i, j);
        self.status.swap(i, j);
        self.alpha.swap(i, j);
        self.grad_bar.swap(i, j);
        self.perm.swap(i, j);
    }

    fn solve(&mut self) {
        let n = self.n;
        let max_iter = 10_000_000usize.max(n.saturating_mul(100));
        let mut counter = n.min(1000) + 1;
        while self.iterations < max_iter {
            counter -= 1;
            if counter == 0 {
                counter = n.min(1000);
                if self.shrinking {
                    self.do_shrinking();
                }
            }
            let (i, j) = match self.select_working_set() {
                Some(ij) => ij,
                None => {
                    self.reconstruct_gradient();
                    self.active = n;
                    match self.select_working_set() {
                        Some(ij) => {
                            counter = 1;
                            ij
                        }
                        None => break,
                    }
                }
            };
            self.iterations += 1;
            self.update_pair(i, j);
        }
        if self.iterations >= max_iter {
            tracing::warn!("SVC: reached the iteration limit {max_iter} before convergence");
        }
        if self.active < n {
            self.reconstruct_gradient();
            self.active = n;
        }
        // Undo the shrinking permutation so that positions are the class-grouped order again.
        for pos in 0..n {
            while self.perm[pos] != pos {
                let target = self.perm[pos];
                self.y.swap(pos, target);
                self.alpha.swap(pos, target);
                self.grad.swap(pos, target);
                self.status.swap(pos, target);
                self.perm.swap(pos, target);
                let d = self.kernel.d;
                for k in 0..d {
                    self.kernel.x.swap(pos * d + k, target * d + k);
                }
            }
        }
        self.x = std::mem::take(&mut self.kernel.x);
    }

    fn update_pair(&mut self, i: usize, j: usize) {
        let len = self.active;
        self.q(i, len);
        self.q(j, len);
        let c = self.c;
        let (old_ai, old_aj) = (self.alpha[i], self.alpha[j]);
        let qij = self.cache.col(i)[j] as f64;
        // K(i,i) = 1 for the RBF kernel.
        let (qd_i, qd_j) = (1.0, 1.0);
        let (mut ai, mut aj) = (old_ai, old_aj);
        if self.y[i] != self.y[j] {
            let mut quad = qd_i + qd_j + 2.0 * qij;
            if quad <= 0.0 {
                quad = TAU;
            }
            let delta = (-self.grad[i] - self.grad[j]) / quad;
            let diff = ai - aj;
            ai += delta;
            aj += delta;
            if diff > 0.0 {
                if aj < 0.0 {
                    aj = 0.0;
                    ai = diff;
                }
            } else if ai < 0.0 {
                ai = 0.0;
                aj = -diff;
            }
            // C_i = C_j = C, so libsvm's `diff > C_i − C_j` reads `diff > 0`.
            if diff > 0.0 {
                if ai > c {
                    ai = c;
                    aj = c - diff;
                }
            } else if aj > c {
                aj = c;
                ai = c + diff;
            }
        } else {
            let mut quad = qd_i + qd_j - 2.0 * qij;
            if quad <= 0.0 {
                quad = TAU;
            }
            let delta = (self.grad[i] - self.grad[j]) / quad;
            let sum = ai + aj;
            ai -= delta;
            aj += delta;
            if sum > c {
                if ai > c {
                    ai = c;
                    aj = sum - c;
                }
            } else if aj < 0.0 {
                aj = 0.0;
                ai = sum;
            }
            if sum > c {
                if aj > c {
                    aj = c;
                    ai = sum - c;
                }
            } else if ai < 0.0 {
                ai = 0.0;
                aj = sum;
            }
        }
        self.alpha[i] = ai;
        self.alpha[j] = aj;
        let (dai, daj) = (ai - old_ai, aj - old_aj);
        {
            let qi = self.cache.col(i);
            let qj = self.cache.col(j);
            for (k, g) in self.grad[..len].iter_mut().enumerate() {
                *g += qi[k] as f64 * dai + qj[k] as f64 * daj;
            }
        }
        let (ui, uj) = (
            self.status[i] == Bound::Upper,
            self.status[j] == Bound::Upper,
        );
        self.status[i] = self.bound_of(ai);
        self.status[j] = self.bound_of(aj);
        for (idx, was_upper) in [(i, ui), (j, uj)] {
            let now_upper = self.status[idx] == Bound::Upper;
            if was_upper != now_upper {
                self.q(idx, self.n);
                let col = self.cache.col(idx);
                let s = if was_upper { -c } else { c };
                for (gb, &q) in self.grad_bar.iter_mut().zip(col) {
                    *gb += s * q as f64;
                }
            }
        }
    }

    /// WSS3 of Fan, Chen & Lin (2005); `None` when the gap is below eps.
    // Parallel arrays indexed by position, as in the published algorithm.
    #[allow(clippy::needless_range_loop)]
    fn select_working_set(&mut self) -> Option<(usize, usize)> {
        let mut gmax = f64::NEG_INFINITY;
        let mut gmax2 = f64::NEG_INFINITY;
        let mut i_sel = None;
        for t in 0..self.active {
            let (g, st) = (self.grad[t], self.status[t]);
            if self.y[t] > 0.0 {
                if st != Bound::Upper && -g >= gmax {
                    gmax = -g;
                    i_sel = Some(t);
                }
            } else if st != Bound::Lower && g >= gmax {
                gmax = g;
                i_sel = Some(t);
            }
        }
        let i = i_sel?;
        self.q(i, self.active);
        let qi = self.cache.col(i);
        let yi = self.y[i];
        let mut j_sel = None;
        let mut obj_min = f64::INFINITY;
        for j in 0..self.active {
            let (g, st) = (self.grad[j], self.status[j]);
            let (grad_diff, quad) = if self.y[j] > 0.0 {
                if st == Bound::Lower {
                    continue;
                }
                if g >= gmax2 {
                    gmax2 = g;
                }
                (gmax + g, 2.0 - 2.0 * yi * qi[j] as f64)
            } else {
                if st == Bound::Upper {
                    continue;
                }
                if -g >= gmax2 {
                    gmax2 = -g;
                }
                (gmax - g, 2.0 + 2.0 * yi * qi[j] as f64)
            };
            if grad_diff > 0.0 {
                let a = if quad > 0.0 { quad } else { TAU };
                let obj = -(grad_diff * grad_diff) / a;
                if obj <= obj_min {
                    obj_min = obj;
                    j_sel = Some(j);
                }
            }
        }
        if gmax + gmax2 < self.eps {
            return None;
        }
        j_sel.map(|j| (i, j))
    }

    fn be_shrunk(&self, i: usize, gmax1: f64, gmax2: f64) -> bool {
        let g = self.grad[i];
        match self.status[i] {
            Bound::Upper => {
                if self.y[i] > 0.0 {
                    -g > gmax1
                } else {
                    -g > gmax2
                }
            }
            Bound::Lower => {
                if self.y[i] > 0.0 {
                    g > gmax2
                } else {
                    g > gmax1
                }
            }
            Bound::Free => false,
        }
    }

    fn do_shrinking(&mut self) {
        let mut gmax1 = f64::NEG_INFINITY;
        let mut gmax2 = f64::NEG_INFINITY;
        for i in 0..self.active {
            let (g, st) = (self.grad[i], self.status[i]);
            if self.y[i] > 0.0 {
                if st != Bound::Upper && -g >= gmax1 {
                    gmax1 = -g;
                }
                if st != Bound::Lower && g >= gmax2 {
                    gmax2 = g;
                }
            } else {
                if st != Bound::Upper && -g >= gmax2 {
                    gmax2 = -g;
                }
                if st != Bound::Lower && g >= gmax1 {
                    gmax1 = g;
                }
            }
        }
        if !self.unshrink && gmax1 + gmax2 <= self.eps * 10.0 {
            self.unshrink = true;
            self.reconstruct_gradient();
            self.active = self.n;
        }
        let mut i = 0;
        while i < self.active {
            if self.be_shrunk(i, gmax1, gmax2) {
                self.active -= 1;
                while self.active > i {
                    if !self.be_shrunk(self.active, gmax1, gmax2) {
                        self.swap_index(i, self.active);
                        break;
                    }
                    self.active -= 1;
                }
            }
            i += 1;
        }
    }

    /// Recomputes G for inactive positions from Ḡ and the free α (libsvm's two strategies).
    fn reconstruct_gradient(&mut self) {
        let (n, act) = (self.n, self.active);
        if act == n {
            return;
        }
        for j in act..n {
            self.grad[j] = self.grad_bar[j] - 1.0;
        }
        let nr_free = (0..act).filter(|&j| self.status[j] == Bound::Free).count();
        if nr_free * n > 2 * act * (n - act) {
            for i in act..n {
                self.q(i, act);
                let qi = self.cache.col(i);
                let s: f64 = qi[..act]
                    .iter()
                    .zip(&self.alpha[..act])
                    .zip(&self.status[..act])
                    .filter(|(_, &st)| st == Bound::Free)
                    .map(|((&q, &a), _)| a * q as f64)
                    .sum();
                self.grad[i] += s;
            }
        } else {
            for i in 0..act {
                if self.status[i] == Bound::Free {
                    self.q(i, n);
                    let qi = self.cache.col(i);
                    let ai = self.alpha[i];
                    for (g, &q) in self.grad[act..n].iter_mut().zip(&qi[act..n]) {
                        *g += ai * q as f64;
                    }
                }
            }
        }
    }

    fn rho(&self) -> f64 {
        let mut ub = f64::INFINITY;
        let mut lb = f64::NEG_INFINITY;
        let (mut nr_free, mut sum_free) = (0usize, 0.0);
        for i in 0..self.n {
            let yg = self.y[i] * self.grad[i];
            match self.status[i] {
                Bound::Upper => {
                    if self.y[i] < 0.0 {
                        ub = ub.min(yg);
                    } else {
                        lb = lb.max(yg);
                    }
                }
                Bound::Lower => {
                    if self.y[i] > 0.0 {
                        ub = ub.min(yg);
                    } else {
                        lb = lb.max(yg);
                    }
                }
                Bound::Free => {
                    nr_free += 1;
                    sum_free += yg;
                }
            }
        }
        if nr_free > 0 {
            sum_free / nr_free as f64
        } else {
            (ub + lb) / 2.0
        }
    }
}
