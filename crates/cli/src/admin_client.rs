//! A small HTTP/1 client for a running server's admin socket
//! (`<data_dir>/admin.sock`), for commands that must act inside the server
//! that holds the data folder (`berth gc`, `berth repo delete`). Requests
//! there need no credentials: the socket file's mode is the access check.
//!
//! [`locate`] decides where a command runs: through the socket when a
//! server holds the folder's lock, else in this process under the lock.

use crate::data_dir::{self, Holder};
use bytes::{Buf, Bytes, BytesMut};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use std::fs::File;
use std::path::{Path, PathBuf};

/// Where an admin command runs.
pub enum Target {
    /// A server holds the data folder: ask it through its socket.
    Server(AdminClient),
    /// No server does: act here; the folder is locked while this lives
    /// (`None`: shared stores and no local data folder: the metadata
    /// store's own guards, such as the GC lease, keep replicas apart).
    Offline(Option<File>),
}

/// Where a command on `config`'s stores runs: as [`locate`] for a data
/// folder's own stores; with a shared metadata store (PostgreSQL) through
/// a server on this machine's data folder if one runs, else here, with no
/// data folder needed.
pub fn locate_for(config: &crate::config::Config) -> Result<Target, data_dir::Refused> {
    if !config.metadata.is_shared() {
        return locate(&config.data_dir);
    }
    let dir = &config.data_dir;
    if !dir.join("berth.lock").is_file() {
        return Ok(Target::Offline(None));
    }
    match data_dir::try_lock(dir) {
        Ok(Holder::Us(lock)) => Ok(Target::Offline(Some(lock))),
        Ok(Holder::Another) => Ok(Target::Server(AdminClient::for_data_dir(dir))),
        Err(e) => Err(data_dir::Refused(format!(
            "cannot lock {}: {e}",
            dir.join("berth.lock").display()
        ))),
    }
}

/// Takes the data folder's lock, or finds the server that holds it. Fails
/// (for exit code 2) when `dir` is no data folder or its lock cannot be
/// taken or tested.
pub fn locate(dir: &Path) -> Result<Target, data_dir::Refused> {
    if !dir.join("meta.db").is_file() {
        return Err(data_dir::Refused(format!(
            "{} is not a berth data folder (no meta.db); give --data-dir or --config",
            dir.display()
        )));
    }
    match data_dir::try_lock(dir) {
        Ok(Holder::Us(lock)) => Ok(Target::Offline(Some(lock))),
        Ok(Holder::Another) => Ok(Target::Server(AdminClient::for_data_dir(dir))),
        Err(e) => Err(data_dir::Refused(format!(
            "cannot lock {}: {e}",
            dir.join("berth.lock").display()
        ))),
    }
}

/// Why a request through the admin socket failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(
        "cannot connect to the server's admin socket {0}: {1} (a server holds the data folder; \
         was it started before berth had an admin socket, or is its data folder path over 107 bytes?)"
    )]
    Connect(PathBuf, std::io::Error),
    #[error("talking to the server over {0}: {1}")]
    Http(PathBuf, hyper::Error),
    #[error("the server answered {status}: {message}")]
    Status { status: StatusCode, message: String },
    #[error("the server's answer is not the JSON expected: {0}")]
    Json(#[from] serde_json::Error),
}

/// A client of one server's admin socket.
#[derive(Debug, Clone)]
pub struct AdminClient {
    socket: PathBuf,
}

impl AdminClient {
    /// The client of the server serving `data_dir`.
    pub fn for_data_dir(data_dir: &Path) -> AdminClient {
        AdminClient {
            socket: data_dir.join(berth_server::admin_socket::FILE_NAME),
        }
    }

    #[cfg_attr(not(test), allow(dead_code))] // tests and messages
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Sends `method path_and_query` with no body; a status other than 2xx
    /// is an [`AdminError::Status`] carrying the server's error message.
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
    ) -> Result<AdminResponse, AdminError> {
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|e| AdminError::Connect(self.socket.clone(), e))?;
        let http = |e| AdminError::Http(self.socket.clone(), e);
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(http)?;
        tokio::spawn(connection);
        let request = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(hyper::header::HOST, "localhost")
            .body(Empty::<Bytes>::new());
        let request = match request {
            Ok(request) => request,
            Err(e) => {
                return Err(AdminError::Status {
                    status: StatusCode::BAD_REQUEST,
                    message: format!("cannot build the request {path_and_query:?}: {e}"),
                })
            }
        };
        let response = sender.send_request(request).await.map_err(http)?;
        let status = response.status();
        let response = AdminResponse {
            socket: self.socket.clone(),
            body: response.into_body(),
            pending: BytesMut::new(),
            ended: false,
        };
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(AdminError::Status {
                status,
                message: error_message(&text),
            });
        }
        Ok(response)
    }
}

/// A successful answer whose body is read whole or line by line.
pub struct AdminResponse {
    socket: PathBuf,
    body: Incoming,
    /// Bytes read past the last line returned.
    pending: BytesMut,
    ended: bool,
}

impl AdminResponse {
    /// The whole body as text.
    pub async fn text(mut self) -> Result<String, AdminError> {
        let mut all = std::mem::take(&mut self.pending).to_vec();
        while let Some(chunk) = self.chunk().await? {
            all.extend_from_slice(&chunk);
        }
        Ok(String::from_utf8_lossy(&all).into_owned())
    }

    /// The whole body, parsed as JSON.
    #[allow(dead_code)] // for `berth repo delete`'s answers
    pub async fn json<T: DeserializeOwned>(self) -> Result<T, AdminError> {
        Ok(serde_json::from_str(&self.text().await?)?)
    }

    /// The next line of a streamed body (NDJSON), without its newline;
    /// `None` at the end. A last line without a newline is still a line.
    pub async fn next_line(&mut self) -> Result<Option<String>, AdminError> {
        loop {
            if let Some(at) = self.pending.iter().position(|&b| b == b'\n') {
                let line = self.pending.split_to(at + 1);
                let text = String::from_utf8_lossy(&line[..at]).trim_end().to_string();
                if text.is_empty() {
                    continue;
                }
                return Ok(Some(text));
            }
            match self.chunk().await? {
                Some(chunk) => self.pending.extend_from_slice(&chunk),
                None if self.pending.is_empty() => return Ok(None),
                None => {
                    let rest = std::mem::take(&mut self.pending);
                    return Ok(Some(String::from_utf8_lossy(&rest).trim_end().to_string()));
                }
            }
        }
    }

    /// The body's next piece of data; `None` at its end.
    async fn chunk(&mut self) -> Result<Option<Bytes>, AdminError> {
        while !self.ended {
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(mut data) = frame.into_data() {
                        if data.has_remaining() {
                            return Ok(Some(data.copy_to_bytes(data.remaining())));
                        }
                    }
                }
                Some(Err(e)) => return Err(AdminError::Http(self.socket.clone(), e)),
                None => self.ended = true,
            }
        }
        Ok(None)
    }
}

/// The messages of an OCI error body (`{"errors":[{"code","message"}]}`),
/// as `CODE: message`; other text as it is.
pub fn error_message(body: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Body {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        code: String,
        message: String,
    }
    match serde_json::from_str::<Body>(body) {
        Ok(parsed) if !parsed.errors.is_empty() => parsed
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.code, e.message))
            .collect::<Vec<_>>()
            .join("; "),
        _ => body.trim().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A one-connection server on `socket` that reads a request head and
    /// writes `answer` verbatim; returns the head it read.
    fn serve_once(socket: &Path, answer: &'static [u8]) -> tokio::task::JoinHandle<String> {
        let listener = tokio::net::UnixListener::bind(socket).unwrap();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                stream.read_exact(&mut byte).await.unwrap();
                head.push(byte[0]);
            }
            stream.write_all(answer).await.unwrap();
            stream.shutdown().await.unwrap();
            String::from_utf8(head).unwrap()
        })
    }

    #[tokio::test]
    async fn streamed_lines_arrive_one_by_one_across_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let client = AdminClient::for_data_dir(dir.path());
        let server = serve_once(
            client.socket(),
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
              5\r\n{\"a\":\r\n9\r\n1}\n{\"b\":2\r\n3\r\n}\n\n\r\n4\r\nlast\r\n0\r\n\r\n",
        );
        let mut response = client
            .send(Method::POST, "/api/v1/gc?dry_run=true")
            .await
            .unwrap();
        assert_eq!(response.next_line().await.unwrap().unwrap(), "{\"a\":1}");
        assert_eq!(response.next_line().await.unwrap().unwrap(), "{\"b\":2}");
        assert_eq!(response.next_line().await.unwrap().unwrap(), "last");
        assert_eq!(response.next_line().await.unwrap(), None);
        let head = server.await.unwrap();
        assert!(
            head.starts_with("POST /api/v1/gc?dry_run=true HTTP/1.1\r\n"),
            "{head}"
        );
    }

    #[tokio::test]
    async fn an_error_status_carries_the_oci_message() {
        let dir = tempfile::tempdir().unwrap();
        let client = AdminClient::for_data_dir(dir.path());
        let _server = serve_once(
            client.socket(),
            b"HTTP/1.1 403 Forbidden\r\ncontent-length: 59\r\n\r\n\
              {\"errors\":[{\"code\":\"DENIED\",\"message\":\"no\",\"detail\":null}]}",
        );
        match client.send(Method::GET, "/api/v1/gc").await {
            Err(AdminError::Status { status, message }) => {
                assert_eq!(status, StatusCode::FORBIDDEN);
                assert_eq!(message, "DENIED: no");
            }
            Err(other) => panic!("{other}"),
            Ok(_) => panic!("accepted"),
        }
    }

    #[tokio::test]
    async fn json_answers_parse_and_a_missing_socket_says_where_it_looked() {
        let dir = tempfile::tempdir().unwrap();
        let client = AdminClient::for_data_dir(dir.path());
        let err = client.send(Method::GET, "/api/v1/gc").await.err().unwrap();
        assert!(matches!(err, AdminError::Connect(..)), "{err}");
        assert!(err.to_string().contains("admin.sock"), "{err}");
        let _server = serve_once(
            client.socket(),
            b"HTTP/1.1 200 OK\r\ncontent-length: 16\r\n\r\n{\"running\":true}",
        );
        let value: serde_json::Value = client
            .send(Method::GET, "/api/v1/gc")
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(value["running"], true);
    }

    #[test]
    fn a_folder_nobody_serves_is_locked_here_and_a_served_one_is_asked() {
        let dir = tempfile::tempdir().unwrap();
        assert!(locate(dir.path()).is_err(), "no meta.db: not a data folder");
        std::fs::write(dir.path().join("meta.db"), b"").unwrap();
        let Ok(Target::Offline(lock)) = locate(dir.path()) else {
            panic!("nobody holds the lock")
        };
        let Ok(Target::Server(client)) = locate(dir.path()) else {
            panic!("the lock is held")
        };
        assert_eq!(client.socket(), dir.path().join("admin.sock"));
        drop(lock);
        assert!(matches!(locate(dir.path()), Ok(Target::Offline(_))));
    }
}
