//! Whether the data thread's traffic is light or heavy, from its rounds (wake-ups with work)
//! per window.
//!
//! - Light traffic (a ping, a request and its answer): the thread busy-polls before it sleeps
//!   (`poller.rs`) and keeps to one CPU (`placement.rs`); both spare a wake-up that costs
//!   more than the work.
//! - Heavy traffic: no spin (at a paced 1 Gbit/s it was about half of meshd's CPU time) and
//!   every CPU.
//! - Light turns heavy within [`WINDOW`]; heavy turns light only over [`HEAVY_WINDOW`], so a
//!   stall of a few milliseconds mid-stream changes nothing. The thresholds leave a gap, so a
//!   rate near one does not flip at every window.

use std::time::{Duration, Instant};

/// How often light traffic is reconsidered, and the window the thresholds count rounds in.
const WINDOW: Duration = Duration::from_millis(10);
/// How often heavy traffic is.
const HEAVY_WINDOW: Duration = Duration::from_millis(100);
/// Rounds in a window at which traffic becomes heavy (2000 wake-ups a second).
const HEAVY_ROUNDS: u32 = 20;
/// Rounds in a window at or below which it becomes light again (500 wake-ups a second).
const LIGHT_ROUNDS: u32 = 5;

/// The rule alone: given whether traffic was heavy and the rounds of a window that has ended
/// `elapsed` after it began (longer than [`WINDOW`] when traffic paused: the rounds are then
/// scaled to a window's worth), whether it is heavy now.
pub(crate) fn heavy_after(heavy: bool, rounds: u32, elapsed: Duration) -> bool {
    let scaled = u128::from(rounds) * WINDOW.as_micros() / elapsed.as_micros().max(1);
    let rounds = u32::try_from(scaled).unwrap_or(u32::MAX);
    if heavy {
        rounds > LIGHT_ROUNDS
    } else {
        rounds >= HEAVY_ROUNDS
    }
}

/// The data thread's traffic, counted round by round; light at start.
pub(crate) struct Activity {
    heavy: bool,
    window: Instant,
    rounds: u32,
}

impl Activity {
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            heavy: false,
            window: now,
            rounds: 0,
        }
    }

    pub(crate) fn heavy(&self) -> bool {
        self.heavy
    }

    /// Counts a round at `now`; at the end of a window, returns the traffic if it changed.
    pub(crate) fn round(&mut self, now: Instant) -> Option<bool> {
        self.rounds += 1;
        let elapsed = now.saturating_duration_since(self.window);
        if elapsed < if self.heavy { HEAVY_WINDOW } else { WINDOW } {
            return None;
        }
        let (rounds, was) = (self.rounds, self.heavy);
        self.heavy = heavy_after(was, rounds, elapsed);
        self.window = now;
        self.rounds = 0;
        if self.heavy == was {
            return None;
        }
        tracing::debug!(
            rounds,
            "traffic {}",
            if self.heavy {
                "heavy: no busy-poll, every CPU"
            } else {
                "light: busy-poll, one CPU"
            }
        );
        Some(self.heavy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heavy_from_the_heavy_threshold_light_at_the_light_one_with_a_gap_between() {
        let w = WINDOW;
        // Light: becomes heavy only at the heavy threshold.
        assert!(!heavy_after(false, 0, w));
        assert!(!heavy_after(false, LIGHT_ROUNDS + 1, w));
        assert!(!heavy_after(false, HEAVY_ROUNDS - 1, w));
        assert!(heavy_after(false, HEAVY_ROUNDS, w));
        // Heavy: stays until the light threshold.
        assert!(heavy_after(true, HEAVY_ROUNDS - 1, w));
        assert!(heavy_after(true, LIGHT_ROUNDS + 1, w));
        assert!(!heavy_after(true, LIGHT_ROUNDS, w));
    }

    #[test]
    fn a_window_that_spans_a_pause_counts_as_its_rate() {
        // A stream's last rounds, then a packet a second later: light traffic.
        assert!(!heavy_after(true, 100, Duration::from_secs(1)));
        // The same rounds within one window: heavy.
        assert!(heavy_after(false, 100, WINDOW));
        // A window that ran a little long is about its count.
        assert!(heavy_after(false, 2 * HEAVY_ROUNDS, WINDOW + WINDOW / 2));
        // No division by zero, and no overflow.
        assert!(heavy_after(true, u32::MAX, Duration::ZERO));
    }

    #[test]
    fn rounds_change_the_traffic_only_at_the_end_of_a_window() {
        let start = Instant::now();
        let mut t = Activity::new(start);
        assert!(!t.heavy());
        // A burst of rounds inside the first window: no decision yet.
        for k in 0..HEAVY_ROUNDS {
            assert_eq!(
                t.round(start + Duration::from_micros(u64::from(k) * 10)),
                None
            );
        }
        // The round that ends the window decides: heavy.
        assert_eq!(t.round(start + WINDOW), Some(true));
        assert!(t.heavy());
        // Heavy traffic is reconsidered over a longer window: a stall of 20 ms in it (no
        // rounds) changes nothing, with a stream at the heavy rate around it.
        let next = start + WINDOW;
        let step = WINDOW / HEAVY_ROUNDS;
        let ms = Duration::from_millis;
        let stream = |from: Duration, to: Duration| {
            let n = ((to - from).as_micros() / step.as_micros()) as u32;
            (0..n).map(move |k| next + from + step * k)
        };
        for at in stream(ms(0), ms(40)).chain(stream(ms(60), ms(100))) {
            assert_eq!(t.round(at), None);
        }
        assert_eq!(t.round(next + HEAVY_WINDOW), None);
        assert!(t.heavy());
        // One round after a pause of a second: light again.
        let later = next + HEAVY_WINDOW + Duration::from_secs(1);
        assert_eq!(t.round(later), Some(false));
        assert!(!t.heavy());
        // And heavy again within one short window of a stream.
        for k in 0..HEAVY_ROUNDS {
            assert_eq!(t.round(later + step * k / 2), None);
        }
        assert_eq!(t.round(later + WINDOW), Some(true));
    }
}
