//! The URL checks that settings share.

/// An absolute http(s) URL with a host: what an HTTP client can be pointed at.
pub fn is_http_url(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_absolute_http_urls_with_a_host() {
        assert!(super::is_http_url("https://hooks.example.com/x?y=1"));
        assert!(super::is_http_url("http://127.0.0.1:5001"));
        for bad in [
            "ftp://host/",
            "https://",
            "/relative",
            "hooks.example.com",
            "",
        ] {
            assert!(!super::is_http_url(bad), "{bad}");
        }
    }
}
