//! Clients that connect and then stall: half-sent heads, idle keep-alive
//! connections, stalled bodies, more connections than descriptors, and a
//! shutdown with all of those still open.

use std::time::{Duration, Instant};

use super::harness::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the server closes the connection; how long that took, or
/// `None` if it was still open after `limit`.
async fn time_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
    .map(|()| started.elapsed())
}

/// The server closes `stream` by a 2 s timeout: within 10 s, not before 1.5 s.
async fn assert_closed_by_a_2s_timeout(stream: &mut TcpStream, what: &str) {
    let closed = time_until_closed(stream, Duration::from_secs(10)).await;
    let closed = closed.unwrap_or_else(|| panic!("{what} must not hold the connection"));
    assert!(
        closed >= Duration::from_millis(1500),
        "{what}: closed after {closed:?}, before the timeout"
    );
}

async fn connect(registry: &Registry) -> TcpStream {
    TcpStream::connect(registry.addr).await.expect("connect")
}

#[tokio::test]
async fn a_half_sent_request_head_is_closed_after_the_header_timeout() {
    let registry = Registry::start_with_env(&[
        ("BERTH_HEADER_READ_TIMEOUT_SECS", "2"),
        ("BERTH_IDLE_TIMEOUT_SECS", "60"),
    ])
    .await;
    let mut stream = connect(&registry).await;
    stream
        .write_all(format!("GET /v2/ HTTP/1.1\r\nHost: {}\r\n", registry.addr).as_bytes())
        .await
        .unwrap();
    assert_closed_by_a_2s_timeout(&mut stream, "a half-sent head").await;
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_the_header_timeout() {
    let registry = Registry::start_with_env(&[("BERTH_HEADER_READ_TIMEOUT_SECS", "2")]).await;
    let mut stream = connect(&registry).await;
    let closed = time_until_closed(&mut stream, Duration::from_secs(10)).await;
    assert!(closed.is_some(), "a silent connection must not be held");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let registry = Registry::start_with_env(&[
        ("BERTH_HEADER_READ_TIMEOUT_SECS", "30"),
        ("BERTH_IDLE_TIMEOUT_SECS", "2"),
    ])
    .await;
    let mut stream = connect(&registry).await;
    let request = format!("GET /v2/ HTTP/1.1\r\nHost: {}\r\n\r\n", registry.addr);
    stream.write_all(request.as_bytes()).await.unwrap();
    let resp = read_response(&mut stream).await.expect("an answer");
    assert_eq!(resp.status, 200);
    // The idle timeout, not the (much longer) header timeout, closes it.
    assert_closed_by_a_2s_timeout(&mut stream, "an idle keep-alive connection").await;
}

#[tokio::test]
async fn a_stalled_body_fails_the_request_and_the_upload_can_be_retried() {
    let registry = Registry::start_with_env(&[("BERTH_BODY_IDLE_TIMEOUT_SECS", "2")]).await;
    let blob = random_bytes(100_000);
    let digest = sha256_digest(&blob);
    let location = registry.start_upload("stall/body").await;
    let path = location_path(&location).to_string();

    let mut stream = connect(&registry).await;
    let head = format!(
        "PATCH {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        registry.addr,
        blob.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&blob[..10_000]).await.unwrap();
    // ... and nothing more: the server must give up on the body.
    let started = Instant::now();
    let resp = read_response(&mut stream).await;
    let waited = started.elapsed();
    if let Some(resp) = &resp {
        assert!(
            resp.status >= 400,
            "a stalled PATCH answered {}",
            resp.status
        );
    }
    assert!(
        waited < Duration::from_secs(8),
        "the stalled body was held for {waited:?}"
    );
    drop(stream);

    // The session survives: ask where it stands and send the rest.
    let status = registry.send(registry.client.get(&location)).await;
    assert_eq!(status.status(), 204, "upload status after a stalled PATCH");
    let range = required_header(&status, "range").to_string();
    let offset: usize = match range.rsplit_once('-') {
        Some((_, end)) if status.headers().contains_key("range") => {
            end.parse::<usize>().unwrap() + usize::from(range != "0-0")
        }
        _ => 0,
    };
    let location = registry.resolve(required_header(&status, "location"));
    let resp = registry
        .patch_chunk(&location, Some((offset, blob.len() - 1)), &blob[offset..])
        .await;
    assert_eq!(resp.status(), 202, "resuming at {offset}");
    let location = registry.resolve(required_header(&resp, "location"));
    let resp = registry
        .send(
            registry
                .client
                .put(with_query(&location, "digest", &digest)),
        )
        .await;
    assert_eq!(resp.status(), 201, "closing the retried upload");
    let pulled = registry
        .send(registry.get(&format!("/v2/stall/body/blobs/{digest}")))
        .await;
    assert_eq!(pulled.bytes().await.unwrap().as_ref(), &blob[..]);
}

#[tokio::test]
async fn a_client_that_stops_reading_a_response_is_dropped() {
    let mut registry = Registry::start_with_env(&[("BERTH_BODY_IDLE_TIMEOUT_SECS", "2")]).await;
    let blob = random_bytes(64 << 20); // far more than the socket buffers hold
    let digest = registry.push_blob("stall/reader", &blob).await;
    let mut stream = connect(&registry).await;
    let get = format!(
        "GET /v2/stall/reader/blobs/{digest} HTTP/1.1\r\nHost: {}\r\n\r\n",
        registry.addr
    );
    stream.write_all(get.as_bytes()).await.unwrap();
    // Read nothing for well past the timeout ...
    tokio::time::sleep(Duration::from_secs(5)).await;
    // ... then only what the server had sent before giving up, and the end.
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "the connection was still open");
    assert!(
        got.len() < blob.len(),
        "the whole blob was sent to a client that did not read"
    );
    // Others are served as usual.
    let resp = registry
        .send(registry.get(&format!("/v2/stall/reader/blobs/{digest}")))
        .await;
    assert!(resp.bytes().await.unwrap() == blob);
    registry.assert_alive();
}

/// Opens `count` connections that each send half a request head.
async fn hold_half_open(registry: &Registry, count: usize) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(count);
    for _ in 0..count {
        let connect = TcpStream::connect(registry.addr);
        // 5 s outlasts a SYN dropped and resent (after 1 s) while a loaded
        // machine leaves the server's accept queue full for a moment.
        let mut stream = match tokio::time::timeout(Duration::from_secs(5), connect).await {
            Ok(Ok(stream)) => stream,
            outcome => {
                eprintln!("connect #{} ended the run: {outcome:?}", held.len());
                break; // the server stopped accepting
            }
        };
        let _ = stream.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n").await;
        held.push(stream);
    }
    held
}

/// `GET /v2/` on a new connection (not one kept alive from before), timed.
async fn timed_base_request(registry: &Registry) -> Duration {
    let started = Instant::now();
    let answered = tokio::time::timeout(Duration::from_secs(5), async {
        let mut stream = TcpStream::connect(registry.addr).await.ok()?;
        let request = format!(
            "GET /v2/ HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            registry.addr
        );
        stream.write_all(request.as_bytes()).await.ok()?;
        read_response(&mut stream).await
    })
    .await;
    let resp = answered
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("GET /v2/ unanswered after {:?}", started.elapsed()));
    assert_eq!(resp.status, 200);
    started.elapsed()
}

#[tokio::test]
async fn more_half_open_connections_than_descriptors_do_not_lock_clients_out() {
    let mut registry = Registry::start_with_fd_limit(256, &[]).await;
    let _held = hold_half_open(&registry, 400).await;
    let took = timed_base_request(&registry).await;
    eprintln!(
        "GET /v2/ behind {} half-open connections: {took:?}",
        _held.len()
    );
    assert!(took < Duration::from_secs(3), "GET /v2/ took {took:?}");
    registry.assert_alive();
    let log = registry.stderr();
    assert!(
        log.contains("connection limit reached"),
        "the cap must be logged:\n{log}"
    );
    assert!(
        log.contains("open-file limit"),
        "the limit must be logged:\n{log}"
    );
}

#[tokio::test]
async fn accept_failures_are_logged_and_do_not_lock_clients_out() {
    // A cap above the descriptor limit: accept() itself runs out.
    let mut registry =
        Registry::start_with_fd_limit(256, &[("BERTH_MAX_CONNECTIONS", "5000")]).await;
    let _held = hold_half_open(&registry, 400).await;
    assert!(
        _held.len() > 256,
        "only {} connections: too few to run out of descriptors",
        _held.len()
    );
    let took = timed_base_request(&registry).await;
    eprintln!(
        "GET /v2/ behind {} half-open connections: {took:?}",
        _held.len()
    );
    assert!(took < Duration::from_secs(3), "GET /v2/ took {took:?}");
    registry.assert_alive();
    let log = registry.stderr();
    assert!(
        log.contains("accept() failed") && log.contains("Too many open files"),
        "accept failures must be logged with their error:\n{log}"
    );
}

#[tokio::test]
async fn sigterm_refuses_new_connections_finishes_requests_and_exits_within_the_grace() {
    let grace = Duration::from_secs(3);
    let mut registry = Registry::start_with_env(&[("BERTH_SHUTDOWN_GRACE_SECS", "3")]).await;
    let addr = registry.addr;

    // A client stalled mid-upload ...
    let stalled_path = location_path(&registry.start_upload("term/stalled").await).to_string();
    let mut stalled_upload = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "PATCH {stalled_path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000000\r\n\r\n"
    );
    stalled_upload.write_all(head.as_bytes()).await.unwrap();
    stalled_upload.write_all(&[7u8; 1000]).await.unwrap();
    // ... one stalled mid-header ...
    let mut stalled_head = TcpStream::connect(addr).await.unwrap();
    stalled_head
        .write_all(b"GET /v2/ HTTP/1.1\r\nHo")
        .await
        .unwrap();
    // ... and one whose request is in flight and will complete.
    let blob = random_bytes(200_000);
    let live_path = location_path(&registry.start_upload("term/live").await).to_string();
    let mut live = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "PATCH {live_path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        blob.len()
    );
    live.write_all(head.as_bytes()).await.unwrap();
    live.write_all(&blob[..100_000]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    registry.terminate();
    let signalled = Instant::now();

    // New connections are refused (not left unanswered), promptly.
    let refused_after = loop {
        match tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(addr)).await {
            Ok(Err(e)) => {
                // Reset: the connection reached the backlog as the listener closed.
                use std::io::ErrorKind::{ConnectionRefused, ConnectionReset};
                assert!(
                    matches!(e.kind(), ConnectionRefused | ConnectionReset),
                    "{e}"
                );
                break signalled.elapsed();
            }
            Ok(Ok(_)) | Err(_) => {
                assert!(
                    signalled.elapsed() < Duration::from_secs(2),
                    "still accepting connections after SIGTERM"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    assert!(
        refused_after < Duration::from_secs(1),
        "refused only after {refused_after:?}"
    );

    // The request in flight finishes.
    live.write_all(&blob[100_000..]).await.unwrap();
    let resp = read_response(&mut live)
        .await
        .expect("the request in flight is answered");
    assert_eq!(resp.status, 202, "PATCH in flight during shutdown");

    // The stalled clients do not keep the process alive past the grace period.
    let status = registry
        .wait_exit(grace + Duration::from_secs(4))
        .await
        .expect("berth must exit within the grace period despite stalled clients");
    let took = signalled.elapsed();
    eprintln!("refused new connections after {refused_after:?}; exited after {took:?}");
    assert!(status.success(), "exit status {status}");
    assert!(
        took >= grace - Duration::from_millis(500),
        "exited after {took:?}: stalled requests were not given their grace"
    );
    drop((stalled_upload, stalled_head));
}

#[tokio::test]
async fn clients_stalled_inside_large_manifests_cannot_pin_unbounded_memory() {
    const CLIENTS: usize = 64;
    const BODY: usize = 4 << 20; // the manifest limit
    let budget_mib = 64;
    let mut registry = Registry::start_with_env(&[
        ("BERTH_MANIFEST_BODY_BUDGET_MIB", "64"),
        ("BERTH_BODY_IDLE_TIMEOUT_SECS", "4"),
    ])
    .await;
    let baseline = registry.peak_rss();
    let addr = registry.addr;
    let head = format!(
        "PUT /v2/stall/manifest/manifests/v1 HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {OCI_MANIFEST}\r\nContent-Length: {BODY}\r\n\r\n"
    );
    let body = vec![b' '; BODY - 1]; // all but the last byte, then stall
    let clients = (0..CLIENTS).map(|_| {
        let (head, body) = (head.clone(), body.clone());
        tokio::spawn(async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream.write_all(head.as_bytes()).await.unwrap();
            // Over budget: refused before the body is read.
            let early = tokio::time::timeout(Duration::from_secs(2), read_response(&mut stream))
                .await
                .ok()
                .flatten();
            if let Some(resp) = early {
                return (Some(resp.status), stream);
            }
            let _ = stream.write_all(&body).await;
            (None, stream)
        })
    });
    let mut refused = 0;
    let mut held = Vec::new();
    for client in clients.collect::<Vec<_>>() {
        let (status, stream) = client.await.unwrap();
        match status {
            Some(429) => refused += 1,
            Some(other) => panic!("a stalled manifest PUT answered {other}"),
            None => {}
        }
        held.push(stream);
    }
    let grown = registry.peak_rss().saturating_sub(baseline);
    eprintln!(
        "{CLIENTS} stalled manifest PUTs: {refused} refused, memory grew {} MiB",
        grown >> 20
    );
    assert!(
        grown < (budget_mib as u64 + 48) << 20,
        "{CLIENTS} stalled 4 MiB manifests grew memory by {} MiB",
        grown >> 20
    );
    let admitted = CLIENTS - refused;
    assert_eq!(
        admitted,
        budget_mib * (1 << 20) / BODY,
        "the budget admits exactly what fits; {refused} refused"
    );
    // The body timeout frees the stalled ones; the budget is whole again.
    tokio::time::sleep(Duration::from_secs(6)).await;
    registry.assert_alive();
    registry.push_image("stall/manifest", "after").await;
    drop(held);
}
