//! The U statistic against hand-counted examples, the integer significance test against the
//! p-value it is shown with, and whole comparisons of drifting and healthy canaries.

use super::*;

/// A small deterministic generator (xorshift64*), so the tests need no RNG crate.
struct Noise(u64);

impl Noise {
    /// Uniform in [0, 1).
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Roughly normal: the sum of 12 uniforms, centred.
    fn normal(&mut self, mean: f64, sd: f64) -> f64 {
        let s: f64 = (0..12).map(|_| self.next()).sum();
        mean + sd * (s - 6.0)
    }
}

fn samples(noise: &mut Noise, n: usize, coherence: f64, errors: f64, p95: f64) -> Vec<Sample> {
    (0..n)
        .map(|_| Sample {
            coherence: noise.normal(coherence, 0.02),
            error_rate: noise.normal(errors, 0.004).max(0.0),
            response_ms: noise.normal(p95, 12.0),
            safety: noise.normal(0.985, 0.003),
            tasks_per_minute: noise.normal(60.0, 3.0),
        })
        .collect()
}

#[test]
fn u_is_counted_as_by_hand() {
    // Canary entirely below the baseline: U = 0, the deviation is -n₁n₂/2, doubled -9; no
    // ties, so var(U) = n₁n₂(n+1)/12 = 5.25 and (2σ)² = 21.
    let u = u_statistic(&[1, 2, 3], &[4, 5, 6]);
    assert_eq!(u.deviation_x2, -9);
    assert_eq!(u.variance_x12nn / u.variance_den, 21);
    assert_eq!(u.variance_x12nn % u.variance_den, 0);
    // Ties share the average rank: 1,1 | 1,2 gives R₁ = 2 + 2, U = 1, deviation 2U - 4 = -2,
    // and the tie correction brings var(U) from 5/3 down to 1: (2σ)² = 4.
    let u = u_statistic(&[1, 1], &[1, 2]);
    assert_eq!(u.deviation_x2, -2);
    assert_eq!(u.variance_x12nn / u.variance_den, 4);
    assert_eq!(u.variance_x12nn % u.variance_den, 0);
    // Swapping the sides flips the sign only.
    assert_eq!(u_statistic(&[4, 5, 6], &[1, 2, 3]).deviation_x2, 9);
}

#[test]
fn nothing_to_compare_is_never_significant() {
    let empty = u_statistic(&[], &[1, 2, 3]);
    assert!(!empty.significant(true, Alpha::P10) && !empty.significant(false, Alpha::P10));
    assert_eq!(empty.p_value(true), 1.0);
    // All equal: no variance at all.
    let flat = u_statistic(&[5; 30], &[5; 30]);
    assert!(!flat.significant(true, Alpha::P10) && !flat.significant(false, Alpha::P10));
}

#[test]
fn the_normal_tail_and_exp_are_accurate() {
    for (x, want) in [
        (0.0, 1.0),
        (1.0, 0.367_879_441_171_442_3),
        (4.5, 0.011_108_996_538_242_306),
        (50.0, 1.928_749_847_963_918e-22),
    ] {
        // Each squaring doubles the relative error: 12 of them for x = 50.
        let got = exp_neg(x);
        assert!(
            ((got - want) / want).abs() < 1e-11,
            "exp(-{x}) = {got}, want {want}"
        );
    }
    for (z, want) in [
        (0.0, 0.5),
        (1.281_551_6, 0.1),
        (1.644_853_6, 0.05),
        (1.959_964, 0.025),
        (2.326_347_9, 0.01),
        (3.090_232_3, 0.001),
    ] {
        let got = upper_tail(z);
        assert!((got - want).abs() < 2e-7, "P(Z > {z}) = {got}, want {want}");
    }
}

#[test]
fn the_integer_test_agrees_with_the_p_value_it_shows() {
    // Over many data sets with small shifts, "significant at alpha" (integers) is exactly
    // "p <= alpha" (floating point) except within a hair of the boundary, where the table's
    // five decimals of z decide.
    let mut noise = Noise(0x5eed);
    let mut checked = 0;
    for round in 0..400 {
        let shift = (round % 9) as f64 * 0.004;
        let c: Vec<i64> = (0..25)
            .map(|_| fixed(noise.normal(0.9 - shift, 0.02)))
            .collect();
        let b: Vec<i64> = (0..40).map(|_| fixed(noise.normal(0.9, 0.02))).collect();
        let u = u_statistic(&c, &b);
        for alpha in [Alpha::P10, Alpha::P05, Alpha::P01, Alpha::P001] {
            for larger in [true, false] {
                let p = u.p_value(larger);
                if (p - alpha.value()).abs() < 1e-4 {
                    continue;
                }
                assert_eq!(
                    u.significant(larger, alpha),
                    p <= alpha.value(),
                    "round {round}, alpha {alpha:?}, larger {larger}: p = {p}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 3000, "{checked}");
}

#[test]
fn a_release_that_drifts_inside_every_threshold_fails_naming_the_metrics() {
    // The example: coherence 0.90 -> 0.76, errors 0.010 -> 0.04, p95 100 -> 180 ms;
    // every value is still inside the absolute thresholds.
    let mut noise = Noise(7);
    let baseline = samples(&mut noise, 60, 0.90, 0.010, 100.0);
    let canary = samples(&mut noise, 60, 0.76, 0.040, 180.0);
    let c = compare(&canary, &baseline, &BaselineSettings::default());
    assert_eq!(c.verdict, BaselineVerdict::Fail { score: 40 });
    let worse: Vec<Metric> = c
        .metrics
        .iter()
        .filter(|m| m.worse)
        .map(|m| m.metric)
        .collect();
    assert_eq!(
        worse,
        [Metric::Coherence, Metric::ErrorRate, Metric::ResponseMs]
    );
    let coherence = c.metrics[0].describe();
    assert!(
        coherence.starts_with("coherence: canary median 0.7"),
        "{coherence}"
    );
    assert!(coherence.ends_with("(worse)"), "{coherence}");
}

#[test]
fn a_canary_better_than_its_baseline_passes() {
    let mut noise = Noise(11);
    let baseline = samples(&mut noise, 60, 0.80, 0.030, 150.0);
    let canary = samples(&mut noise, 60, 0.92, 0.005, 90.0);
    let c = compare(&canary, &baseline, &BaselineSettings::default());
    assert_eq!(c.verdict, BaselineVerdict::Pass { score: 100 });
}

#[test]
fn healthy_canaries_rarely_fail() {
    // Same distribution on both sides: each metric is a false positive with probability about
    // alpha (0.01), five metrics, so about 5% of comparisons could fail on significance alone;
    // the tolerances bring that down further.
    let mut noise = Noise(2026);
    let fails = (0..200)
        .filter(|_| {
            let baseline = samples(&mut noise, 60, 0.90, 0.010, 100.0);
            let canary = samples(&mut noise, 60, 0.90, 0.010, 100.0);
            matches!(
                compare(&canary, &baseline, &BaselineSettings::default()).verdict,
                BaselineVerdict::Fail { .. }
            )
        })
        .count();
    assert!(fails <= 2, "{fails} of 200 healthy canaries failed");
}

#[test]
fn a_significant_difference_below_the_tolerance_does_not_count() {
    // 2,000 samples a side make a 0.005 coherence difference highly significant, but it is
    // below the 0.02 tolerance.
    let mut noise = Noise(3);
    let baseline = samples(&mut noise, 2000, 0.900, 0.010, 100.0);
    let canary = samples(&mut noise, 2000, 0.895, 0.010, 100.0);
    let c = compare(&canary, &baseline, &BaselineSettings::default());
    let coherence = &c.metrics[0];
    assert!(coherence.p_value < 0.001, "{}", coherence.describe());
    assert!(!coherence.worse, "{}", coherence.describe());
    let strict = BaselineSettings {
        tolerance: vec![],
        ..BaselineSettings::default()
    };
    assert!(compare(&canary, &baseline, &strict).metrics[0].worse);
}

#[test]
fn too_few_samples_is_inconclusive() {
    let mut noise = Noise(5);
    let baseline = samples(&mut noise, 19, 0.90, 0.010, 100.0);
    let canary = samples(&mut noise, 60, 0.50, 0.010, 100.0);
    let c = compare(&canary, &baseline, &BaselineSettings::default());
    match c.verdict {
        BaselineVerdict::Inconclusive { reason } => {
            assert!(reason.contains("60 canary and 19 baseline"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn hostile_samples_do_not_panic() {
    let weird = Sample {
        coherence: f64::NAN,
        error_rate: f64::INFINITY,
        response_ms: f64::NEG_INFINITY,
        safety: 1e300,
        tasks_per_minute: -1e300,
    };
    let c = compare(
        &vec![weird; 30],
        &vec![weird; 30],
        &BaselineSettings::default(),
    );
    assert!(matches!(c.verdict, BaselineVerdict::Pass { .. }), "{c:?}");
    assert_eq!(fixed(f64::NAN), 0);
    assert_eq!(fixed(f64::INFINITY), i64::MAX);
}
