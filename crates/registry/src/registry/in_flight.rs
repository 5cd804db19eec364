//! Monolithic pushes in progress per client: they hold no session row to
//! count, yet each holds a temp file and a writer thread while it streams.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

type Counts = Arc<Mutex<HashMap<IpAddr, usize>>>;

#[derive(Default)]
pub(crate) struct InFlight {
    counts: Counts,
}

/// One push counted against its client until dropped.
pub(crate) struct Entered {
    counts: Counts,
    client: IpAddr,
}

impl InFlight {
    /// Counts a push by `client`, unless it already has `limit` in progress.
    pub fn enter(&self, client: IpAddr, limit: usize) -> Option<Entered> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let count = counts.entry(client).or_default();
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(Entered {
            counts: self.counts.clone(),
            client,
        })
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = counts.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_its_limit_and_its_slots_back() {
        let pushes = InFlight::default();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let first = pushes.enter(a, 2).unwrap();
        let _second = pushes.enter(a, 2).unwrap();
        assert!(pushes.enter(a, 2).is_none());
        assert!(
            pushes.enter(b, 2).is_some(),
            "other clients are not affected"
        );
        drop(first);
        assert!(pushes.enter(a, 2).is_some());
    }
}
