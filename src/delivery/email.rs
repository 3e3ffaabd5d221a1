//! The e-mail channel: each notification sent through the operator's SMTP relay.

use std::time::Duration;

use entity::{notification, user};

/// An SMTP relay and the sender's address.
#[derive(Clone)]
pub struct EmailConfig {
    transport: lettre::AsyncSmtpTransport<lettre::Tokio1Executor>,
    from: lettre::message::Mailbox,
}

impl std::fmt::Debug for EmailConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailConfig")
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl EmailConfig {
    /// `url` in lettre's form (`smtps://user:pass@host`, `smtp://host:587?tls=required`, or
    /// plain `smtp://host:port` for a local relay), sending as `from`.
    ///
    /// # Errors
    /// A URL lettre does not take, or a sender that is not an address.
    pub fn new(url: &str, from: &str) -> anyhow::Result<Self> {
        let transport = lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(url)
            .map_err(|e| anyhow::anyhow!("ROSTER_SMTP_URL: {e}"))?
            .timeout(Some(Duration::from_secs(10)))
            .build();
        let from = from
            .parse()
            .map_err(|e| anyhow::anyhow!("ROSTER_MAIL_FROM: {e}"))?;
        Ok(Self { transport, from })
    }
}

/// The notification as an e-mail to its recipient: a plain-text and an HTML part, its id in the
/// `Message-ID` so that a retry is recognisably the same message.
pub(super) async fn send_email(
    email: &EmailConfig,
    recipient: Option<&user::Model>,
    notification: &notification::Model,
) -> Result<(), String> {
    use lettre::{
        AsyncTransport, Message,
        message::{Mailbox, MultiPart},
    };
    let Some(recipient) = recipient else {
        return Err("the recipient no longer exists".into());
    };
    let to = Mailbox::new(
        Some(recipient.name.clone()),
        recipient
            .email
            .parse()
            .map_err(|e| format!("recipient: {e}"))?,
    );
    let text = format!("{}\n\n{}\n", notification.title, notification.body);
    let html = format!(
        "<!doctype html><html><body><h1>{}</h1><p>{}</p></body></html>",
        escape_html(&notification.title),
        escape_html(&notification.body)
    );
    let message = Message::builder()
        .from(email.from.clone())
        .to(to)
        .subject(notification.title.clone())
        .message_id(Some(format!("<{}@roster>", notification.id)))
        .multipart(MultiPart::alternative_plain_html(text, html))
        .map_err(|e| format!("e-mail: {e}"))?;
    email
        .transport
        .send(message)
        .await
        .map(|_| ())
        .map_err(|e| format!("e-mail: {e}"))
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
