//! `WWW-Authenticate` challenges (RFC 9110 §11.6.1) as registries send
//! them: which scheme, and for Bearer where to get a token. Pure parsing.

/// How the upstream wants berth to authenticate, learnt from a 401.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthScheme {
    /// `/v2/` answered without a challenge: no credentials needed.
    Open,
    /// Send the credentials on every request.
    Basic,
    /// Get a token per scope from `realm`.
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// One challenge: a scheme (lower-cased) and its parameters (keys
/// lower-cased, values unquoted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    pub params: Vec<(String, String)>,
}

impl Challenge {
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// The scheme berth will use for these header values: Bearer when offered
/// (with a realm), else Basic; `None` when nothing berth speaks is offered.
pub fn choose_scheme<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<AuthScheme> {
    let challenges: Vec<Challenge> = values.into_iter().flat_map(parse).collect();
    let bearer = challenges.iter().find_map(|c| {
        let realm = c.param("realm").filter(|r| !r.is_empty());
        match (c.scheme.as_str(), realm) {
            ("bearer", Some(realm)) => Some(AuthScheme::Bearer {
                realm: realm.to_string(),
                service: c.param("service").map(str::to_string),
            }),
            _ => None,
        }
    });
    bearer.or_else(|| {
        challenges
            .iter()
            .any(|c| c.scheme == "basic")
            .then_some(AuthScheme::Basic)
    })
}

/// Every challenge in one header value. Lenient: junk is skipped rather
/// than failing the whole header, since a registry's header is what it is.
pub fn parse(value: &str) -> Vec<Challenge> {
    let mut cursor = Cursor { s: value, pos: 0 };
    let mut challenges = Vec::new();
    loop {
        cursor.skip(|c| c == b',' || is_space(c));
        if cursor.at_end() {
            return challenges;
        }
        let scheme = cursor.token();
        if scheme.is_empty() {
            cursor.skip_char();
            continue;
        }
        let mut challenge = Challenge {
            scheme: scheme.to_ascii_lowercase(),
            params: Vec::new(),
        };
        while let Some(param) = cursor.param() {
            challenge.params.push(param);
        }
        challenges.push(challenge);
    }
}

struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    /// Past one character (whole, so that slices stay on char boundaries).
    fn skip_char(&mut self) {
        self.pos += self.s[self.pos..].chars().next().map_or(1, char::len_utf8);
    }

    fn skip(&mut self, what: impl Fn(u8) -> bool) {
        while self.peek().is_some_and(&what) {
            self.pos += 1;
        }
    }

    fn take(&mut self, what: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        self.skip(what);
        &self.s[start..self.pos]
    }

    fn token(&mut self) -> &'a str {
        self.take(is_tchar)
    }

    /// `key = value` (value a token or a quoted-string), after optional
    /// commas; or `None`, leaving the cursor where it was, when what follows
    /// is the next challenge's scheme.
    fn param(&mut self) -> Option<(String, String)> {
        let start = self.pos;
        self.skip(|c| c == b',' || is_space(c));
        let key = self.token();
        self.skip(is_space);
        if key.is_empty() || self.peek() != Some(b'=') {
            self.pos = start;
            return None;
        }
        self.pos += 1;
        self.skip(is_space);
        let value = if self.peek() == Some(b'"') {
            self.quoted()
        } else {
            self.take(|c| c != b',' && !is_space(c)).to_string()
        };
        Some((key.to_ascii_lowercase(), value))
    }

    /// A quoted-string starting at `"`: backslash escapes any character; an
    /// unterminated one runs to the end.
    fn quoted(&mut self) -> String {
        self.pos += 1;
        let mut out = String::new();
        let mut chars = self.s[self.pos..].char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.pos += i + 1;
                    return out;
                }
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        out.push(escaped);
                    }
                }
                c => out.push(c),
            }
        }
        self.pos = self.s.len();
        out
    }
}

fn is_space(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

/// RFC 9110 `tchar`.
fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(realm: &str, service: Option<&str>) -> Option<AuthScheme> {
        Some(AuthScheme::Bearer {
            realm: realm.into(),
            service: service.map(str::to_string),
        })
    }

    /// Headers as real registries send them.
    #[test]
    fn real_world_challenges() {
        let table = [
            // Docker Hub, /v2/ then a repository.
            (
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io""#,
                bearer("https://auth.docker.io/token", Some("registry.docker.io")),
            ),
            (
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
                bearer("https://auth.docker.io/token", Some("registry.docker.io")),
            ),
            // ghcr.io.
            (
                r#"Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:user/image:pull""#,
                bearer("https://ghcr.io/token", Some("ghcr.io")),
            ),
            // distribution with token auth: a comma inside the quoted scope.
            (
                r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:samalba/my-app:pull,push""#,
                bearer(
                    "https://auth.example.com/token",
                    Some("registry.example.com"),
                ),
            ),
            // distribution with htpasswd.
            (r#"Basic realm="Registry Realm""#, Some(AuthScheme::Basic)),
            // berth's own, with an error parameter.
            (
                r#"Bearer realm="http://localhost:5000/token",service="berth",scope="repository:team-a/app:pull,push",error="insufficient_scope""#,
                bearer("http://localhost:5000/token", Some("berth")),
            ),
            // ECR: Basic with extra parameters.
            (
                r#"Basic realm="https://1234.dkr.ecr.eu-west-1.amazonaws.com/",service="ecr.amazonaws.com""#,
                Some(AuthScheme::Basic),
            ),
            // Case, spaces around `=` and after commas, no service.
            (
                r#"bearer Realm = "https://q.example/v2/auth" , scope="x""#,
                bearer("https://q.example/v2/auth", None),
            ),
            // Two challenges in one value: Bearer wins.
            (
                r#"Basic realm="r", Bearer realm="https://t.example/token",service="s""#,
                bearer("https://t.example/token", Some("s")),
            ),
            // Unquoted values.
            (
                "Bearer realm=https://t.example/token,service=reg",
                bearer("https://t.example/token", Some("reg")),
            ),
            // Nothing berth speaks, or a Bearer without a realm.
            (r#"Negotiate abc=="#, None),
            (r#"Bearer service="s""#, None),
            ("", None),
        ];
        for (header, expected) in table {
            assert_eq!(choose_scheme([header]), expected, "{header}");
        }
    }

    #[test]
    fn quoted_values_keep_commas_and_escapes() {
        let parsed = parse(r#"Bearer realm="a,b \"c\"",scope="repository:x:pull,push""#);
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].param("realm"), Some(r#"a,b "c""#));
        assert_eq!(parsed[0].param("scope"), Some("repository:x:pull,push"));
    }

    #[test]
    fn several_challenges_split() {
        let parsed = parse(r#"Basic realm="r",Bearer realm="t""#);
        let schemes: Vec<_> = parsed.iter().map(|c| c.scheme.as_str()).collect();
        assert_eq!(schemes, ["basic", "bearer"]);
    }

    #[test]
    fn unterminated_quote_does_not_loop() {
        let parsed = parse(r#"Bearer realm="https://x"#);
        assert_eq!(parsed[0].param("realm"), Some("https://x"));
    }

    #[test]
    fn junk_and_non_ascii_are_skipped() {
        assert_eq!(choose_scheme(["é=ü, \"x\" Basic"]), Some(AuthScheme::Basic));
        assert_eq!(
            choose_scheme([r#"Bearer realm="réalm""#]),
            bearer("réalm", None)
        );
    }

    #[test]
    fn challenges_across_header_lines() {
        assert_eq!(
            choose_scheme([r#"Basic realm="r""#, r#"Bearer realm="t""#]),
            bearer("t", None)
        );
    }
}
