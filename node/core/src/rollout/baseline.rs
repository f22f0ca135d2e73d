//! Canary against baseline: a one-sided Mann-Whitney U test per health metric, as Kayenta's
//! judge does, on samples of the agents running the new version (canary) and of agents of the
//! same specialties still on the running version (baseline), taken over the same window.
//!
//! Every validator must reach the same verdict from the same agent-signed samples, so nothing
//! here depends on how a machine rounds a transcendental function:
//! - samples become integers first (millionths, [`fixed`]), and ranks are counted twice over
//!   ("doubled ranks": a tie group's average rank is a half-integer, twice it is an integer);
//! - "significant" compares `U`'s squared deviation from its mean against `z²·var(U)` in
//!   128-bit integers, with the tie-corrected variance and the usual continuity correction, and
//!   `z` from a fixed table of one-sided critical values ([`Alpha`]);
//! - the p-value shown beside it (the normal approximation) uses only IEEE-754 `+ - * / sqrt`,
//!   which are correctly rounded everywhere, and an `exp` written out here for the same reason
//!   (a platform's `exp` may differ in the last bit); it is shown, never decided on.
//!
//! A metric counts against the canary only if it is significantly worse *and* its median is
//! worse than the baseline's by more than the metric's tolerance (the effect size below which a
//! difference does not matter), so a large fleet's tiny but significant difference passes.

use serde::{Deserialize, Serialize};

use super::evidence::Sample;

/// Samples are compared as integers: millionths of the metric's unit.
pub fn fixed(x: f64) -> i64 {
    // `as` saturates (and maps NaN to 0): a hostile sample cannot overflow anything below.
    (x * 1_000_000.0).round() as i64
}

/// The metrics compared, with the direction that is worse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    Coherence,
    ErrorRate,
    ResponseMs,
    Safety,
    Throughput,
}

impl Metric {
    pub const ALL: [Metric; 5] = [
        Metric::Coherence,
        Metric::ErrorRate,
        Metric::ResponseMs,
        Metric::Safety,
        Metric::Throughput,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Metric::Coherence => "coherence",
            Metric::ErrorRate => "error_rate",
            Metric::ResponseMs => "response_ms",
            Metric::Safety => "safety",
            Metric::Throughput => "tasks_per_minute",
        }
    }

    /// Higher is worse (errors, latency); otherwise lower is worse.
    pub fn higher_is_worse(self) -> bool {
        matches!(self, Metric::ErrorRate | Metric::ResponseMs)
    }

    pub fn of(self, s: &Sample) -> f64 {
        match self {
            Metric::Coherence => s.coherence,
            Metric::ErrorRate => s.error_rate,
            Metric::ResponseMs => s.response_ms,
            Metric::Safety => s.safety,
            Metric::Throughput => s.tasks_per_minute,
        }
    }
}

/// One-sided significance levels, each with its critical `z` squared as a fraction
/// (`z² = num / 10⁸`), from the standard normal table to five decimals of `z`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Alpha {
    #[serde(rename = "0.1")]
    P10,
    #[serde(rename = "0.05")]
    P05,
    #[serde(rename = "0.025")]
    P025,
    #[serde(rename = "0.01")]
    P01,
    #[serde(rename = "0.005")]
    P005,
    #[serde(rename = "0.001")]
    P001,
}

impl Alpha {
    /// `z` to five decimals, times 10⁵.
    fn z_e5(self) -> i128 {
        match self {
            Alpha::P10 => 128_155,
            Alpha::P05 => 164_485,
            Alpha::P025 => 195_996,
            Alpha::P01 => 232_635,
            Alpha::P005 => 257_583,
            Alpha::P001 => 309_023,
        }
    }

    pub fn value(self) -> f64 {
        match self {
            Alpha::P10 => 0.1,
            Alpha::P05 => 0.05,
            Alpha::P025 => 0.025,
            Alpha::P01 => 0.01,
            Alpha::P005 => 0.005,
            Alpha::P001 => 0.001,
        }
    }
}

/// The U statistic of `canary` against `baseline`, in the integers everything is decided on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UStatistic {
    pub n_canary: u64,
    pub n_baseline: u64,
    /// `2U - n₁n₂`: twice U's deviation from its mean. Positive when canary values tend to be
    /// larger than baseline ones.
    pub deviation_x2: i128,
    /// `4·var(U)·3n(n-1)`, with the tie correction: `n₁n₂·((n+1)n(n-1) - Σ(t³-t))`.
    pub variance_x12nn: i128,
    /// `3n(n-1)`, the denominator that keeps the variance an integer.
    pub variance_den: i128,
}

/// Counts `U` with doubled ranks (ties share their average rank).
pub fn u_statistic(canary: &[i64], baseline: &[i64]) -> UStatistic {
    let mut all: Vec<(i64, bool)> = canary
        .iter()
        .map(|v| (*v, true))
        .chain(baseline.iter().map(|v| (*v, false)))
        .collect();
    all.sort_unstable();
    let (n1, n2) = (canary.len() as i128, baseline.len() as i128);
    let n = n1 + n2;
    let mut rank_sum_x2: i128 = 0;
    let mut ties: i128 = 0;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j < all.len() && all[j].0 == all[i].0 {
            j += 1;
        }
        // Positions i+1 ..= j share the average rank (i+1+j)/2; doubled: i+1+j.
        let t = (j - i) as i128;
        let doubled = (i + 1 + j) as i128;
        let in_canary = all[i..j].iter().filter(|(_, c)| *c).count() as i128;
        rank_sum_x2 += doubled * in_canary;
        ties += t * t * t - t;
        i = j;
    }
    // U = R₁ - n₁(n₁+1)/2, so 2U = 2R₁ - n₁(n₁+1); the mean of U is n₁n₂/2.
    let u_x2 = rank_sum_x2 - n1 * (n1 + 1);
    UStatistic {
        n_canary: n1 as u64,
        n_baseline: n2 as u64,
        deviation_x2: u_x2 - n1 * n2,
        variance_x12nn: n1 * n2 * ((n + 1) * n * (n - 1) - ties),
        variance_den: 3 * n * (n - 1),
    }
}

impl UStatistic {
    /// Whether canary values are significantly larger (`larger`) or smaller than baseline ones
    /// at `alpha`, one-sided: `|d| - ½ ≥ z·σ`, squared and in integers (`d` is U's deviation,
    /// `½` the continuity correction; both doubled here, so `2|d| - 1 ≥ z·2σ`).
    pub fn significant(&self, larger: bool, alpha: Alpha) -> bool {
        if self.n_canary == 0 || self.n_baseline == 0 || self.variance_x12nn <= 0 {
            return false;
        }
        let d = if larger {
            self.deviation_x2
        } else {
            -self.deviation_x2
        };
        let corrected = d - 1;
        if corrected <= 0 {
            return false;
        }
        // corrected² ≥ z² · (2σ)²  with (2σ)² = variance_x12nn / variance_den and
        // z² = z_e5² / 10¹⁰.
        let z = alpha.z_e5();
        let lhs = corrected
            .saturating_mul(corrected)
            .saturating_mul(self.variance_den)
            .saturating_mul(10_000_000_000);
        let rhs = z.saturating_mul(z).saturating_mul(self.variance_x12nn);
        lhs >= rhs
    }

    /// The normal approximation's one-sided p-value in the given direction, for people (never
    /// decided on): deterministic, see the module doc.
    pub fn p_value(&self, larger: bool) -> f64 {
        if self.n_canary == 0 || self.n_baseline == 0 || self.variance_x12nn <= 0 {
            return 1.0;
        }
        let d = if larger {
            self.deviation_x2
        } else {
            -self.deviation_x2
        };
        let sigma_x2 = (self.variance_x12nn as f64 / self.variance_den as f64).sqrt();
        let z = ((d - 1).max(0) as f64) / sigma_x2;
        upper_tail(z)
    }
}

/// `P(Z > z)` for a standard normal, `z ≥ 0`: Zelen and Severo's approximation (Abramowitz
/// and Stegun 26.2.17, absolute error below 7.5·10⁻⁸), with [`exp_neg`] for the density.
fn upper_tail(z: f64) -> f64 {
    if z.is_nan() {
        return 1.0;
    }
    if z > 38.0 {
        return 0.0;
    }
    let t = 1.0 / (1.0 + 0.231_641_9 * z);
    let poly = t
        * (0.319_381_530
            + t * (-0.356_563_782
                + t * (1.781_477_937 + t * (-1.821_255_978 + t * 1.330_274_429))));
    let density = 0.398_942_280_401_432_7 * exp_neg(z * z / 2.0);
    (density * poly).clamp(0.0, 1.0)
}

/// `e^(-x)` for `0 ≤ x ≤ 800` from `+ - * /` only: `e^(-x) = (e^(-x/2ᵏ))^(2ᵏ)` with `x/2ᵏ` below
/// 1/64 and a 12-term Taylor series there (relative error about 2ᵏ ulps: 10⁻¹² at x = 50). The
/// same bits on every IEEE-754 machine.
fn exp_neg(x: f64) -> f64 {
    if x.is_nan() || x > 800.0 {
        return 0.0;
    }
    let mut r = -x.max(0.0);
    let mut halvings = 0;
    while r < -1.0 / 64.0 {
        r /= 2.0;
        halvings += 1;
    }
    let mut term = 1.0;
    let mut sum = 1.0;
    for k in 1..=12 {
        term = term * r / k as f64;
        sum += term;
    }
    for _ in 0..halvings {
        sum *= sum;
    }
    sum
}

/// The median of integer samples: the lower middle one for an even count (no rounding).
pub fn median(values: &[i64]) -> Option<i64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_unstable();
    Some(v[(v.len() - 1) / 2])
}

/// What one metric's comparison found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricComparison {
    pub metric: Metric,
    /// Medians in millionths of the metric's unit.
    pub canary_median: i64,
    pub baseline_median: i64,
    pub canary_samples: u64,
    pub baseline_samples: u64,
    /// One-sided, in the direction that is worse for this metric.
    pub p_value: f64,
    /// Significantly worse and worse by more than the tolerance.
    pub worse: bool,
}

impl MetricComparison {
    /// One line for reasons and events, e.g. "coherence: canary median 0.760000 vs baseline
    /// 0.900000, p = 0.0000 (worse)".
    pub fn describe(&self) -> String {
        format!(
            "{}: canary median {:.6} vs baseline {:.6}, p = {:.4}{}",
            self.metric.name(),
            self.canary_median as f64 / 1e6,
            self.baseline_median as f64 / 1e6,
            self.p_value,
            if self.worse { " (worse)" } else { "" }
        )
    }
}

/// How the comparison is made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BaselineSettings {
    pub alpha: Alpha,
    /// Per metric, the difference of medians (in the metric's unit) below which a
    /// significant difference does not count.
    pub tolerance: Vec<(Metric, f64)>,
    /// Fewer samples on either side is inconclusive.
    pub min_samples: u64,
}

impl Default for BaselineSettings {
    fn default() -> Self {
        BaselineSettings {
            alpha: Alpha::P01,
            // Twice what first seemed natural: with 0.02 / 0.005 / 10 ms / 0.005 / 2, two
            // groups of identical agents (the synthetic model's noise, 18 against 54 samples)
            // differed "worse" in 1.4% of canaries; with these, 0.08%, and a release that is
            // clearly worse (coherence -0.12, errors +0.025, p95 +70 ms) is still always
            // caught.
            tolerance: vec![
                (Metric::Coherence, 0.04),
                (Metric::ErrorRate, 0.01),
                (Metric::ResponseMs, 20.0),
                (Metric::Safety, 0.01),
                (Metric::Throughput, 4.0),
            ],
            min_samples: 20,
        }
    }
}

impl BaselineSettings {
    fn tolerance(&self, m: Metric) -> i64 {
        self.tolerance
            .iter()
            .find(|(t, _)| *t == m)
            .map_or(0, |(_, v)| fixed(*v))
    }
}

/// Which judges decide a canary step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Analysis {
    /// The absolute thresholds alone.
    Thresholds,
    /// The thresholds, and the canary compared with its baseline when the canary step ends.
    #[default]
    Both,
    /// The canary step judged by the comparison alone: its agents need only the safety floor
    /// and enough samples (`HealthThresholds::floor_only`); later steps keep the thresholds.
    /// For fleets whose absolute figures move with the workload, where "no worse than what
    /// runs" is the meaningful bar.
    Baseline,
}

/// What an inconclusive comparison (too few samples, no baseline agent left) does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnInconclusive {
    /// Roll the canary back: nothing shows it is as good as what runs.
    #[default]
    Rollback,
    /// Let the thresholds decide alone (small fleets with too few agents for a baseline).
    Proceed,
    /// Hold the rollout after the canary step, as a `pause_before` does, until a requester's
    /// `Approve` (or `Abort`) is voted: a human decides what the data could not.
    Pause,
}

/// The governed analysis settings, shared by every validator through the genesis.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AnalysisSettings {
    pub analysis: Analysis,
    pub baseline: BaselineSettings,
    pub on_inconclusive: OnInconclusive,
}

impl AnalysisSettings {
    /// Thresholds only: no comparison (older tests and fleets too small for a baseline).
    pub fn thresholds_only() -> Self {
        AnalysisSettings {
            analysis: Analysis::Thresholds,
            ..Default::default()
        }
    }
}

/// The combined verdict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum BaselineVerdict {
    /// No metric is worse. `score` is the share of metrics that are not worse, in percent.
    Pass { score: u8 },
    /// At least one metric is worse.
    Fail { score: u8 },
    /// Too few samples on one side (or no baseline agents left).
    Inconclusive { reason: String },
}

/// The whole comparison: the verdict and every metric's figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub verdict: BaselineVerdict,
    pub metrics: Vec<MetricComparison>,
}

impl Comparison {
    /// The metrics found worse, one line each (empty when none is).
    pub fn worse(&self) -> Vec<String> {
        self.metrics
            .iter()
            .filter(|m| m.worse)
            .map(MetricComparison::describe)
            .collect()
    }
}

/// Compares canary samples with baseline samples over every metric.
pub fn compare(canary: &[Sample], baseline: &[Sample], s: &BaselineSettings) -> Comparison {
    let (nc, nb) = (canary.len() as u64, baseline.len() as u64);
    if nc < s.min_samples || nb < s.min_samples {
        return Comparison {
            verdict: BaselineVerdict::Inconclusive {
                reason: format!(
                    "{nc} canary and {nb} baseline samples; the comparison needs {} of each",
                    s.min_samples
                ),
            },
            metrics: Vec::new(),
        };
    }
    let metrics: Vec<MetricComparison> = Metric::ALL
        .iter()
        .map(|&m| {
            let c: Vec<i64> = canary.iter().map(|x| fixed(m.of(x))).collect();
            let b: Vec<i64> = baseline.iter().map(|x| fixed(m.of(x))).collect();
            let u = u_statistic(&c, &b);
            let larger = m.higher_is_worse();
            let (mc, mb) = (median(&c).unwrap_or(0), median(&b).unwrap_or(0));
            let by = if larger {
                mc.saturating_sub(mb)
            } else {
                mb.saturating_sub(mc)
            };
            MetricComparison {
                metric: m,
                canary_median: mc,
                baseline_median: mb,
                canary_samples: nc,
                baseline_samples: nb,
                p_value: u.p_value(larger),
                worse: u.significant(larger, s.alpha) && by > s.tolerance(m),
            }
        })
        .collect();
    let fine = metrics.iter().filter(|m| !m.worse).count();
    let score = (fine * 100 / metrics.len()) as u8;
    let verdict = if fine == metrics.len() {
        BaselineVerdict::Pass { score }
    } else {
        BaselineVerdict::Fail { score }
    };
    Comparison { verdict, metrics }
}

#[cfg(test)]
#[path = "baseline_tests.rs"]
mod tests;
