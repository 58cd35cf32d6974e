//! The one source of "now" for every store: commit timestamps, the instant a snapshot judges
//! expiry against, and the GC window. Injectable so tests move time without sleeping.

use parking_lot::Mutex;

use crate::model::Timestamp;

/// Where a store's time comes from.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// Any closure returning the time is a clock (`Arc::new(move || start + offset)`).
impl<F: Fn() -> Timestamp + Send + Sync> Clock for F {
    fn now(&self) -> Timestamp {
        self()
    }
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        chrono::Utc::now()
    }
}

/// A clock that moves only when told to (tests of expiry and GC).
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<Timestamp>,
}

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        ManualClock {
            now: Mutex::new(start),
        }
    }

    pub fn set(&self, t: Timestamp) {
        *self.now.lock() = t;
    }

    /// Moves the clock forward (or back, with a negative duration); returns the new time.
    pub fn advance(&self, by: chrono::Duration) -> Timestamp {
        let mut now = self.now.lock();
        *now += by;
        *now
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.now.lock()
    }
}
