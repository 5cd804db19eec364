//! Reading responses: headers, JSON bodies and the spec's error body.

use reqwest::Response;
use serde_json::Value;

pub fn header<'a>(resp: &'a Response, name: &str) -> Option<&'a str> {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().expect("header is ASCII"))
}

/// The header's value; panics naming the request when it is missing.
pub fn required_header<'a>(resp: &'a Response, name: &str) -> &'a str {
    header(resp, name).unwrap_or_else(|| {
        panic!(
            "{} answered {} without a {name} header; headers: {:?}",
            resp.url(),
            resp.status(),
            resp.headers()
        )
    })
}

/// Asserts an error answer: the status, a JSON Content-Type and a spec-shaped body
/// whose errors include `code`. Returns the body.
pub async fn assert_error(resp: Response, status: u16, code: &str) -> Value {
    assert_error_one_of(resp, &[(status, code)]).await
}

/// Like [`assert_error`] where the spec allows more than one (status, code) pair.
pub async fn assert_error_one_of(resp: Response, allowed: &[(u16, &str)]) -> Value {
    let what = resp.url().to_string();
    let status = resp.status().as_u16();
    let content_type = header(&resp, "content-type").unwrap_or("").to_string();
    let bytes = resp.bytes().await.expect("read error body");
    let body: Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        panic!(
            "{what}: status {status}, body is not JSON: {:?}",
            String::from_utf8_lossy(&bytes)
        )
    });
    let codes = error_codes(&body);
    assert!(
        allowed.iter().any(|(s, c)| *s == status && codes.iter().any(|got| got == c)),
        "{what}: expected one of {allowed:?}, got status {status} with codes {codes:?}; body {body}"
    );
    assert!(
        content_type.starts_with("application/json"),
        "{what}: error Content-Type is {content_type:?}, expected application/json"
    );
    body
}

/// The `code`s of a `{"errors":[…]}` body, checking the spec's shape on the way.
pub fn error_codes(body: &Value) -> Vec<String> {
    let errors = body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors array in {body}"));
    assert!(!errors.is_empty(), "empty errors array in {body}");
    errors
        .iter()
        .map(|e| {
            let code = e["code"]
                .as_str()
                .unwrap_or_else(|| panic!("error without a string code: {e}"));
            assert!(
                !code.is_empty() && code.chars().all(|c| c.is_ascii_uppercase() || c == '_'),
                "code {code:?} must be upper-case letters and underscores"
            );
            if let Some(message) = e.get("message") {
                assert!(message.is_string(), "message must be a string: {e}");
            }
            code.to_string()
        })
        .collect()
}

pub async fn json_body(resp: Response) -> Value {
    let what = resp.url().to_string();
    let bytes = resp.bytes().await.expect("read body");
    serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "{what}: body is not JSON ({e}): {:?}",
            String::from_utf8_lossy(&bytes)
        )
    })
}
