//! `jobfleet demo sink`: an SMTP and an HTTP receiver on this machine that print one line per
//! email or webhook, so a demo shows deliveries without reaching the internet.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio::sync::mpsc;

use super::output::outln;
use crate::dev::sink::{Hook, Mail, serve_http, serve_smtp};
use crate::notify::signature;

#[derive(Debug, Args)]
pub struct SinkArgs {
    /// Where the SMTP receiver listens (notify.smtp.host and port, tls = "none").
    #[arg(long, default_value = "127.0.0.1:2525")]
    pub smtp: SocketAddr,
    /// Where the HTTP receiver listens (any path: /discord, /slack, /hooks/<user>, ...).
    #[arg(long, default_value = "127.0.0.1:8025")]
    pub http: SocketAddr,
    /// Check X-Jobfleet-Signature of generic webhooks against this secret.
    #[arg(long, env = "JOBFLEET_SINK_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
}

pub async fn run(args: SinkArgs) -> anyhow::Result<ExitCode> {
    let smtp = tokio::net::TcpListener::bind(args.smtp)
        .await
        .with_context(|| format!("cannot listen for SMTP on {}", args.smtp))?;
    let http = tokio::net::TcpListener::bind(args.http)
        .await
        .with_context(|| format!("cannot listen for HTTP on {}", args.http))?;
    let (mail_tx, mut mails) = mpsc::unbounded_channel();
    let (hook_tx, mut hooks) = mpsc::unbounded_channel();
    let smtp_task = tokio::spawn(serve_smtp(smtp, None, mail_tx));
    let http_task = tokio::spawn(serve_http(http, hook_tx));
    outln!(
        "sink: SMTP on {}, HTTP on {}; Ctrl-C to stop",
        args.smtp,
        args.http
    )?;
    let stop = jobfleet_engine::cli::shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            Some(mail) = mails.recv() => outln!("{}", mail_line(&mail))?,
            Some(hook) = hooks.recv() => outln!("{}", hook_line(&hook, args.secret.as_deref()))?,
            else => break,
        }
    }
    smtp_task.abort();
    http_task.abort();
    Ok(ExitCode::SUCCESS)
}

fn mail_line(mail: &Mail) -> String {
    format!(
        "email   from={} to={} subject={:?}{}",
        mail.from,
        mail.to.join(","),
        mail.subject().unwrap_or_default(),
        mail.user
            .as_deref()
            .map(|u| format!(" user={u}"))
            .unwrap_or_default()
    )
}

fn hook_line(hook: &Hook, secret: Option<&str>) -> String {
    let body: serde_json::Value = serde_json::from_slice(&hook.body).unwrap_or_default();
    // What the post is about: a Discord embed's title, Slack's fallback text, or the
    // generic webhook's event.
    let about = body["embeds"][0]["title"]
        .as_str()
        .or_else(|| body["text"].as_str())
        .or_else(|| body["event"].as_str())
        .unwrap_or("?");
    let signed = match (hook.header(signature::HEADER), secret) {
        (None, _) => String::new(),
        (Some(_), None) => " signed".to_owned(),
        (Some(h), Some(s)) => {
            let now = chrono::Utc::now().timestamp();
            match signature::verify(s.as_bytes(), h, &hook.body, now, Duration::from_secs(300)) {
                Ok(()) => " signature=ok".to_owned(),
                Err(e) => format!(" signature=BAD ({e})"),
            }
        }
    };
    format!(
        "webhook {} {} {} bytes {:?}{signed}",
        hook.method,
        hook.path,
        hook.body.len(),
        about
    )
}
