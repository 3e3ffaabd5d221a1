//! The webhook channel: each notification POSTed to the operator's URL as a Standard Webhooks
//! message, signed.

use std::sync::Arc;

use chrono::Utc;
use entity::notification;
use serde_json::json;

/// A webhook endpoint and its signing secret (Standard Webhooks).
#[derive(Clone)]
pub struct WebhookConfig {
    pub url: String,
    signer: Arc<standardwebhooks::Webhook>,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl WebhookConfig {
    /// `url` with the secret `whsec_…` (base64 after the prefix).
    ///
    /// # Errors
    /// A secret that is not `whsec_` and base64, or a URL that is not `http(s)://`.
    pub fn new(url: &str, secret: &str) -> anyhow::Result<Self> {
        anyhow::ensure!(
            url.starts_with("https://") || url.starts_with("http://"),
            "ROSTER_WEBHOOK_URL must be an http(s):// URL"
        );
        anyhow::ensure!(
            secret.starts_with("whsec_"),
            "ROSTER_WEBHOOK_SECRET must start with whsec_"
        );
        let signer = standardwebhooks::Webhook::new(secret)
            .map_err(|e| anyhow::anyhow!("ROSTER_WEBHOOK_SECRET: {e}"))?;
        Ok(Self {
            url: url.to_owned(),
            signer: Arc::new(signer),
        })
    }
}

/// The notification as a Standard Webhooks message: JSON `{type, timestamp, data}` signed with
/// the secret; `webhook-id` is the notification's id on every attempt.
pub(super) async fn post_webhook(
    client: &reqwest::Client,
    webhook: &WebhookConfig,
    notification: &notification::Model,
) -> Result<(), String> {
    let body = json!({
        "type": "notification.created",
        "timestamp": notification.created_at.to_rfc3339(),
        "data": {
            "id": notification.id,
            "userId": notification.user_id,
            "kind": notification.kind,
            "title": notification.title,
            "body": notification.body,
            "enrollmentId": notification.enrollment_id,
            "createdAt": notification.created_at.to_rfc3339(),
        },
    })
    .to_string();
    // The receiver checks the signature's time against its own clock: the wall clock's.
    let timestamp = Utc::now().timestamp();
    let id = notification.id.to_string();
    let signature = webhook
        .signer
        .sign(&id, timestamp, body.as_bytes())
        .map_err(|e| e.to_string())?;
    let response = client
        .post(&webhook.url)
        .header("content-type", "application/json")
        .header(standardwebhooks::HEADER_WEBHOOK_ID, &id)
        .header(
            standardwebhooks::HEADER_WEBHOOK_TIMESTAMP,
            timestamp.to_string(),
        )
        .header(standardwebhooks::HEADER_WEBHOOK_SIGNATURE, signature)
        .body(body)
        .send()
        .await
        .map_err(|e| format!("webhook: {e}"))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("webhook answered {}", response.status()))
    }
}

#[cfg(test)]
mod tests {
    use super::WebhookConfig;

    #[test]
    fn a_webhook_secret_must_be_standard() {
        assert!(WebhookConfig::new("https://hooks.example/x", "not-whsec").is_err());
        assert!(WebhookConfig::new("ftp://x", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(
            WebhookConfig::new(
                "https://hooks.example/x",
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
            )
            .is_ok()
        );
    }
}
