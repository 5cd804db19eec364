//! berth's Prometheus metrics: every family registered once at start, and
//! the series a request bumps found by indexing a table with its method,
//! endpoint and status: no hashing, no lock on the family, no label strings
//! built per request.

mod pull_through;

pub use pull_through::{CacheFigures, UpstreamFigures};

use crate::route::Endpoint;
use axum::http::{Method, StatusCode};
use berth_registry::gc::GcStatus;
use berth_registry::policy::QuotaUse;
use berth_registry::StoreStats;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::fmt::Write;
use std::sync::atomic::AtomicU64;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Upper bounds of the request duration buckets, in seconds: manifest hits
/// take tens of microseconds, large blob pushes seconds.
const DURATION_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0,
];

/// Status codes berth commonly answers, each with a slot in a route's
/// table; others are counted through a lookup in the family.
const COMMON_STATUSES: [u16; 16] = [
    200, 201, 202, 204, 206, 301, 307, 400, 403, 404, 405, 413, 416, 429, 500, 503,
];

const METHODS: usize = MethodLabel::Other as usize + 1;
const ENDPOINTS: usize = Endpoint::Unmatched as usize + 1;

/// One (method, endpoint)'s series, resolved on its first request.
struct RouteSeries {
    duration: Histogram,
    by_status: [OnceLock<Counter>; COMMON_STATUSES.len()],
}

/// An HTTP method as a label; methods berth does not serve share one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MethodLabel {
    Get,
    Head,
    Put,
    Post,
    Patch,
    Delete,
    Options,
    Other,
}

impl From<&Method> for MethodLabel {
    fn from(method: &Method) -> Self {
        match *method {
            Method::GET => MethodLabel::Get,
            Method::HEAD => MethodLabel::Head,
            Method::PUT => MethodLabel::Put,
            Method::POST => MethodLabel::Post,
            Method::PATCH => MethodLabel::Patch,
            Method::DELETE => MethodLabel::Delete,
            Method::OPTIONS => MethodLabel::Options,
            _ => MethodLabel::Other,
        }
    }
}

impl EncodeLabelValue for MethodLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(match self {
            MethodLabel::Get => "GET",
            MethodLabel::Head => "HEAD",
            MethodLabel::Put => "PUT",
            MethodLabel::Post => "POST",
            MethodLabel::Patch => "PATCH",
            MethodLabel::Delete => "DELETE",
            MethodLabel::Options => "OPTIONS",
            MethodLabel::Other => "other",
        })
    }
}

impl EncodeLabelValue for Endpoint {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.template())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    method: MethodLabel,
    route: Endpoint,
    status: u16,
}

/// What a GC pass removes, as a label of `berth_gc_removed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)] // label values as written
enum RemovedKind {
    blob,
    manifest,
    tag,
    link,
    upload,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RemovedLabels {
    kind: RemovedKind,
}

/// What the collector has done since the process started and what its
/// last pass found, as `/metrics` shows it; `None` where nothing is known
/// yet (no pass, a scan that failed).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GcFigures {
    pub runs: u64,
    pub bytes_removed: u64,
    pub blobs_removed: u64,
    pub manifests_removed: u64,
    pub tags_removed: u64,
    pub links_removed: u64,
    pub uploads_removed: u64,
    /// Candidates the last pass (dry or not) found.
    pub candidates: Option<u64>,
    /// Bytes unreferenced now, whatever their age.
    pub reclaimable_bytes: Option<u64>,
    pub last_duration_seconds: Option<f64>,
    /// When the last pass started, in seconds since the Unix epoch.
    pub last_started_at: Option<i64>,
}

impl GcFigures {
    /// The figures of the collector's `status`, with what it could reclaim
    /// (a table scan the caller may have skipped or cached).
    pub fn new(status: &GcStatus, reclaimable_bytes: Option<u64>) -> GcFigures {
        let last = status.last.as_ref();
        GcFigures {
            runs: status.totals.runs,
            bytes_removed: status.totals.bytes_removed,
            blobs_removed: status.totals.blobs_removed,
            manifests_removed: status.totals.manifests_removed,
            tags_removed: status.totals.tags_removed,
            links_removed: status.totals.links_removed,
            uploads_removed: status.totals.uploads_removed,
            candidates: last.map(|report| report.candidates),
            reclaimable_bytes,
            last_duration_seconds: last.map(|report| report.took_ms as f64 / 1000.0),
            last_started_at: last.map(|report| report.started_at),
        }
    }
}

/// The GC families.
struct GcMetrics {
    runs: Counter,
    reclaimed_bytes: Counter,
    removed: Family<RemovedLabels, Counter>,
    candidates: Gauge,
    reclaimable_bytes: Gauge,
    last_duration: Gauge<f64, AtomicU64>,
    last_timestamp: Gauge,
}

impl GcMetrics {
    fn register(registry: &mut Registry) -> GcMetrics {
        let gc = GcMetrics {
            runs: Counter::default(),
            reclaimed_bytes: Counter::default(),
            removed: Family::default(),
            candidates: Gauge::default(),
            reclaimable_bytes: Gauge::default(),
            last_duration: Gauge::default(),
            last_timestamp: Gauge::default(),
        };
        registry.register(
            "berth_gc_runs",
            "Garbage collection passes completed since the process started (dry runs not counted)",
            gc.runs.clone(),
        );
        registry.register_with_unit(
            "berth_gc_reclaimed",
            "Bytes of blobs garbage collection deleted since the process started",
            Unit::Bytes,
            gc.reclaimed_bytes.clone(),
        );
        registry.register(
            "berth_gc_removed",
            "What garbage collection removed since the process started, by kind",
            gc.removed.clone(),
        );
        registry.register(
            "berth_gc_candidates",
            "Unreferenced blobs past their grace that the last pass found",
            gc.candidates.clone(),
        );
        registry.register_with_unit(
            "berth_gc_reclaimable",
            "Bytes of blobs no manifest references now, whatever their age: what GC frees once grace passes",
            Unit::Bytes,
            gc.reclaimable_bytes.clone(),
        );
        registry.register_with_unit(
            "berth_gc_last_run_duration",
            "How long the last garbage collection pass took",
            Unit::Seconds,
            gc.last_duration.clone(),
        );
        registry.register_with_unit(
            "berth_gc_last_run_timestamp",
            "When the last garbage collection pass started, in seconds since the Unix epoch",
            Unit::Seconds,
            gc.last_timestamp.clone(),
        );
        gc
    }

    fn show(&self, figures: &GcFigures) {
        raise(&self.runs, figures.runs);
        raise(&self.reclaimed_bytes, figures.bytes_removed);
        let kinds = [
            (RemovedKind::blob, figures.blobs_removed),
            (RemovedKind::manifest, figures.manifests_removed),
            (RemovedKind::tag, figures.tags_removed),
            (RemovedKind::link, figures.links_removed),
            (RemovedKind::upload, figures.uploads_removed),
        ];
        for (kind, total) in kinds {
            raise(&self.removed.get_or_create(&RemovedLabels { kind }), total);
        }
        let set = |gauge: &Gauge, n: Option<u64>| {
            if let Some(n) = n {
                gauge.set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        };
        set(&self.candidates, figures.candidates);
        set(&self.reclaimable_bytes, figures.reclaimable_bytes);
        if let Some(seconds) = figures.last_duration_seconds {
            self.last_duration.set(seconds);
        }
        if let Some(at) = figures.last_started_at {
            self.last_timestamp.set(at);
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RepositoryLabels {
    repository: String,
}

type PerRepository = Family<RepositoryLabels, Gauge>;

/// The quota families: one series per repository that has a quota (a
/// bounded set: the configured patterns decide it), rebuilt at each scrape
/// so that a repository deleted or no longer under a quota disappears.
struct QuotaMetrics {
    used_bytes: PerRepository,
    limit_bytes: PerRepository,
    used_tags: PerRepository,
    limit_tags: PerRepository,
}

impl QuotaMetrics {
    fn register(registry: &mut Registry) -> QuotaMetrics {
        let quota = QuotaMetrics {
            used_bytes: Family::default(),
            limit_bytes: Family::default(),
            used_tags: Family::default(),
            limit_tags: Family::default(),
        };
        registry.register_with_unit(
            "berth_quota_used",
            "What a repository under a quota stores: its manifests and the distinct blobs they name",
            Unit::Bytes,
            quota.used_bytes.clone(),
        );
        registry.register_with_unit(
            "berth_quota_limit",
            "A repository's quota in bytes (repositories with a byte limit only)",
            Unit::Bytes,
            quota.limit_bytes.clone(),
        );
        registry.register(
            "berth_quota_used_tags",
            "Tags of a repository under a quota",
            quota.used_tags.clone(),
        );
        registry.register(
            "berth_quota_limit_tags",
            "A repository's quota in tags (repositories with a tag limit only)",
            quota.limit_tags.clone(),
        );
        quota
    }

    fn show(&self, quotas: &[QuotaUse]) {
        for family in [
            &self.used_bytes,
            &self.limit_bytes,
            &self.used_tags,
            &self.limit_tags,
        ] {
            family.clear();
        }
        let set = |family: &PerRepository, repository: &str, n: u64| {
            let labels = RepositoryLabels {
                repository: repository.to_string(),
            };
            family
                .get_or_create(&labels)
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        };
        for quota in quotas {
            let repository = quota.repository.as_str();
            set(&self.used_bytes, repository, quota.used_bytes);
            set(&self.used_tags, repository, quota.tags);
            if let Some(max) = quota.max_bytes {
                set(&self.limit_bytes, repository, max);
            }
            if let Some(max) = quota.max_tags {
                set(&self.limit_tags, repository, max);
            }
        }
    }
}

/// Brings a counter up to `total`, a count kept elsewhere.
fn raise(counter: &Counter, total: u64) {
    let shown = counter.get();
    if total > shown {
        counter.inc_by(total - shown);
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TimingLabels {
    method: MethodLabel,
    route: Endpoint,
}

type Durations = Family<TimingLabels, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// Every metric berth exports, and the registry that renders them.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Durations,
    /// Handles into `requests` and `durations`, by method and endpoint.
    resolved: Box<[OnceLock<RouteSeries>]>,
    pushed: Counter,
    pulled: Counter,
    connections: Gauge,
    uploads: Gauge,
    repositories: Gauge,
    manifests: Gauge,
    blobs: Gauge,
    blob_bytes: Gauge,
    bcrypt_verifications: Counter,
    gc: GcMetrics,
    quota: QuotaMetrics,
    pull_through: pull_through::PullThroughMetrics,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "berth_http_requests",
            "HTTP requests answered, by method, route template and status code",
            requests.clone(),
        );
        let durations = Durations::new_with_constructor(duration_histogram as fn() -> Histogram);
        registry.register_with_unit(
            "berth_http_request_duration",
            "Time from a request's arrival to its response head, by method and route template",
            Unit::Seconds,
            durations.clone(),
        );
        let pushed = Counter::default();
        registry.register_with_unit(
            "berth_pushed",
            "Bytes received in blob upload bodies (POST, PATCH, PUT), accepted or not",
            Unit::Bytes,
            pushed.clone(),
        );
        let pulled = Counter::default();
        registry.register_with_unit(
            "berth_pulled",
            "Bytes of blob bodies served: the Content-Length of each 200 or 206 answer to a blob GET",
            Unit::Bytes,
            pulled.clone(),
        );
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let gauge = Gauge::default();
            registry.register(name, help, gauge.clone());
            gauge
        };
        let connections = gauge(
            &mut registry,
            "berth_connections_open",
            "Client connections open now",
        );
        let uploads = gauge(
            &mut registry,
            "berth_uploads_in_progress",
            "Upload sessions started and not yet finished, cancelled or expired",
        );
        let repositories = gauge(
            &mut registry,
            "berth_repositories",
            "Repositories holding at least one manifest (those the catalog lists)",
        );
        let manifests = gauge(
            &mut registry,
            "berth_manifests",
            "Manifests stored, once per repository holding them",
        );
        let blobs = gauge(
            &mut registry,
            "berth_blobs",
            "Distinct blobs linked to any repository",
        );
        let blob_bytes = Gauge::default();
        registry.register_with_unit(
            "berth_blobs_stored",
            "Size of the distinct blobs linked to any repository, each counted once",
            Unit::Bytes,
            blob_bytes.clone(),
        );
        let bcrypt_verifications = Counter::default();
        registry.register(
            "berth_auth_bcrypt_verifications",
            "Passwords checked with bcrypt (a credential cache miss); 0 with auth off",
            bcrypt_verifications.clone(),
        );
        let gc = GcMetrics::register(&mut registry);
        let quota = QuotaMetrics::register(&mut registry);
        let pull_through = pull_through::PullThroughMetrics::register(&mut registry);
        let started: Gauge<f64, AtomicU64> = Gauge::default();
        started.set(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
        );
        registry.register_with_unit(
            "process_start_time",
            "When the berth process started, in seconds since the Unix epoch",
            Unit::Seconds,
            started,
        );
        Metrics {
            registry,
            requests,
            durations,
            resolved: (0..METHODS * ENDPOINTS).map(|_| OnceLock::new()).collect(),
            pushed,
            pulled,
            connections,
            uploads,
            repositories,
            manifests,
            blobs,
            blob_bytes,
            bcrypt_verifications,
            gc,
            quota,
            pull_through,
        }
    }

    /// Brings `berth_auth_bcrypt_verifications_total` up to `total`, the
    /// count `berth_auth` keeps.
    pub fn sync_bcrypt_verifications(&self, total: u64) {
        raise(&self.bcrypt_verifications, total);
    }

    /// Shows the collector's figures from the next render on.
    pub fn show_gc(&self, figures: &GcFigures) {
        self.gc.show(figures);
    }

    /// Shows these repositories' quota use (and only these) from the next
    /// render on.
    pub fn show_quotas(&self, quotas: &[QuotaUse]) {
        self.quota.show(quotas);
    }

    /// Shows the pull-through cache's figures from the next render on.
    pub fn show_cache(&self, figures: &CacheFigures) {
        self.pull_through.show(figures);
    }

    /// Counts one answered request and how long its answer took.
    pub fn observe(&self, method: &Method, route: Endpoint, status: StatusCode, took: Duration) {
        let method = MethodLabel::from(method);
        let labels = || RequestLabels {
            method,
            route,
            status: status.as_u16(),
        };
        let Some(series) = self
            .resolved
            .get(method as usize * ENDPOINTS + route as usize)
        else {
            self.requests.get_or_create(&labels()).inc();
            return;
        };
        let series = series.get_or_init(|| RouteSeries {
            duration: self
                .durations
                .get_or_create(&TimingLabels { method, route })
                .clone(),
            by_status: Default::default(),
        });
        series.duration.observe(took.as_secs_f64());
        let slot = COMMON_STATUSES
            .iter()
            .position(|&s| s == status.as_u16())
            .and_then(|i| series.by_status.get(i));
        match slot {
            Some(slot) => slot
                .get_or_init(|| self.requests.get_or_create(&labels()).clone())
                .inc(),
            None => self.requests.get_or_create(&labels()).inc(),
        };
    }

    /// The counter of upload body bytes, for the body wrapper to bump.
    pub fn pushed(&self) -> &Counter {
        &self.pushed
    }

    pub fn count_pulled(&self, bytes: u64) {
        self.pulled.inc_by(bytes);
    }

    /// Counts a connection open until the guard drops.
    pub fn connection_opened(&self) -> ConnectionGuard {
        self.connections.inc();
        ConnectionGuard(self.connections.clone())
    }

    /// The text exposition (OpenMetrics 1.0) with the store totals given.
    pub fn render(&self, stats: Option<&StoreStats>) -> Result<String, std::fmt::Error> {
        if let Some(stats) = stats {
            let set = |gauge: &Gauge, n: u64| gauge.set(i64::try_from(n).unwrap_or(i64::MAX));
            set(&self.uploads, stats.uploads);
            set(&self.repositories, stats.repositories);
            set(&self.manifests, stats.manifests);
            set(&self.blobs, stats.blobs);
            set(&self.blob_bytes, stats.blob_bytes);
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// Holds one count in `berth_connections_open`.
pub struct ConnectionGuard(Gauge);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_under_their_route_template_and_rendered_in_order() {
        let metrics = Metrics::new();
        for _ in 0..3 {
            metrics.observe(
                &Method::GET,
                Endpoint::Manifest,
                StatusCode::OK,
                Duration::from_micros(80),
            );
        }
        metrics.observe(
            &Method::PATCH,
            Endpoint::Upload,
            StatusCode::ACCEPTED,
            Duration::from_millis(30),
        );
        // A status outside the table, and a method outside the usual ones.
        for method in [Method::GET, Method::from_bytes(b"PROPFIND").unwrap()] {
            metrics.observe(
                &method,
                Endpoint::Unmatched,
                StatusCode::IM_A_TEAPOT,
                Duration::ZERO,
            );
        }
        metrics.pushed().inc_by(10);
        metrics.count_pulled(7);
        let guard = metrics.connection_opened();
        let text = metrics
            .render(Some(&StoreStats {
                repositories: 2,
                manifests: 3,
                blobs: 4,
                blob_bytes: 5,
                uploads: 1,
            }))
            .unwrap();
        let has = |line: &str| assert!(text.lines().any(|l| l == line), "{line}\n{text}");
        has(
            r#"berth_http_requests_total{method="GET",route="/v2/{name}/manifests/{reference}",status="200"} 3"#,
        );
        has(
            r#"berth_http_requests_total{method="PATCH",route="/v2/{name}/blobs/uploads/{id}",status="202"} 1"#,
        );
        has(
            r#"berth_http_request_duration_seconds_bucket{le="0.0001",method="GET",route="/v2/{name}/manifests/{reference}"} 3"#,
        );
        has(
            r#"berth_http_request_duration_seconds_bucket{le="0.025",method="PATCH",route="/v2/{name}/blobs/uploads/{id}"} 0"#,
        );
        has(
            r#"berth_http_request_duration_seconds_bucket{le="0.05",method="PATCH",route="/v2/{name}/blobs/uploads/{id}"} 1"#,
        );
        has(r#"berth_http_requests_total{method="GET",route="unmatched",status="418"} 1"#);
        has(r#"berth_http_requests_total{method="other",route="unmatched",status="418"} 1"#);
        has("berth_pushed_bytes_total 10");
        has("berth_pulled_bytes_total 7");
        has("berth_connections_open 1");
        has("berth_uploads_in_progress 1");
        has("berth_repositories 2");
        has("berth_manifests 3");
        has("berth_blobs 4");
        has("berth_blobs_stored_bytes 5");
        has("# EOF");
        drop(guard);
        let text = metrics.render(None).unwrap();
        assert!(text.lines().any(|l| l == "berth_connections_open 0"));
        assert!(text.lines().any(|l| l == "berth_repositories 2"), "kept");
    }

    #[test]
    fn quota_use_is_shown_per_repository_and_only_for_repositories_under_a_quota_now() {
        let metrics = Metrics::new();
        metrics.show_quotas(&[
            QuotaUse {
                repository: "team/app".into(),
                used_bytes: 2048,
                max_bytes: Some(10 << 30),
                tags: 3,
                max_tags: None,
            },
            QuotaUse {
                repository: "gone".into(),
                used_bytes: 1,
                max_bytes: None,
                tags: 1,
                max_tags: Some(5),
            },
        ]);
        let text = metrics.render(None).unwrap();
        let has =
            |text: &str, line: &str| assert!(text.lines().any(|l| l == line), "{line}\n{text}");
        has(
            &text,
            r#"berth_quota_used_bytes{repository="team/app"} 2048"#,
        );
        has(
            &text,
            r#"berth_quota_limit_bytes{repository="team/app"} 10737418240"#,
        );
        has(&text, r#"berth_quota_used_tags{repository="team/app"} 3"#);
        has(&text, r#"berth_quota_limit_tags{repository="gone"} 5"#);
        assert!(!text.contains(r#"berth_quota_limit_tags{repository="team/app"}"#));
        assert!(!text.contains(r#"berth_quota_limit_bytes{repository="gone"}"#));
        metrics.show_quotas(&[QuotaUse {
            repository: "team/app".into(),
            used_bytes: 4096,
            max_bytes: Some(10 << 30),
            tags: 4,
            max_tags: None,
        }]);
        let text = metrics.render(None).unwrap();
        has(
            &text,
            r#"berth_quota_used_bytes{repository="team/app"} 4096"#,
        );
        assert!(!text.contains(r#"repository="gone""#), "{text}");
    }

    #[test]
    fn gc_figures_are_shown_under_the_design_s_names_and_counters_only_grow() {
        let metrics = Metrics::new();
        let text = metrics.render(None).unwrap();
        assert!(text.contains("berth_gc_runs_total 0"), "{text}");
        let figures = GcFigures {
            runs: 2,
            bytes_removed: 4096,
            blobs_removed: 3,
            manifests_removed: 1,
            tags_removed: 0,
            links_removed: 5,
            uploads_removed: 0,
            candidates: Some(4),
            reclaimable_bytes: Some(1000),
            last_duration_seconds: Some(0.25),
            last_started_at: Some(1_700_000_000),
        };
        metrics.show_gc(&figures);
        let text = metrics.render(None).unwrap();
        let has = |line: &str| assert!(text.lines().any(|l| l == line), "{line}\n{text}");
        has("berth_gc_runs_total 2");
        has("berth_gc_reclaimed_bytes_total 4096");
        has(r#"berth_gc_removed_total{kind="blob"} 3"#);
        has(r#"berth_gc_removed_total{kind="manifest"} 1"#);
        has(r#"berth_gc_removed_total{kind="tag"} 0"#);
        has(r#"berth_gc_removed_total{kind="link"} 5"#);
        has(r#"berth_gc_removed_total{kind="upload"} 0"#);
        has("berth_gc_candidates 4");
        has("berth_gc_reclaimable_bytes 1000");
        has("berth_gc_last_run_duration_seconds 0.25");
        has("berth_gc_last_run_timestamp_seconds 1700000000");
        // A smaller total (never: totals only grow) does not lower a counter.
        metrics.show_gc(&GcFigures { runs: 1, ..figures });
        let text = metrics.render(None).unwrap();
        assert!(text.lines().any(|l| l == "berth_gc_runs_total 2"), "{text}");
    }

    #[test]
    fn pull_through_figures_are_per_upstream_and_the_limit_shows_only_when_set() {
        let metrics = Metrics::new();
        let sampled = |text: &str, name: &str| {
            text.lines()
                .any(|l| l.starts_with(&format!("{name} ")) || l.starts_with(&format!("{name}{{")))
        };
        let text = metrics.render(None).unwrap();
        assert!(!sampled(&text, "berth_pull_through_max_bytes"), "{text}");
        assert!(!sampled(&text, "berth_pull_through_cached_bytes"), "{text}");
        let hub = UpstreamFigures {
            upstream: "docker.io".into(),
            hits: 5,
            misses: 2,
            stale: 1,
            errors: 3,
            fetched_bytes: 4096,
        };
        metrics.show_cache(&CacheFigures {
            upstreams: vec![
                hub.clone(),
                UpstreamFigures {
                    upstream: "proxy".into(),
                    ..Default::default()
                },
            ],
            cached_bytes: Some(8192),
            max_bytes: None,
        });
        let text = metrics.render(None).unwrap();
        let has =
            |text: &str, line: &str| assert!(text.lines().any(|l| l == line), "{line}\n{text}");
        has(
            &text,
            r#"berth_pull_through_hits_total{upstream="docker.io"} 5"#,
        );
        has(
            &text,
            r#"berth_pull_through_misses_total{upstream="docker.io"} 2"#,
        );
        has(
            &text,
            r#"berth_pull_through_stale_total{upstream="docker.io"} 1"#,
        );
        has(
            &text,
            r#"berth_pull_through_upstream_errors_total{upstream="docker.io"} 3"#,
        );
        has(
            &text,
            r#"berth_pull_through_fetched_bytes_total{upstream="docker.io"} 4096"#,
        );
        has(
            &text,
            r#"berth_pull_through_hits_total{upstream="proxy"} 0"#,
        );
        has(&text, "berth_pull_through_cached_bytes 8192");
        assert!(!sampled(&text, "berth_pull_through_max_bytes"), "{text}");
        metrics.show_cache(&CacheFigures {
            upstreams: vec![UpstreamFigures { hits: 9, ..hub }],
            cached_bytes: Some(100),
            max_bytes: Some(1 << 30),
        });
        let text = metrics.render(None).unwrap();
        has(
            &text,
            r#"berth_pull_through_hits_total{upstream="docker.io"} 9"#,
        );
        has(&text, "berth_pull_through_cached_bytes 100");
        has(&text, "berth_pull_through_max_bytes 1073741824");
    }
}
