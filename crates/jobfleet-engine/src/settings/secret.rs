//! Secrets of the configuration: values that are never shown (`Secret`), URLs that are shown
//! with their credentials masked (`SecretUrl`), and `redact_urls` for text that a library wrote
//! with a URL in it (HTTP and RPC clients' errors often name the URL they failed on).
//!
//! What a URL shows depends on its scheme. A database or Redis URL keeps its user, host, port
//! and path (the database name or number, which says where a connection went) and masks its
//! password and every query parameter that carries a credential (`?password=`, `?sslpassword=`,
//! `?token=`...). Any other URL, an http(s) one (an API or RPC endpoint, a webhook) in
//! particular, shows only its scheme, host and port: hosted providers put API keys in the
//! path (`https://host/v3/<KEY>`), the user name or the query, so all of those are masked.

use std::fmt;

use serde::Deserialize;

/// Parts of a query parameter's name that make its value a credential, compared in lowercase:
/// `password`, `sslpassword`, `pwd`, `token`, `access_token`, `key`, `apikey`, `api_key`,
/// `sslkey`, `secret`, `client_secret`, `auth`, `signature`, `sig`, `credential`... A harmless
/// parameter caught by this (a `monkey=1`) only loses its value in the logs.
const CREDENTIAL_PARTS: [&str; 8] = [
    "pass",
    "pwd",
    "secret",
    "token",
    "key",
    "auth",
    "sig",
    "credential",
];

/// What stands for a hidden value.
const MASK: &str = "***";

/// A secret (a password, a token-bearing URL): `Debug` and `Display` never show it.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The real value, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when no secret was given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "" } else { MASK })
    }
}

/// A URL that may carry a credential; `Debug` and `Display` show it redacted (see the module).
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct SecretUrl(String);

impl SecretUrl {
    /// Wraps a URL that may carry a credential.
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The real URL, for opening the connection only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when no URL was given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", redact(&self.0))
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.0))
    }
}

/// A URL as it may be shown.
fn redact(url: &str) -> String {
    if url.is_empty() {
        return String::new();
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        // Not a URL that can be taken apart, so no part of it is known to be harmless.
        return MASK.to_owned();
    };
    // Only Redis's and the common database servers' URL schemes are known to keep
    // credentials out of their path; any other scheme is shown as an http(s) URL is.
    let web = !matches!(
        scheme.to_ascii_lowercase().as_str(),
        "redis"
            | "rediss"
            | "redis+unix"
            | "unix"
            | "redis+cluster"
            | "rediss+cluster"
            | "redis+sentinel"
            | "rediss+sentinel"
            | "postgres"
            | "postgresql"
    );
    // The user part ends at the last `@`, looked for before the query and fragment are split
    // off: an unencoded password may hold `?`, `#` or `/` (`redis://:hunter?2@cache`). An `@`
    // that was in fact in the query makes more of the URL masked, never less.
    let (userinfo, rest) = match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let (rest, fragment) = match rest.split_once('#') {
        Some((rest, _)) => (rest, true),
        None => (rest, false),
    };
    let (rest, query) = match rest.split_once('?') {
        Some((rest, query)) => (rest, Some(query)),
        None => (rest, None),
    };
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut out = format!("{scheme}://");
    if let Some(userinfo) = userinfo {
        match userinfo.split_once(':') {
            // A plain user name of a database or Redis URL is kept; anything else is masked.
            Some((user, _)) if !web && plain_user(user) => {
                out.push_str(user);
                out.push(':');
                out.push_str(MASK);
            }
            None if !web && plain_user(userinfo) => out.push_str(userinfo),
            _ => out.push_str(MASK),
        }
        out.push('@');
    }
    out.push_str(host);
    if web && path.len() > 1 {
        out.push('/');
        out.push_str(MASK);
    } else {
        out.push_str(path);
    }
    if let Some(query) = query {
        out.push('?');
        if web {
            out.push_str(MASK);
        } else {
            out.push_str(&redact_query(query));
        }
    }
    if fragment {
        out.push('#');
        out.push_str(MASK);
    }
    out
}

/// A user name that can be shown: nothing that could be part of a path, query or password.
fn plain_user(user: &str) -> bool {
    !user.contains(['/', '?', '#', '&', '='])
}

/// A query string with the value of every credential-carrying parameter masked.
fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if is_credential(name) => format!("{name}={MASK}"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn is_credential(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    CREDENTIAL_PARTS.iter().any(|part| name.contains(part))
}

/// `text` with every URL in it (`scheme://...` up to a space, a quote or a closing bracket)
/// redacted as `SecretUrl` shows it: for errors written by libraries that name the URL they
/// failed on, which may be a secret one.
pub fn redact_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(sep) = rest.find("://") {
        let scheme_from = rest[..sep]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |i| i + 1);
        if scheme_from == sep {
            // "://" without a scheme before it is not a URL: copy it and look further.
            out.push_str(&rest[..sep + 3]);
            rest = &rest[sep + 3..];
            continue;
        }
        let end = rest[sep..]
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '<' | '>' | ')'))
            .map_or(rest.len(), |i| sep + i);
        out.push_str(&rest[..scheme_from]);
        out.push_str(&redact(&rest[scheme_from..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(url: &str) -> String {
        SecretUrl::new(url).to_string()
    }

    #[test]
    fn passwords_never_show() {
        let url = SecretUrl::new("rediss://default:hunter2@cache:6380/0");
        assert_eq!(url.to_string(), "rediss://default:***@cache:6380/0");
        assert!(!format!("{url:?}").contains("hunter2"));
        assert_eq!(shown("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(
            shown("postgres://postgres@db:5432/x"),
            "postgres://postgres@db:5432/x"
        );
        assert_eq!(shown("postgres://u:pa/ss@db/x"), "postgres://u:***@db/x");
        // Unencoded `?`, `#` and `/` in a password: such URLs do not parse, so they are exactly
        // the ones printed in "cannot parse" errors.
        assert_eq!(
            shown("redis://:hunter?2@cache:6379"),
            "redis://:***@cache:6379"
        );
        assert_eq!(shown("postgres://u:pa?ss@h/db"), "postgres://u:***@h/db");
        assert_eq!(shown("postgres://u:p#w/x?y@h/db"), "postgres://u:***@h/db");
        assert_eq!(shown("https://u:p#w@host/x"), "https://***@host/***");
        // An `@` in the query masks more, never less.
        assert_eq!(shown("postgres://h/db?password=p@ss"), "postgres://***@ss");
        assert_eq!(shown("not a url hunter2"), "***");
        assert_eq!(shown(""), "");
    }

    #[test]
    fn credentials_in_the_query_are_masked() {
        assert_eq!(
            shown("postgres://u@h/db?sslmode=require&password=hunter2&application_name=jf"),
            "postgres://u@h/db?sslmode=require&password=***&application_name=jf"
        );
        for name in [
            "password",
            "sslpassword",
            "PASSWORD",
            "token",
            "access_token",
            "key",
            "apikey",
            "api_key",
            "secret",
            "client_secret",
            "auth",
            "signature",
        ] {
            let text = shown(&format!("redis://h:6379/0?{name}=s3cr3t&db=1"));
            assert_eq!(text, format!("redis://h:6379/0?{name}=***&db=1"), "{name}");
        }
        assert_eq!(
            shown("unix:///run/redis.sock?db=2&pass=x"),
            "unix:///run/redis.sock?db=2&pass=***"
        );
    }

    #[test]
    fn http_urls_show_only_their_host() {
        assert_eq!(
            shown("https://mainnet.infura.io/v3/0123abcdKEY"),
            "https://mainnet.infura.io/***"
        );
        assert_eq!(
            shown("https://eth.example.com:8443/rpc?apikey=KEY&x=1#frag"),
            "https://eth.example.com:8443/***?***#***"
        );
        assert_eq!(
            shown("http://user:pass@10.0.0.7:5001"),
            "http://***@10.0.0.7:5001"
        );
        assert_eq!(
            shown("https://PROJECTKEY@rpc.example.com/"),
            "https://***@rpc.example.com/"
        );
        assert_eq!(shown("http://127.0.0.1:8545"), "http://127.0.0.1:8545");
    }

    #[test]
    fn urls_inside_text_are_redacted() {
        let text = "error sending request for url (https://host.example/v3/KEY123): \
                    tcp connect error; see http://u:pw@10.0.0.1:5001/api?token=T";
        let redacted = redact_urls(text);
        assert_eq!(
            redacted,
            "error sending request for url (https://host.example/***): \
             tcp connect error; see http://***@10.0.0.1:5001/***?***"
        );
        assert_eq!(redact_urls("no url :// here"), "no url :// here");
        assert_eq!(redact_urls("plain"), "plain");
    }

    #[test]
    fn cluster_and_sentinel_urls_keep_their_hosts_and_mask_both_passwords() {
        let cluster = SecretUrl::new("redis+cluster://app:pw1@10.0.0.1:7000,10.0.0.2:7000");
        assert_eq!(
            cluster.to_string(),
            "redis+cluster://app:***@10.0.0.1:7000,10.0.0.2:7000"
        );
        let sentinel =
            SecretUrl::new("rediss+sentinel://:pw1@s1,s2:26380/mymaster/2?sentinel_password=pw2");
        let shown = sentinel.to_string();
        assert_eq!(
            shown,
            "rediss+sentinel://:***@s1,s2:26380/mymaster/2?sentinel_password=***"
        );
    }
}
