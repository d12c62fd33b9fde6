//! Prometheus metrics, served as text on the admin port's `/metrics`.

use prometheus::{
    exponential_buckets, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry,
};

/// Every metric the server exports, registered once at start.
pub struct Metrics {
    pub registry: Registry,
    pub znodes: IntGauge,
    pub sessions: IntGauge,
    pub watches: IntGauge,
    pub connections: IntGauge,
    pub requests: IntCounterVec,
    pub request_errors: IntCounterVec,
    pub request_latency: HistogramVec,
    pub last_applied: IntGauge,
    pub last_log_index: IntGauge,
    pub fsync_latency: Histogram,
    pub fsync_batch: Histogram,
    pub watch_events: IntCounter,
    pub snapshots: IntCounter,
    pub snapshots_installed: IntCounter,
    pub committed: IntGauge,
    pub has_leader: IntGauge,
    pub leader_changes: IntCounter,
    pub elections: IntCounter,
    pub forwarded_writes: IntCounter,
    pub replication_lag: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let g = |name: &str, help: &str| IntGauge::new(name, help).expect("valid metric");
        let lat = exponential_buckets(0.000_05, 2.0, 18).expect("valid buckets");
        let m = Metrics {
            znodes: g("warden_znodes", "Number of znodes in the tree"),
            sessions: g("warden_sessions", "Number of open sessions"),
            watches: g("warden_watches", "Number of watch registrations"),
            connections: g("warden_connections", "Number of client connections"),
            requests: IntCounterVec::new(
                Opts::new("warden_requests_total", "Requests by operation"),
                &["op"],
            )
            .expect("valid metric"),
            request_errors: IntCounterVec::new(
                Opts::new(
                    "warden_request_errors_total",
                    "Failed requests by error code",
                ),
                &["code"],
            )
            .expect("valid metric"),
            request_latency: HistogramVec::new(
                HistogramOpts::new(
                    "warden_request_duration_seconds",
                    "Request latency by operation",
                )
                .buckets(lat.clone()),
                &["op"],
            )
            .expect("valid metric"),
            last_applied: g(
                "warden_last_applied_index",
                "Last log index applied to the tree (the zxid)",
            ),
            last_log_index: g(
                "warden_last_log_index",
                "Last log index appended to the log",
            ),
            fsync_latency: Histogram::with_opts(
                HistogramOpts::new("warden_fsync_duration_seconds", "Latency of log flushes")
                    .buckets(lat),
            )
            .expect("valid metric"),
            fsync_batch: Histogram::with_opts(
                HistogramOpts::new(
                    "warden_fsync_batch_txns",
                    "Txns made durable by one log flush (group commit)",
                )
                .buckets(exponential_buckets(1.0, 2.0, 12).expect("valid buckets")),
            )
            .expect("valid metric"),
            watch_events: IntCounter::new(
                "warden_watch_events_total",
                "Watch notifications sent to clients",
            )
            .expect("valid metric"),
            snapshots: IntCounter::new("warden_snapshots_total", "Snapshots taken")
                .expect("valid metric"),
            snapshots_installed: IntCounter::new(
                "warden_snapshots_installed_total",
                "Snapshots received from the leader and installed (catching up past the purged log)",
            )
            .expect("valid metric"),
            committed: g(
                "warden_committed_index",
                "Last log index known committed on this member",
            ),
            has_leader: g(
                "warden_has_leader",
                "1 when this member knows a leader, else 0",
            ),
            leader_changes: IntCounter::new(
                "warden_leader_changes_total",
                "Times the leader this member knows changed",
            )
            .expect("valid metric"),
            elections: IntCounter::new(
                "warden_elections_total",
                "Terms this member has seen begin (each is an election)",
            )
            .expect("valid metric"),
            forwarded_writes: IntCounter::new(
                "warden_forwarded_writes_total",
                "Writes this member forwarded to the leader",
            )
            .expect("valid metric"),
            replication_lag: IntGaugeVec::new(
                Opts::new(
                    "warden_replication_lag_entries",
                    "Log entries each follower is behind (reported by the leader)",
                ),
                &["peer"],
            )
            .expect("valid metric"),
            registry,
        };
        let r = &m.registry;
        for c in [
            Box::new(m.znodes.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.sessions.clone()),
            Box::new(m.watches.clone()),
            Box::new(m.connections.clone()),
            Box::new(m.requests.clone()),
            Box::new(m.request_errors.clone()),
            Box::new(m.request_latency.clone()),
            Box::new(m.last_applied.clone()),
            Box::new(m.last_log_index.clone()),
            Box::new(m.fsync_latency.clone()),
            Box::new(m.fsync_batch.clone()),
            Box::new(m.watch_events.clone()),
            Box::new(m.snapshots.clone()),
            Box::new(m.snapshots_installed.clone()),
            Box::new(m.committed.clone()),
            Box::new(m.has_leader.clone()),
            Box::new(m.leader_changes.clone()),
            Box::new(m.elections.clone()),
            Box::new(m.forwarded_writes.clone()),
            Box::new(m.replication_lag.clone()),
        ] {
            r.register(c).expect("metric registered once");
        }
        m
    }

    /// The registry in Prometheus text format.
    pub fn render(&self) -> String {
        let mut buf = String::new();
        let enc = prometheus::TextEncoder::new();
        if let Err(e) = enc.encode_utf8(&self.registry.gather(), &mut buf) {
            return format!("# encoding metrics failed: {e}\n");
        }
        buf
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
