//! A real `jobfleet web` process for the board's and the API's tests, its users and tokens
//! made with the real CLI, and a small client that signs in, keeps the session cookie and
//! submits the board's forms with their CSRF token, as a browser would.
#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};

use super::app::eventually;
use super::cli::jobfleet;
use super::process::{Process, free_port, status};

const FORM: &str = "application/x-www-form-urlencoded";

/// A form body, as a browser encodes it.
fn form(fields: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish()
}

/// A running board: its address and process.
pub struct Board {
    pub addr: String,
    pub process: Process,
}

impl Board {
    /// Starts `jobfleet web` against `url` on a free port, with extra settings, and waits
    /// until it answers.
    pub async fn start(url: &str, env: &[(&str, &str)]) -> Self {
        let addr = format!("127.0.0.1:{}", free_port());
        let mut all = vec![("JOBFLEET__WEB__HTTP_ADDR", addr.as_str())];
        all.extend_from_slice(env);
        let mut process = Process::start(url, &all, &["web"]);
        let up = eventually(Duration::from_secs(30), || async {
            status(&addr, "/livez") == 200
        })
        .await;
        if !up {
            process.assert_running();
            panic!(
                "jobfleet web did not answer on {addr}: {}",
                process.output()
            );
        }
        Self { addr, process }
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A client that does not follow redirects (the tests look at them).
    pub fn http(&self) -> reqwest::Client {
        jobfleet::install_tls_provider();
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .expect("http client")
    }

    /// Signs in; Err with the redirect's target when the board refused.
    pub async fn sign_in(&self, user: &str, password: &str) -> Result<Session, String> {
        let http = self.http();
        let page = http
            .get(format!("{}/login", self.base()))
            .send()
            .await
            .expect("GET /login");
        let login_cookie =
            cookie_of(&page, "jobfleet_login").expect("the sign-in form sets its cookie");
        let html = page.text().await.expect("login page");
        let csrf = hidden(&html, "csrf").expect("the sign-in form has a CSRF field");
        let resp = http
            .post(format!("{}/login", self.base()))
            .header(COOKIE, format!("jobfleet_login={login_cookie}"))
            .header(CONTENT_TYPE, FORM)
            .body(form(&[
                ("csrf", csrf.as_str()),
                ("next", "/"),
                ("username", user),
                ("password", password),
            ]))
            .send()
            .await
            .expect("POST /login");
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        let location = location(&resp);
        match set_cookie_header(&resp, "jobfleet_session") {
            Some(header) => Ok(Session {
                http,
                base: self.base(),
                cookie: cookie_value(&header),
                set_cookie: header,
            }),
            None => Err(location),
        }
    }
}

/// A signed-in browser, as far as the tests need one.
pub struct Session {
    pub http: reqwest::Client,
    pub base: String,
    pub cookie: String,
    /// The whole `Set-Cookie` header the sign-in answered with.
    pub set_cookie: String,
}

/// A response as the tests look at it.
#[derive(Debug)]
pub struct Page {
    pub status: StatusCode,
    pub location: String,
    pub body: String,
}

impl Session {
    pub async fn get(&self, path: &str) -> Page {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .header(COOKIE, format!("jobfleet_session={}", self.cookie))
            .send()
            .await
            .expect("GET");
        page(resp).await
    }

    /// The CSRF token of the session, read off a page.
    pub async fn csrf(&self) -> String {
        let p = self.get("/").await;
        hidden(&p.body, "csrf").unwrap_or_else(|| panic!("no CSRF field on /: {p:?}"))
    }

    /// Posts a form as it is, without adding the token.
    pub async fn post_raw(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .header(COOKIE, format!("jobfleet_session={}", self.cookie))
            .header(CONTENT_TYPE, FORM)
            .body(form(fields))
            .send()
            .await
            .expect("POST");
        page(resp).await
    }

    /// Posts a form with the session's CSRF token, as the board's pages do.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let csrf = self.csrf().await;
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post_raw(path, &all).await
    }
}

async fn page(resp: reqwest::Response) -> Page {
    let status = resp.status();
    let location = location(&resp);
    let body = resp.text().await.unwrap_or_default();
    Page {
        status,
        location,
        body,
    }
}

fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn set_cookie_header(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")) && !v.starts_with(&format!("{name}=;")))
        .map(str::to_owned)
}

fn cookie_of(resp: &reqwest::Response, name: &str) -> Option<String> {
    set_cookie_header(resp, name).map(|h| cookie_value(&h))
}

fn cookie_value(header: &str) -> String {
    header
        .split(';')
        .next()
        .and_then(|kv| kv.split_once('='))
        .map(|(_, v)| v.to_owned())
        .unwrap_or_default()
}

/// The value of a hidden field of a page.
pub fn hidden(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')?;
    Some(html[start..start + end].to_owned())
}

/// The operator and the viewer `board_with_users` makes: (name, password).
pub const OPS: (&str, &str) = ("ops", "operator-password");
pub const VIEWER: (&str, &str) = ("vic", "viewer-password");

/// Makes the operator and the viewer, then starts the board.
pub async fn board_with_users(redis: &super::TestRedis, env: &[(&str, &str)]) -> Board {
    add_user(&redis.url(), OPS.0, "operator", OPS.1);
    add_user(&redis.url(), VIEWER.0, "viewer", VIEWER.1);
    Board::start(&redis.url(), env).await
}

/// Makes a board user with the real CLI, the password on stdin.
pub fn add_user(url: &str, name: &str, role: &str, password: &str) {
    let mut cmd: Command = jobfleet(url);
    cmd.args(["web", "user", "add", name, "--role", role])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("starts jobfleet web user add");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(password.as_bytes())
        .expect("writes the password");
    let out = child.wait_with_output().expect("web user add ends");
    assert!(
        out.status.success(),
        "web user add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes an API token with the real CLI; returns its secret (the last line of stdout).
pub fn token(url: &str, name: &str, scopes: &str) -> String {
    let out = jobfleet(url)
        .args(["web", "token", "create", name, "--scope", scopes])
        .output()
        .expect("runs jobfleet web token create");
    assert!(
        out.status.success(),
        "web token create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .last()
        .expect("a token line")
        .trim()
        .to_owned()
}
