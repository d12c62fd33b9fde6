//! The live client connections of both protocols, for the `cons`, `stat`,
//! `srvr` and `mntr` four-letter words: who is connected, to which session,
//! and how many requests each has sent and been answered, with latencies.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;

/// Request latency in microseconds: count, total, min and max.
#[derive(Default)]
pub struct Latency {
    count: AtomicU64,
    total_us: AtomicU64,
    min_us: AtomicU64,
    max_us: AtomicU64,
}

impl Latency {
    pub fn record(&self, d: Duration) {
        let us = d.as_micros().min(u64::MAX as u128) as u64;
        if self.count.fetch_add(1, Ordering::Relaxed) == 0 {
            self.min_us.store(us, Ordering::Relaxed);
        } else {
            self.min_us.fetch_min(us, Ordering::Relaxed);
        }
        self.total_us.fetch_add(us, Ordering::Relaxed);
        self.max_us.fetch_max(us, Ordering::Relaxed);
    }

    /// (min, avg, max) in milliseconds, as ZooKeeper reports them.
    pub fn summary_ms(&self) -> (f64, f64, f64) {
        let n = self.count.load(Ordering::Relaxed);
        if n == 0 {
            return (0.0, 0.0, 0.0);
        }
        let ms = |us: u64| us as f64 / 1000.0;
        (
            ms(self.min_us.load(Ordering::Relaxed)),
            ms(self.total_us.load(Ordering::Relaxed)) / n as f64,
            ms(self.max_us.load(Ordering::Relaxed)),
        )
    }
}

/// One live connection, updated by its session task.
pub struct ConnInfo {
    pub id: u64,
    /// "zk" or "grpc".
    pub protocol: &'static str,
    pub peer: Option<SocketAddr>,
    /// The subject of the client's TLS certificate: its `x509` identity.
    pub x509: Option<String>,
    pub established: SystemTime,
    pub session: AtomicU64,
    pub timeout_ms: AtomicU32,
    pub received: AtomicU64,
    pub sent: AtomicU64,
    pub last_op: Mutex<&'static str>,
    pub latency: Latency,
}

/// Every live connection, by id.
#[derive(Default)]
pub struct Registry {
    next: AtomicU64,
    conns: Mutex<BTreeMap<u64, Arc<ConnInfo>>>,
    /// Server-wide request latency (both protocols).
    pub latency: Latency,
    /// Packets received and sent over all connections since start.
    pub received: AtomicU64,
    pub sent: AtomicU64,
}

/// Keeps a connection listed while it lives.
pub struct Registered {
    pub info: Arc<ConnInfo>,
    registry: Arc<Registry>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.registry.conns.lock().remove(&self.info.id);
    }
}

impl Registry {
    /// Lists a new connection until the returned guard drops.
    pub fn register(
        self: &Arc<Self>,
        protocol: &'static str,
        peer: Option<SocketAddr>,
        x509: Option<String>,
    ) -> Registered {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let info = Arc::new(ConnInfo {
            id,
            protocol,
            peer,
            x509,
            established: SystemTime::now(),
            session: AtomicU64::new(0),
            timeout_ms: AtomicU32::new(0),
            received: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            last_op: Mutex::new("NA"),
            latency: Latency::default(),
        });
        self.conns.lock().insert(id, info.clone());
        Registered {
            info,
            registry: self.clone(),
        }
    }

    pub fn list(&self) -> Vec<Arc<ConnInfo>> {
        self.conns.lock().values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.conns.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.conns.lock().is_empty()
    }

    /// Counts an answered request on a connection and server-wide.
    pub fn answered(&self, conn: &ConnInfo, op: &'static str, took: Option<Duration>) {
        conn.sent.fetch_add(1, Ordering::Relaxed);
        self.sent.fetch_add(1, Ordering::Relaxed);
        *conn.last_op.lock() = op;
        if let Some(d) = took {
            conn.latency.record(d);
            self.latency.record(d);
        }
    }

    /// Counts a received frame.
    pub fn received(&self, conn: &ConnInfo) {
        conn.received.fetch_add(1, Ordering::Relaxed);
        self.received.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_live_connections_and_latency() {
        let r = Arc::new(Registry::default());
        let a = r.register("zk", None, None);
        let b = r.register("grpc", None, None);
        assert_eq!(r.len(), 2);
        r.answered(&a.info, "get_data", Some(Duration::from_millis(2)));
        r.answered(&a.info, "get_data", Some(Duration::from_millis(4)));
        assert_eq!(a.info.latency.summary_ms(), (2.0, 3.0, 4.0));
        assert_eq!(r.sent.load(Ordering::Relaxed), 2);
        drop(b);
        let ids: Vec<u64> = r.list().iter().map(|c| c.id).collect();
        assert_eq!(ids, vec![a.info.id]);
    }
}
