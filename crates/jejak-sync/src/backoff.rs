//! Exponential back-off with full jitter (a random pause between zero and the current
//! ceiling), so that fifteen PCs whose modems come up together do not retry in step.

use std::time::Duration;

use rand::Rng;

#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Self {
        Backoff {
            base,
            cap,
            attempt: 0,
        }
    }

    /// The ceiling of the next pause: base × 2^attempt, at most the cap.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(30)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The next pause, chosen uniformly in `0..=ceiling`.
    pub fn next_pause(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let millis = ceiling.as_millis() as u64;
        Duration::from_millis(rand::rng().random_range(0..=millis))
    }

    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ceiling_doubles_up_to_the_cap_and_pauses_stay_under_it() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(180));
        let mut ceilings = Vec::new();
        for _ in 0..12 {
            let ceiling = b.ceiling();
            ceilings.push(ceiling.as_secs());
            assert!(b.next_pause() <= ceiling);
        }
        assert_eq!(&ceilings[..9], &[1, 2, 4, 8, 16, 32, 64, 128, 180]);
        assert!(ceilings.iter().all(|c| *c <= 180));
        b.reset();
        assert_eq!(b.ceiling(), Duration::from_secs(1));
    }

    #[test]
    fn pauses_are_jittered() {
        let mut pauses = std::collections::HashSet::new();
        for _ in 0..20 {
            let mut b = Backoff::new(Duration::from_secs(60), Duration::from_secs(60));
            pauses.insert(b.next_pause());
        }
        assert!(pauses.len() > 5, "full jitter spreads the pauses");
    }
}
