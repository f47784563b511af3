//! Email over SMTP with lettre: one transport per process (it pools its connections), TLS as
//! configured, and multipart messages with a text and an HTML part from the templates.

use std::fmt;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::settings::{SmtpSettings, SmtpTls};
use super::{NotifyError, Rendered};

/// The SMTP transport and the sender address.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    host: String,
}

impl fmt::Debug for Mailer {
    // The transport holds the credentials; only the server is worth showing.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailer")
            .field("host", &self.host)
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl Mailer {
    pub fn new(s: &SmtpSettings) -> Result<Self, NotifyError> {
        let smtp_err = |source| NotifyError::Smtp {
            permanent: true,
            source,
        };
        let builder = match s.tls {
            // Plain text: for a relay on the same host, or the demo sink.
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host),
            // STARTTLS is required, never optional: a server (or a man in the middle) that
            // does not offer it gets no mail rather than mail in clear text.
            SmtpTls::Starttls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&s.host).map_err(smtp_err)?
            }
            SmtpTls::Tls => {
                AsyncSmtpTransport::<Tokio1Executor>::relay(&s.host).map_err(smtp_err)?
            }
        };
        let mut builder = builder.port(s.port).timeout(Some(s.timeout));
        if !s.username.is_empty() {
            builder = builder.credentials(Credentials::new(
                s.username.clone(),
                s.password.expose().to_owned(),
            ));
        }
        let from = s
            .from
            .parse::<Mailbox>()
            .map_err(|e| NotifyError::Address(format!("notify.smtp.from: {e}")))?;
        Ok(Self {
            transport: builder.build(),
            from,
            host: s.host.clone(),
        })
    }

    /// The email of one notification. The Message-ID is derived from the notification, so a
    /// message sent twice (a retry after a lost answer) is recognisable as one by mail clients.
    pub fn message(&self, id: i64, to: &str, r: &Rendered) -> Result<Message, NotifyError> {
        let to = to
            .parse::<Mailbox>()
            .map_err(|e| NotifyError::Address(format!("{to:?}: {e}")))?;
        let domain = self.from.email.domain().to_owned();
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(&r.title)
            .message_id(Some(format!("<notification-{id}@{domain}>")))
            .multipart(MultiPart::alternative_plain_html(r.text(), r.html()))
            .map_err(NotifyError::Message)
    }

    /// Sends a message; Ok carries the server's reply (its queue id, usually).
    pub async fn send(&self, message: Message) -> Result<String, NotifyError> {
        match self.transport.send(message).await {
            Ok(reply) => Ok(reply.message().collect::<Vec<_>>().join(" ")),
            Err(source) => Err(NotifyError::Smtp {
                // A 5xx reply will not change on a retry; everything else (4xx, connection,
                // TLS, timeout) may.
                permanent: source.is_permanent(),
                source,
            }),
        }
    }
}
