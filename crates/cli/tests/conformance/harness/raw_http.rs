//! Requests written verbatim on a TCP connection, for what reqwest would not
//! send (malformed heads, `..` paths, stalled bodies), and a small parser of
//! HTTP/1.1 responses.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::assert::error_codes;
use super::process::Registry;

impl Registry {
    // ---- raw TCP -----------------------------------------------------------

    /// Sends `request` verbatim on a fresh connection. With `close_write` the write half
    /// is shut down afterwards (a client that stops sending). Returns `None` when the
    /// server closes the connection without an answer.
    pub async fn raw(&self, request: &[u8], close_write: bool) -> Option<RawResponse> {
        let stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .expect("connect");
        let (mut reader, mut writer) = stream.into_split();
        // Write while reading: the server may answer (and stop reading) before the body ends.
        // A failed write is not a test failure; the answer, or its absence, is what counts.
        let request = request.to_vec();
        let writing = tokio::spawn(async move {
            let _ = writer.write_all(&request).await;
            if close_write {
                let _ = writer.shutdown().await;
            }
            writer // dropping it would half-close the connection
        });
        let resp = read_response(&mut reader).await;
        drop(writing);
        resp
    }

    /// A raw `GET`/`HEAD`/... with no body, for paths reqwest would normalise (`..`, `//`).
    pub async fn raw_simple(&self, method: &str, path: &str) -> RawResponse {
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.addr
        );
        self.raw(request.as_bytes(), false)
            .await
            .unwrap_or_else(|| panic!("{method} {path}: connection closed without an answer"))
    }
}

impl Registry {
    // ---- the admin socket --------------------------------------------------

    /// The server's admin socket, `<data_dir>/admin.sock`.
    pub fn admin_socket(&self) -> std::path::PathBuf {
        self.data_dir().join("admin.sock")
    }

    /// `method path` through the admin socket, with no credentials; `None`
    /// when the connection closes without an answer.
    pub async fn admin_request(&self, method: &str, path: &str) -> Option<RawResponse> {
        let mut stream = tokio::net::UnixStream::connect(self.admin_socket())
            .await
            .expect("connect to the admin socket");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.expect("write");
        read_response(&mut stream).await
    }
}

/// A response read off a raw TCP connection.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    complete: bool,
}

impl RawResponse {
    /// Parses an HTTP/1.1 response (Content-Length or chunked); `None` without a full head.
    fn parse(buf: &[u8]) -> Option<Self> {
        let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = std::str::from_utf8(&buf[..head_end]).ok()?;
        let mut lines = head.split("\r\n");
        let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let rest = &buf[head_end + 4..];
        let find = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let (body, complete) = if find("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            decode_chunked(rest)
        } else if let Some(len) = find("content-length").and_then(|v| v.parse::<usize>().ok()) {
            (rest[..rest.len().min(len)].to_vec(), rest.len() >= len)
        } else {
            (rest.to_vec(), false)
        };
        Some(RawResponse {
            status,
            headers,
            body,
            complete,
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The error codes of a JSON error body (empty if the body is not one).
    pub fn codes(&self) -> Vec<String> {
        serde_json::from_slice::<Value>(&self.body)
            .map(|b| error_codes(&b))
            .unwrap_or_default()
    }
}

/// Splits what a connection sent back to pipelined requests into responses,
/// one per method in `methods` (a `HEAD` answer has no body). Only
/// `Content-Length` bodies are supported; panics on anything it cannot split.
pub fn split_responses(mut buf: &[u8], methods: &[&str]) -> Vec<RawResponse> {
    let mut out = Vec::new();
    for method in methods {
        let head_end = buf
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no response head for {method} in {} bytes", buf.len()));
        let head = RawResponse::parse(&buf[..head_end + 4]).expect("a response head");
        let body_len = if *method == "HEAD" {
            0
        } else {
            head.header("content-length")
                .and_then(|v| v.parse::<usize>().ok())
                .expect("a Content-Length on a pipelined response")
        };
        let end = head_end + 4 + body_len;
        assert!(buf.len() >= end, "{method}: body cut short");
        let body = buf[head_end + 4..end].to_vec();
        out.push(RawResponse {
            body,
            complete: true,
            ..head
        });
        buf = &buf[end..];
    }
    assert!(
        buf.is_empty(),
        "{} bytes after the last response",
        buf.len()
    );
    out
}

/// Reads one HTTP/1.1 response off `stream` (10 s at most). `None` when the connection
/// ends, fails or stalls before a response head arrives.
pub async fn read_response(
    stream: &mut (impl tokio::io::AsyncRead + Unpin),
) -> Option<RawResponse> {
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        let mut chunk = [0u8; 8192];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    if RawResponse::parse(&buf).is_some_and(|r| r.complete) {
                        break;
                    }
                }
            }
        }
    })
    .await;
    RawResponse::parse(&buf)
}

fn decode_chunked(mut data: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") else {
            return (out, false);
        };
        let size_text = std::str::from_utf8(&data[..line_end]).unwrap_or("0");
        let Ok(size) = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
        else {
            return (out, false);
        };
        if size == 0 {
            return (out, true);
        }
        let start = line_end + 2;
        if data.len() < start + size + 2 {
            return (out, false);
        }
        out.extend_from_slice(&data[start..start + size]);
        data = &data[start + size + 2..];
    }
}
