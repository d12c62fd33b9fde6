//! [`RetryPolicy`]: how long to wait between attempts, and how many.

use std::time::Duration;

use rand::Rng;

/// Exponential back-off with a cap (Curator's `BoundedExponentialBackoffRetry`).
///
/// It governs two things: the pause between full rounds of the server list
/// while reconnecting (rounds go on for as long as the session could be
/// alive, so `max_retries` does not apply there), and the transparent
/// retries of idempotent operations that failed with `ConnectionLoss` (at
/// most `max_retries` of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first pause.
    pub base_delay: Duration,
    /// No pause is longer than this.
    pub max_delay: Duration,
    /// How many times an operation is retried after its first attempt.
    pub max_retries: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
            max_retries: 10,
        }
    }
}

impl RetryPolicy {
    /// The pause before retry number `attempt` (0 for the first retry):
    /// `base_delay × 2^attempt`, ±20 % jitter so many clients do not retry
    /// in step, and never more than `max_delay`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let jitter = rand::rng().random_range(0.8..=1.2);
        self.delay_with_jitter(attempt, jitter)
    }

    fn delay_with_jitter(&self, attempt: u32, jitter: f64) -> Duration {
        let factor = 2u32.saturating_pow(attempt.min(31));
        let nominal = self.base_delay.saturating_mul(factor).min(self.max_delay);
        Duration::try_from_secs_f64(nominal.as_secs_f64() * jitter)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn default_is_100ms_5s_10() {
        let p = RetryPolicy::default();
        assert_eq!(p.base_delay, 100 * MS);
        assert_eq!(p.max_delay, 5000 * MS);
        assert_eq!(p.max_retries, 10);
    }

    #[test]
    fn doubles_then_caps() {
        let p = RetryPolicy::default();
        let nominal: Vec<Duration> = (0..8).map(|a| p.delay_with_jitter(a, 1.0)).collect();
        assert_eq!(
            nominal,
            [100, 200, 400, 800, 1600, 3200, 5000, 5000].map(|m| m * MS)
        );
        // Huge attempt numbers neither overflow nor exceed the cap.
        assert_eq!(p.delay_with_jitter(u32::MAX, 1.2), 5000 * MS);
    }

    #[test]
    fn jitter_stays_within_twenty_percent_and_under_the_cap() {
        let p = RetryPolicy::default();
        for attempt in 0..12 {
            let nominal = p.delay_with_jitter(attempt, 1.0);
            for _ in 0..50 {
                let d = p.delay(attempt);
                let slack = Duration::from_micros(1);
                assert!(
                    d + slack >= nominal.mul_f64(0.8),
                    "{attempt}: {d:?} < 0.8 × {nominal:?}"
                );
                assert!(
                    d <= nominal.mul_f64(1.2) + slack,
                    "{attempt}: {d:?} > 1.2 × {nominal:?}"
                );
                assert!(d <= p.max_delay);
            }
        }
        // Jitter actually varies the pause.
        let seen: std::collections::HashSet<Duration> = (0..50).map(|_| p.delay(2)).collect();
        assert!(seen.len() > 1);
    }

    #[test]
    fn zero_base_means_no_pause() {
        let p = RetryPolicy {
            base_delay: Duration::ZERO,
            ..Default::default()
        };
        assert_eq!(p.delay(3), Duration::ZERO);
    }
}
