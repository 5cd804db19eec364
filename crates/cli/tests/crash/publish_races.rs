//! Two pushes of one blob at once: the second finds the first's file already
//! in place. Its 201 must wait until that file's name is durable, whoever
//! made it so. Directory fsyncs are made slow (as on a busy disk), the power
//! goes the moment the second push is acknowledged, and the blob must be
//! there after the crash.

use crate::client::{sha256_digest, Client, Rng};
use crate::server::{mount_crashfs, Berth};
use std::time::Duration;

const DIR_SYNC: Duration = Duration::from_millis(2500);
const FILE_SYNC: Duration = Duration::from_millis(5);
/// When the second push starts: the first has renamed its file into place
/// and is waiting on the directory fsync.
const SECOND_PUSH_AFTER: Duration = Duration::from_millis(800);

/// A blob whose digest's fan-out folder (its first two hex digits) is `prefix`.
fn blob_in_fan_out(rng: &mut Rng, prefix: &str) -> Vec<u8> {
    loop {
        let blob = rng.bytes(4096);
        if sha256_digest(&blob)["sha256:".len()..].starts_with(prefix) {
            return blob;
        }
    }
}

/// Pushes `blob` twice, the second push overlapping the first's directory
/// fsync; the power goes at the second 201. Returns whether the blob
/// survived the crash, and berth's stderr.
async fn race_then_crash(prepare_fan_out: bool) {
    let mount = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let Some(mut fs) = mount_crashfs(mount.path(), 1 << 30) else {
        return;
    };
    let data = mount.path().join("berth");
    let berth = Berth::start(&data, logs.path(), &[])
        .await
        .unwrap_or_else(|e| panic!("berth did not start: {e}"));
    let client = Client::new(berth.addr);
    let mut rng = Rng::new(42);
    let blob = rng.bytes(100_000);
    let digest = sha256_digest(&blob);
    if prepare_fan_out {
        // Another blob in the same fan-out folder, durable before the race:
        // only the existing-destination path is left to get wrong.
        let neighbour = blob_in_fan_out(&mut rng, &digest["sha256:".len()..][..2]);
        client.push_monolithic("race/a", &neighbour).await.unwrap();
    }
    fs.set_fsync_delays(FILE_SYNC, DIR_SYNC);

    let first = tokio::spawn({
        let (client, blob) = (client.clone(), blob.clone());
        async move { client.push_monolithic("race/a", &blob).await }
    });
    tokio::time::sleep(SECOND_PUSH_AFTER).await;
    let second = tokio::time::timeout(
        Duration::from_secs(30),
        client.push_monolithic("race/b", &blob),
    )
    .await
    .expect("the second push answered");
    fs.power_loss();
    let first = tokio::time::timeout(Duration::from_secs(30), first)
        .await
        .expect("the first push answered")
        .unwrap();
    drop(berth);
    assert!(second.is_ok(), "the second push failed: {second:?}");
    fs.crash().unwrap();
    fs.set_fsync_delays(Duration::ZERO, Duration::ZERO);

    let berth = Berth::start(&data, logs.path(), &[])
        .await
        .unwrap_or_else(|e| panic!("berth did not restart: {e}"));
    let client = Client::new(berth.addr);
    let (status, _, body) = client
        .get(&format!("/v2/race/b/blobs/{digest}"))
        .await
        .unwrap();
    assert!(
        status == 200 && sha256_digest(&body) == digest,
        "race/b@{digest} was acknowledged (201) but after the crash: {status}, {} bytes \
         (the first push, whose directory fsync the power cut, got {first:?})",
        body.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_that_finds_the_blob_in_place_waits_for_its_name_to_be_durable() {
    race_then_crash(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_into_a_fan_out_folder_another_push_just_created_waits_for_it_to_be_durable() {
    race_then_crash(false).await;
}
