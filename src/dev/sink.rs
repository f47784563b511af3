//! Receivers for demos and tests: an SMTP server and an HTTP server on loopback that accept
//! whatever they are sent and hand each email or request to a channel.
//!
//! The SMTP side drives `mailin`'s protocol state machine (the parser and the state checks of a
//! real server, without its TLS) over tokio; when given credentials it requires AUTH PLAIN or
//! LOGIN without TLS, which only a sink on loopback may do. `jobfleet demo sink` prints one line per delivery; the
//! integration tests read the channel and check what arrived.

use std::net::{IpAddr, Ipv4Addr};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use mailin::{Action, AuthMechanism, Handler, Response, SessionBuilder, response};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::UnboundedSender;

/// Larger emails are refused with 552, so a runaway client cannot fill the memory.
const MAX_MESSAGE: usize = 10 * 1024 * 1024;

/// One email as received.
#[derive(Clone, Debug)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    /// The user name the client authenticated with, if it did.
    pub user: Option<String>,
    /// The message as sent (headers and MIME parts), CRLF line ends.
    pub data: String,
}

impl Mail {
    /// The Subject header, unfolded.
    pub fn subject(&self) -> Option<String> {
        self.header("Subject")
    }

    /// A top-level header's value, unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next()?;
        let mut value: Option<String> = None;
        for line in head.split("\r\n") {
            if let Some(v) = value.as_mut() {
                if line.starts_with([' ', '\t']) {
                    v.push(' ');
                    v.push_str(line.trim());
                    continue;
                }
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case(name)
            {
                value = Some(v.trim().to_owned());
            }
        }
        value
    }
}

/// The session's handler: collects one message at a time and sends it on when complete.
#[derive(Clone)]
struct Collect {
    tx: UnboundedSender<Mail>,
    /// Some: only these credentials are accepted.
    credentials: Option<(String, String)>,
    user: Option<String>,
    from: String,
    to: Vec<String>,
    data: Vec<u8>,
}

impl Collect {
    fn login(&mut self, user: &str, password: &str) -> Response {
        match &self.credentials {
            Some((u, p)) if (u.as_str(), p.as_str()) != (user, password) => {
                response::INVALID_CREDENTIALS
            }
            _ => {
                self.user = Some(user.to_owned());
                response::AUTH_OK
            }
        }
    }
}

impl Handler for Collect {
    fn data_start(&mut self, _domain: &str, from: &str, _is8bit: bool, to: &[String]) -> Response {
        from.clone_into(&mut self.from);
        self.to = to.to_vec();
        self.data.clear();
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if self.data.len() + buf.len() > MAX_MESSAGE {
            return Err(std::io::Error::other("message too large"));
        }
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let mail = Mail {
            from: std::mem::take(&mut self.from),
            to: std::mem::take(&mut self.to),
            user: self.user.clone(),
            data: String::from_utf8_lossy(&std::mem::take(&mut self.data)).into_owned(),
        };
        // A receiver that is gone means nobody listens any more; the mail is still accepted.
        let _ = self.tx.send(mail);
        response::OK
    }

    fn auth_plain(&mut self, _authz: &str, user: &str, password: &str) -> Response {
        self.login(user, password)
    }

    fn auth_login(&mut self, user: &str, password: &str) -> Response {
        self.login(user, password)
    }
}

/// Serves SMTP on `listener` until the task is dropped. With `credentials`, AUTH PLAIN and
/// LOGIN are offered and required, and only those credentials are accepted; without, no AUTH
/// is offered (a client configured with credentials then refuses to send, as it should).
pub async fn serve_smtp(
    listener: TcpListener,
    credentials: Option<(String, String)>,
    tx: UnboundedSender<Mail>,
) -> std::io::Result<()> {
    let mut builder = SessionBuilder::new("jobfleet-sink");
    if credentials.is_some() {
        builder
            .enable_auth(AuthMechanism::Plain)
            .enable_auth(AuthMechanism::Login)
            .insecure_enable_plaintext_auth();
    }
    loop {
        let (stream, peer) = listener.accept().await?;
        let handler = Collect {
            tx: tx.clone(),
            credentials: credentials.clone(),
            user: None,
            from: String::new(),
            to: Vec::new(),
            data: Vec::new(),
        };
        let session = builder.build(peer.ip(), handler);
        tokio::spawn(async move {
            if let Err(e) = smtp_session(stream, session).await {
                tracing::debug!(%peer, error = %e, "SMTP session ended with an error");
            }
        });
    }
}

async fn smtp_session(
    stream: TcpStream,
    mut session: mailin::Session<Collect>,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    write.write_all(&session.greeting().buffer()?).await?;
    let mut line = Vec::with_capacity(1024);
    loop {
        line.clear();
        if read.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let res = session.process(&line);
        match res.action {
            Action::Reply => write.write_all(&res.buffer()?).await?,
            Action::Close => {
                write.write_all(&res.buffer()?).await?;
                return Ok(());
            }
            // STARTTLS is not offered, so the session never asks for it.
            Action::UpgradeTls => return Ok(()),
            Action::NoReply => {}
        }
    }
}

/// One HTTP request as received.
#[derive(Clone, Debug)]
pub struct Hook {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Hook {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Serves HTTP on `listener`, answering 200 to every request.
pub async fn serve_http(listener: TcpListener, tx: UnboundedSender<Hook>) -> std::io::Result<()> {
    let app = axum::Router::new().fallback(receive).with_state(tx);
    axum::serve(listener, app).await
}

async fn receive(
    State(tx): State<UnboundedSender<Hook>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> &'static str {
    let headers = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let _ = tx.send(Hook {
        method: method.to_string(),
        path: uri.path().to_owned(),
        headers,
        body,
    });
    "ok"
}

/// Binds a free loopback port.
pub async fn loopback() -> std::io::Result<TcpListener> {
    TcpListener::bind((IpAddr::V4(Ipv4Addr::LOCALHOST), 0)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_found_and_unfolded() {
        let mail = Mail {
            from: String::new(),
            to: Vec::new(),
            user: None,
            data: "From: a@b.c\r\nSubject: Market\r\n approved\r\nTo: x@y.z\r\n\r\nSubject: body"
                .into(),
        };
        assert_eq!(mail.subject().as_deref(), Some("Market approved"));
        assert_eq!(mail.header("to").as_deref(), Some("x@y.z"));
        assert_eq!(mail.header("Cc"), None);
    }
}
