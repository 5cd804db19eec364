//! A scriptable registry on 127.0.0.1: every request is recorded, and a
//! closure decides the answer from the request and what came before.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// One request as the fake saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A query parameter's decoded value.
    pub fn param(&self, key: &str) -> Option<String> {
        form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    }
}

/// What the answering closure gets: the request, the requests before it,
/// and the fake's own address (for realms and redirects).
pub struct Ctx<'a> {
    pub req: &'a Seen,
    pub before: &'a [Seen],
    pub addr: SocketAddr,
}

impl Ctx<'_> {
    /// How many earlier requests had this path.
    pub fn count(&self, path: &str) -> usize {
        self.before.iter().filter(|s| s.path == path).count()
    }
}

type Answer = dyn Fn(&Ctx) -> Response + Send + Sync;

pub struct Fake {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Fake {
    pub async fn start(answer: impl Fn(&Ctx) -> Response + Send + Sync + 'static) -> Fake {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let answer: Arc<Answer> = Arc::new(answer);
        let record = seen.clone();
        let app = Router::new().fallback(move |req: Request| {
            let record = record.clone();
            let answer = answer.clone();
            async move {
                let seen = Seen {
                    method: req.method().to_string(),
                    path: req.uri().path().to_string(),
                    query: req.uri().query().unwrap_or("").to_string(),
                    headers: req.headers().clone(),
                };
                let before = {
                    let mut all = record.lock().unwrap();
                    let before = all.clone();
                    all.push(seen.clone());
                    before
                };
                answer(&Ctx {
                    req: &seen,
                    before: &before,
                    addr,
                })
            }
        });
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Fake { addr, seen, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Recorded requests to `path`.
    pub fn to(&self, path: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.path == path).collect()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn status(code: u16) -> Response {
    StatusCode::from_u16(code).unwrap().into_response()
}

pub fn with_headers(code: u16, headers: &[(&str, &str)], body: impl Into<Body>) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = StatusCode::from_u16(code).unwrap();
    for (name, value) in headers {
        response.headers_mut().append(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    response
}

/// 401 with a Bearer challenge whose realm is this fake's `/token`.
pub fn bearer_challenge(ctx: &Ctx) -> Response {
    let challenge = format!(r#"Bearer realm="http://{}/token",service="fake""#, ctx.addr);
    with_headers(401, &[("www-authenticate", &challenge)], "")
}
