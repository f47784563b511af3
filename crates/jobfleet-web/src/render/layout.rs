//! The page shell: the navigation (the board's pages and those an application mounted), who
//! is signed in with the sign-out form, a message left by the last action, and the body.

use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use crate::access::Viewer;
use crate::state::NavLink;

/// The board's own sections, for the navigation's current-page mark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    /// The overview and the queues.
    Queues,
    /// The schedules.
    Schedules,
    /// The workers.
    Workers,
    /// The audit log.
    Audit,
    /// A page of the application's, by its path.
    App(&'static str),
}

/// One page being rendered.
#[derive(Debug)]
pub struct Page<'a> {
    /// Who is looking.
    pub viewer: &'a Viewer,
    /// The application's pages.
    pub nav: &'a [NavLink],
    /// The section to mark in the navigation.
    pub section: Section,
    /// The title, in the tab and as the heading.
    pub title: String,
    /// A message about the last action (from the `msg` query parameter).
    pub flash: Option<String>,
    /// Whether the page refreshes itself every this many seconds (0: never).
    pub refresh: u64,
}

impl Page<'_> {
    /// The whole HTML document around `body`.
    pub fn render(&self, body: Markup) -> Response {
        let here = |s: Section| {
            if s == self.section {
                Some("page")
            } else {
                None
            }
        };
        let doc = html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { "jobfleet: " (self.title) }
                    link rel="icon" href="/assets/favicon.svg" type="image/svg+xml";
                    link rel="stylesheet" href="/assets/board.css";
                    script src="/assets/board.js" defer {}
                }
                body data-refresh=(self.refresh) {
                    header.top {
                        a.brand href="/" { "jobfleet" }
                        nav {
                            a href="/" aria-current=[here(Section::Queues)] { "Queues" }
                            a href="/schedules" aria-current=[here(Section::Schedules)] { "Schedules" }
                            a href="/workers" aria-current=[here(Section::Workers)] { "Workers" }
                            a href="/audit" aria-current=[here(Section::Audit)] { "Audit" }
                            @for link in self.nav {
                                a href=(link.path) aria-current=[matches!(self.section, Section::App(p) if p == link.path).then_some("page")] { (link.label) }
                            }
                        }
                        div.who {
                            span #whoami { (self.viewer.name) " (" (self.viewer.role.as_str()) ")" }
                            @if self.refresh > 0 {
                                label.refresh { input #autorefresh type="checkbox"; " auto-refresh" }
                            }
                            form method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(self.viewer.csrf);
                                button #signout type="submit" { "Sign out" }
                            }
                        }
                    }
                    main {
                        h1 { (self.title) }
                        @if let Some(msg) = &self.flash {
                            p.flash role="status" { (msg) }
                        }
                        (body)
                    }
                }
            }
        };
        doc.into_response()
    }
}

/// The hidden CSRF field of a form.
pub fn csrf(viewer: &Viewer) -> Markup {
    html! { input type="hidden" name="csrf" value=(viewer.csrf); }
}

/// A path with a message for the next page (`?msg=...`), for the redirect after an action.
pub fn with_msg(path: &str, msg: &str) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    let msg: String = url::form_urlencoded::byte_serialize(msg.as_bytes()).collect();
    format!("{path}{sep}msg={msg}")
}

/// A path segment or query value, percent-encoded.
pub fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::users::Role;

    #[test]
    fn everything_shown_is_escaped() {
        let viewer = Viewer {
            name: "<b>ops</b>".into(),
            role: Role::Operator,
            csrf: "t".into(),
        };
        let page = Page {
            viewer: &viewer,
            nav: &[],
            section: Section::Queues,
            title: "<script>alert(1)</script>".into(),
            flash: Some("<img src=x>".into()),
            refresh: 0,
        };
        let resp = page.render(html! { p { "<i>" } });
        let body = futures_body(resp);
        assert!(!body.contains("<script>alert"), "{body}");
        assert!(body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(body.contains("&lt;img src=x&gt;"));
        assert!(body.contains("&lt;b&gt;ops&lt;/b&gt;"));
    }

    fn futures_body(resp: Response) -> String {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .unwrap();
            String::from_utf8(bytes.to_vec()).unwrap()
        })
    }

    #[test]
    fn messages_are_encoded_into_the_query() {
        assert_eq!(with_msg("/q", "a b&c"), "/q?msg=a+b%26c");
        assert_eq!(with_msg("/q?state=dead", "x"), "/q?state=dead&msg=x");
    }
}
