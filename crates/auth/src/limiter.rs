//! Failed logins per client address: after `max_failures` within `window`,
//! that address is refused until the window ends. Others are unaffected,
//! and a success never unlocks anyone.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const DEFAULT_MAX_FAILURES: u32 = 10;
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);
/// Addresses tracked at once; expired windows are pruned when full.
pub const DEFAULT_CAPACITY: usize = 100_000;

/// The address is refused for now; retry after this long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limited {
    pub retry_after: Duration,
}

impl Limited {
    /// Whole seconds for `Retry-After`, rounded up, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        let secs = self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0);
        secs.max(1)
    }
}

struct Window {
    started: Instant,
    failures: u32,
}

pub struct LoginLimiter {
    max_failures: u32,
    window: Duration,
    capacity: usize,
    windows: Mutex<HashMap<IpAddr, Window>>,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        LoginLimiter::new(DEFAULT_MAX_FAILURES, DEFAULT_WINDOW)
    }
}

/// IPv6 clients usually own a whole /64: count them as one.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
    }
}

impl LoginLimiter {
    pub fn new(max_failures: u32, window: Duration) -> LoginLimiter {
        LoginLimiter::with_capacity(max_failures, window, DEFAULT_CAPACITY)
    }

    pub fn with_capacity(max_failures: u32, window: Duration, capacity: usize) -> LoginLimiter {
        LoginLimiter {
            max_failures: max_failures.max(1),
            window,
            capacity: capacity.max(1),
            windows: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Window>> {
        match self.windows.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Call before checking credentials: Err while the address is locked out.
    pub fn check(&self, ip: IpAddr) -> Result<(), Limited> {
        let windows = self.lock();
        match windows.get(&client_key(ip)) {
            Some(w) if w.failures >= self.max_failures => {
                let elapsed = w.started.elapsed();
                if elapsed < self.window {
                    Err(Limited {
                        retry_after: self.window - elapsed,
                    })
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    /// Counts a failed login from `ip`.
    pub fn record_failure(&self, ip: IpAddr) {
        let key = client_key(ip);
        let mut windows = self.lock();
        if !windows.contains_key(&key) && windows.len() >= self.capacity {
            windows.retain(|_, w| w.started.elapsed() < self.window);
            if windows.len() >= self.capacity {
                tracing::warn!("login limiter full; not tracking another address");
                return;
            }
        }
        let window = windows.entry(key).or_insert(Window {
            started: Instant::now(),
            failures: 0,
        });
        if window.started.elapsed() >= self.window {
            *window = Window {
                started: Instant::now(),
                failures: 0,
            };
        }
        window.failures = window.failures.saturating_add(1);
    }

    /// Addresses tracked now (for tests and metrics).
    pub fn tracked(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    #[test]
    fn ten_failures_lock_out_that_address_only_for_the_window() {
        let limiter = LoginLimiter::new(10, Duration::from_millis(300));
        for _ in 0..9 {
            limiter.record_failure(ip(1));
        }
        assert_eq!(limiter.check(ip(1)), Ok(()));
        limiter.record_failure(ip(1));
        let limited = limiter.check(ip(1)).unwrap_err();
        assert!(limited.retry_after <= Duration::from_millis(300));
        assert_eq!(limited.retry_after_secs(), 1);
        // Others are unaffected.
        assert_eq!(limiter.check(ip(2)), Ok(()));
        std::thread::sleep(Duration::from_millis(350));
        assert_eq!(limiter.check(ip(1)), Ok(()));
        // A new window starts from zero.
        limiter.record_failure(ip(1));
        assert_eq!(limiter.check(ip(1)), Ok(()));
    }

    #[test]
    fn default_is_ten_in_sixty_seconds() {
        let limiter = LoginLimiter::default();
        for _ in 0..10 {
            limiter.record_failure(ip(1));
        }
        let limited = limiter.check(ip(1)).unwrap_err();
        assert!(limited.retry_after_secs() > 55 && limited.retry_after_secs() <= 60);
    }

    #[test]
    fn ipv6_addresses_of_one_slash_64_count_together() {
        let limiter = LoginLimiter::new(2, DEFAULT_WINDOW);
        limiter.record_failure("2001:db8::1".parse().unwrap());
        limiter.record_failure("2001:db8::2".parse().unwrap());
        assert!(limiter.check("2001:db8::3".parse().unwrap()).is_err());
        assert!(limiter.check("2001:db8:0:1::1".parse().unwrap()).is_ok());
        limiter.record_failure("::ffff:192.0.2.7".parse().unwrap());
        limiter.record_failure(ip(7));
        assert!(limiter.check(ip(7)).is_err());
    }

    #[test]
    fn memory_is_bounded_by_pruning_expired_windows() {
        let limiter = LoginLimiter::with_capacity(10, Duration::from_millis(50), 3);
        for last in 0..3 {
            limiter.record_failure(ip(last));
        }
        assert_eq!(limiter.tracked(), 3);
        // Full of live windows: a new address is not tracked.
        limiter.record_failure(ip(9));
        assert_eq!(limiter.tracked(), 3);
        std::thread::sleep(Duration::from_millis(80));
        limiter.record_failure(ip(10));
        assert_eq!(limiter.tracked(), 1);
    }
}
