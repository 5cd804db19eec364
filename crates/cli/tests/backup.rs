//! `berth backup` beside a server under continuous pushes: the copy starts
//! as a registry of its own, serves every image its snapshot lists, and
//! `berth fsck` finds it clean.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use support::{berth, check_holds, fill, filler, listing, pull_whole, push_image, Model, Server};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_pushes_serves_every_image_it_lists_and_is_clean() {
    let started = Instant::now();
    let root = tempfile::tempdir().unwrap();
    let (data, copy) = (root.path().join("data"), root.path().join("backup"));
    let server = Arc::new(Server::start(&data));
    let model = fill(&server, 6).await;

    // Pushes that never stop while the backup runs.
    let stop = Arc::new(AtomicBool::new(false));
    let pushes = {
        let (server, stop) = (server.clone(), stop.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut churn = Model::default();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let repo = format!("churn/r{}", i % 3);
                let layer = filler(&format!("churn-{i}"), 40 << 10);
                let tag = format!("t{i}");
                push_image(&client, &server, &mut churn, &repo, &[layer], &[&tag], None).await;
                i += 1;
            }
            i
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let out = {
        let (data, copy) = (data.clone(), copy.clone());
        tokio::task::spawn_blocking(move || {
            berth()
                .arg("backup")
                .arg(&copy)
                .arg("--data-dir")
                .arg(&data)
                .output()
                .unwrap()
        })
        .await
        .unwrap()
    };
    let backup_took = started.elapsed();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let pushed = pushes.await.unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("backed up"),
        "{}",
        text(&out.stdout)
    );

    let restored = Server::start(&copy);
    // Everything pushed before the backup began, and every image of the
    // snapshot, whole.
    check_holds(&restored, &model, true).await;
    let listed = listing(&restored).await;
    let churn_tags: usize = listed
        .iter()
        .filter(|(repo, _)| repo.starts_with("churn/"))
        .map(|(_, tags)| tags.len())
        .sum();
    assert!(churn_tags > 0, "no push landed before the snapshot");
    assert!(
        churn_tags < pushed,
        "pushes after the snapshot are in the copy?"
    );
    for (repo, tags) in &listed {
        for tag in tags {
            if repo.starts_with("churn/") {
                pull_whole(&restored, repo, tag).await;
            }
        }
    }
    restored.stop();

    let fsck = berth()
        .arg("fsck")
        .arg("--data-dir")
        .arg(&copy)
        .output()
        .unwrap();
    assert_eq!(
        fsck.status.code(),
        Some(0),
        "{}\n{}",
        text(&fsck.stdout),
        text(&fsck.stderr)
    );

    // A second backup into the same folder is refused.
    let again = berth()
        .arg("backup")
        .arg(&copy)
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2), "{}", text(&again.stderr));
    assert!(
        text(&again.stderr).contains("not empty"),
        "{}",
        text(&again.stderr)
    );
    drop(server);
    eprintln!("{}", text(&out.stdout).trim());
    eprintln!(
        "backup test took {:.1} s ({} pushes during it, {churn_tags} in the copy; backup done at {:.1} s)",
        started.elapsed().as_secs_f64(),
        pushed,
        backup_took.as_secs_f64()
    );
}

#[test]
fn a_registry_on_postgresql_is_refused_with_what_to_use_instead() {
    let root = tempfile::tempdir().unwrap();
    let config = root.path().join("shared.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n[metadata]\nurl = \"postgres://berth@127.0.0.1:1/berth\"\n",
            root.path().join("data").display().to_string()
        ),
    )
    .unwrap();
    let out = berth()
        .arg("backup")
        .arg(root.path().join("backup"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("berth migrate"),
        "{}",
        text(&out.stderr)
    );
    assert!(!root.path().join("backup").exists());
}
