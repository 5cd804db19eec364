//! After the load: the end state (two GC passes past the grace, then every
//! image that must be there pulled and verified, retention's result, nothing
//! left to reclaim), the figures, and the checks ending in `N passed, M failed`.

use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};

use super::collector::{reclaimable, Reclaimed};
use super::figures::{Failure, Figures};
use super::puller::{Expect, Puller};
use super::wire::send;
use super::{Ctx, GcSoakArgs};
use crate::http::{Chunks, Conn};

/// What the checks after the load found.
pub struct EndState {
    /// Outcome of each final `berth gc` (its last line, or why it failed).
    pub passes: Vec<Result<String, String>>,
    /// Pulls of every tagged image, counted apart from the load's.
    pub figures: Arc<Figures>,
    /// Images that had to pull in full.
    pub expected_pulls: u64,
    /// Retained repositories whose tags were not the newest `keep_last`.
    pub retention_wrong: Vec<String>,
    /// Retained repositories checked (all their pushes completed).
    pub retention_checked: usize,
    /// (blobs, bytes) the server still calls reclaimable; None if it does not say.
    pub reclaimable: Option<(u64, u64)>,
}

impl EndState {
    pub async fn check(ctx: Arc<Ctx>, a: &GcSoakArgs) -> EndState {
        // Past the grace and the untagged-manifest age, with a second for
        // touches the server flushes lazily.
        tokio::time::sleep(a.grace.max(a.untagged_after) + Duration::from_secs(1)).await;
        // A pass that removes manifests or tags (ours, or the background
        // worker's, which keeps running) restarts the grace of the blobs
        // they named: a delete gives its layers a full grace. So: passes a
        // grace apart until one removes nothing and the server has nothing
        // left to reclaim, at most eight.
        let mut passes = Vec::new();
        if let Some(gc) = &a.gc {
            for _ in 0..8 {
                let pass = gc.run(false).await;
                let removed = pass.as_ref().is_ok_and(|line| removed_anything(line));
                passes.push(pass);
                let left = reclaimable(&ctx.target, ctx.timeout).await;
                if !removed && left.is_none_or(|(blobs, _)| blobs == 0) {
                    break;
                }
                tokio::time::sleep(a.grace + Duration::from_secs(1)).await;
            }
        }
        let figures = Arc::new(Figures::default());
        let mut puller = Puller::new(usize::MAX >> 1, ctx.clone(), figures.clone());
        let mut expected_pulls = 0;
        for index in 0..ctx.model.slots.len() {
            for by_tag in [true, false] {
                if let Ok(true) = puller.pull_slot(index, by_tag).await {
                    expected_pulls += 1;
                }
            }
        }
        let mut retention_wrong = Vec::new();
        let mut retention_checked = 0;
        let mut conn = Conn::new(&ctx.target);
        for (index, r) in ctx.model.retained.iter().enumerate() {
            let c = r.completed();
            if c == 0 || r.may_be_gone(c, 1) {
                continue; // a push failed: which tags retention keeps is not known
            }
            retention_checked += 1;
            let want: Vec<String> = (c.saturating_sub(ctx.model.keep_last) + 1..=c)
                .map(|k| format!("t{k}"))
                .collect();
            let path = format!("/v2/{}/tags/list", r.repo);
            let got = match send(
                &mut conn,
                ctx.timeout,
                Method::GET,
                &path,
                &[],
                Chunks::empty(),
            )
            .await
            {
                Ok(reply) if reply.status == StatusCode::OK => serde_json::from_slice::<
                    serde_json::Value,
                >(&reply.body)
                .ok()
                .and_then(|v| serde_json::from_value::<Vec<String>>(v.get("tags")?.clone()).ok()),
                _ => None,
            };
            let mut sorted = got.clone().unwrap_or_default();
            sorted.sort_by_key(|t| t.trim_start_matches('t').parse::<u64>().unwrap_or(0));
            if got.is_none() || sorted != want {
                retention_wrong.push(format!("{}: tags {got:?}, want {want:?}", r.repo));
            }
            for k in c.saturating_sub(ctx.model.keep_last) + 1..=c {
                expected_pulls += 1;
                let _ = puller
                    .pull(&r.repo, &format!("t{k}"), Expect::Retained { index, k })
                    .await;
            }
        }
        EndState {
            passes,
            figures,
            expected_pulls,
            retention_wrong,
            retention_checked,
            reclaimable: reclaimable(&ctx.target, ctx.timeout).await,
        }
    }
}

struct Check {
    name: String,
    passed: bool,
}

pub struct Report {
    text: Vec<String>,
    checks: Vec<Check>,
    json: serde_json::Value,
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "?".into(), |v| v.to_string())
}

fn mb(v: Option<u64>) -> String {
    v.map_or_else(|| "?".into(), |v| format!("{:.1}", v as f64 / 1e6))
}

impl Report {
    pub fn new(
        f: &Figures,
        a: &GcSoakArgs,
        load_secs: f64,
        during: Option<Reclaimed>,
        after: Option<Reclaimed>,
        end: &EndState,
    ) -> Report {
        let g = Figures::get;
        let mut text = Vec::new();
        let mut checks = Vec::new();
        let mut check = |name: String, passed: bool| checks.push(Check { name, passed });

        let deletions = g(&f.deleted_manifests) + g(&f.deleted_tags);
        let gc_explicit = g(&f.gc_runs) + g(&f.gc_dry_runs);
        let during = during.unwrap_or_default();
        let after = after.unwrap_or_default();
        let events =
            g(&f.pushes) + g(&f.pulls) + deletions + gc_explicit + during.runs.unwrap_or(0);
        text.push(format!(
            "gc soak: {:.1} s of load, {} pushers, {} pullers, {} deleters, grace {:?}, untagged after {:?}; {} requests ({:.0}/s), {} events",
            load_secs, a.pushers, a.pullers, a.deleters, a.grace, a.untagged_after,
            g(&f.requests), g(&f.requests) as f64 / load_secs, events
        ));
        text.push(format!(
            "pushes {} ({} paused up to 1 s before the manifest PUT); blob HEADs {} present (upload skipped), {} absent; uploads {}, mounts {} (+{} fell back to upload); {:.2} GB pushed",
            g(&f.pushes), g(&f.paused_pushes), g(&f.heads_present), g(&f.heads_absent), g(&f.blobs_uploaded),
            g(&f.mounts), g(&f.mount_fallbacks), g(&f.bytes_pushed) as f64 / 1e9
        ));
        text.push(format!(
            "longest window from an image's first blob reported present to its manifest PUT: {} ms (a touch protects {} ms); manifests refused after that window: {} (not failures)",
            g(&f.longest_window_ms),
            super::pusher::protected_window(a.grace).as_millis(),
            g(&f.late_refusals)
        ));
        text.push(format!(
            "pulls {} verified in full ({} by tag, {} by digest; {} blobs, {:.2} GB); removed before the pull: {}, during it: {} (expected, not failures)",
            g(&f.pulls), g(&f.pulls_by_tag), g(&f.pulls_by_digest), g(&f.blobs_verified),
            g(&f.bytes_pulled) as f64 / 1e9, g(&f.gone), g(&f.gone_mid_pull)
        ));
        text.push(format!(
            "deletions {deletions} ({} manifests by digest, {} tags); explicit berth gc passes {} (+{} dry runs)",
            g(&f.deleted_manifests), g(&f.deleted_tags), g(&f.gc_runs), g(&f.gc_dry_runs)
        ));
        text.push(format!(
            "collector during the load: {} passes, removed {} blobs ({} MB), {} manifests, {} tags, {} links",
            opt(during.runs), opt(during.blobs), mb(during.bytes), opt(during.manifests), opt(during.tags), opt(during.links)
        ));
        text.push(format!(
            "collector in all, with the final passes: {} passes, {} blobs ({} MB), {} manifests, {} tags, {} links",
            opt(after.runs), opt(after.blobs), mb(after.bytes), opt(after.manifests), opt(after.tags), opt(after.links)
        ));
        for (i, p) in end.passes.iter().enumerate() {
            text.push(format!(
                "final berth gc #{}: {}",
                i + 1,
                match p {
                    Ok(l) | Err(l) => l,
                }
            ));
        }
        for s in f.samples().iter().chain(&end.figures.samples()) {
            text.push(format!("error: {s}"));
        }
        for w in &end.retention_wrong {
            text.push(format!("retention: {w}"));
        }

        for class in [
            Failure::ManifestBlobUnknown,
            Failure::BlobUnknown,
            Failure::DigestMismatch,
            Failure::ManifestLost,
        ] {
            let n = f.failures(class);
            check(format!("zero {} ({n})", class.name()), n == 0);
        }
        let other = f.failures(Failure::Other) + f.failures(Failure::GcRun);
        check(
            format!("no other failed request or berth gc run ({other})"),
            other == 0,
        );
        let work = [
            ("pushes", g(&f.pushes)),
            ("HEADs answered 200", g(&f.heads_present)),
            ("paused pushes", g(&f.paused_pushes)),
            ("pulls by tag", g(&f.pulls_by_tag)),
            ("pulls by digest", g(&f.pulls_by_digest)),
            ("manifest deletes", g(&f.deleted_manifests)),
            ("tag deletes", g(&f.deleted_tags)),
        ];
        let idle: Vec<&str> = work
            .iter()
            .filter(|(_, n)| *n == 0)
            .map(|(k, _)| *k)
            .collect();
        check(
            format!("every kind of work done (missing: {idle:?})"),
            idle.is_empty(),
        );
        if a.gc.is_some() {
            check(
                format!(
                    "explicit berth gc passes ran during the load ({})",
                    g(&f.gc_runs)
                ),
                g(&f.gc_runs) > 0,
            );
            let ok = end.passes.iter().filter(|p| p.is_ok()).count();
            let all = end.passes.len();
            check(
                format!("final berth gc passes succeeded ({ok} of {all})"),
                ok == all && all > 0,
            );
        }
        let worker_runs = during
            .runs
            .unwrap_or(0)
            .saturating_sub(g(&f.gc_runs) + g(&f.gc_dry_runs));
        check(
            format!("the collector reclaimed space during the load ({} blobs, {} MB; worker passes ~{worker_runs})", opt(during.blobs), mb(during.bytes)),
            during.bytes.unwrap_or(0) > 0 && during.blobs.unwrap_or(0) > 0,
        );
        let endf = &end.figures;
        let end_failed: u64 = Failure::ALL.iter().map(|&c| endf.failures(c)).sum();
        check(
            format!(
                "after the final passes every image that must be there pulls in full ({} of {}, {} failed)",
                g(&endf.pulls), end.expected_pulls, end_failed
            ),
            end_failed == 0 && g(&endf.pulls) == end.expected_pulls && end.expected_pulls > 0,
        );
        if a.retained > 0 {
            check(
                format!(
                    "retention kept exactly the newest {} tags ({} of {} repositories checked wrong)",
                    a.keep_last, end.retention_wrong.len(), end.retention_checked
                ),
                end.retention_wrong.is_empty() && end.retention_checked > 0,
            );
        }
        match end.reclaimable {
            Some((blobs, bytes)) => check(
                format!(
                    "nothing left to reclaim after the final passes ({blobs} blobs, {bytes} bytes)"
                ),
                blobs == 0,
            ),
            None => check("GET /api/v1/gc reports what is reclaimable".into(), false),
        }
        check(
            "server still running".into(),
            super::super::rss::vm_rss_kib(a.server_pid).is_some(),
        );
        if let Some(path) = &a.server_log {
            match super::super::verdict::scan_log(path) {
                Some((panics, noisy, first)) => {
                    text.push(format!("server log: {noisy} WARN/ERROR lines"));
                    text.extend(first.into_iter().map(|l| format!("  {l}")));
                    check(
                        format!("no panic in the server log ({panics})"),
                        panics == 0,
                    );
                }
                None => check(format!("server log {} readable", path.display()), false),
            }
        }

        let json = serde_json::json!({
            "cmd": "gc-soak", "load_s": load_secs, "requests": g(&f.requests), "events": events,
            "pushes": g(&f.pushes), "paused_pushes": g(&f.paused_pushes), "heads_present": g(&f.heads_present),
            "heads_absent": g(&f.heads_absent), "blobs_uploaded": g(&f.blobs_uploaded), "mounts": g(&f.mounts),
            "mount_fallbacks": g(&f.mount_fallbacks), "bytes_pushed": g(&f.bytes_pushed),
            "pulls": g(&f.pulls), "pulls_by_tag": g(&f.pulls_by_tag), "pulls_by_digest": g(&f.pulls_by_digest),
            "blobs_verified": g(&f.blobs_verified), "bytes_pulled": g(&f.bytes_pulled),
            "gone": g(&f.gone), "gone_mid_pull": g(&f.gone_mid_pull),
            "deleted_manifests": g(&f.deleted_manifests), "deleted_tags": g(&f.deleted_tags),
            "longest_window_ms": g(&f.longest_window_ms), "late_refusals": g(&f.late_refusals),
            "gc_runs": g(&f.gc_runs), "gc_dry_runs": g(&f.gc_dry_runs),
            "collector_during": { "runs": during.runs, "blobs": during.blobs, "bytes": during.bytes, "manifests": during.manifests, "tags": during.tags, "links": during.links },
            "collector_total": { "runs": after.runs, "blobs": after.blobs, "bytes": after.bytes, "manifests": after.manifests, "tags": after.tags, "links": after.links },
            "failures": Failure::ALL.iter().map(|&c| (c.name(), f.failures(c))).collect::<std::collections::BTreeMap<_, _>>(),
            "error_samples": f.samples(),
            "checks": checks.iter().map(|c| serde_json::json!({"check": c.name, "passed": c.passed})).collect::<Vec<_>>(),
        });
        Report { text, checks, json }
    }

    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    pub fn json(&self) -> &serde_json::Value {
        &self.json
    }

    pub fn print(&self) {
        for l in &self.text {
            println!("{l}");
        }
        for c in &self.checks {
            println!("{} {}", if c.passed { "PASS" } else { "FAIL" }, c.name);
        }
        let passed = self.checks.iter().filter(|c| c.passed).count();
        println!("{passed} passed, {} failed", self.checks.len() - passed);
    }
}

/// Whether a `berth gc` summary (`removed 3 blobs (1 KiB), 2 manifests, 0
/// tags, 1 link, 0 uploads in 0.1 s`) says anything went.
fn removed_anything(summary: &str) -> bool {
    summary
        .split(',')
        .filter_map(|part| {
            let part = part.trim().trim_start_matches("removed ");
            part.split_whitespace().next()?.parse::<u64>().ok()
        })
        .any(|n| n > 0)
}

#[cfg(test)]
mod final_pass_tests {
    use super::removed_anything;

    #[test]
    fn a_summary_that_removed_anything_asks_for_another_pass() {
        assert!(removed_anything(
            "removed 2607 blobs (18.0 MiB), 221 manifests, 0 tags, 1500 links, 0 uploads in 0.7 s"
        ));
        assert!(removed_anything(
            "removed 0 blobs (0 B), 0 manifests, 1 tag, 0 links, 0 uploads in 0.0 s"
        ));
        assert!(removed_anything(
            "removed 0 blobs (0 B), 0 manifests, 0 tags, 3 links, 0 uploads in 0.0 s"
        ));
        assert!(!removed_anything(
            "removed 0 blobs (0 B), 0 manifests, 0 tags, 0 links, 0 uploads in 0.0 s"
        ));
    }
}
