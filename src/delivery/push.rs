//! The Web Push channel: each notification encrypted for every browser or phone its recipient
//! registered and sent to their push services, signed with the server's VAPID key.

use std::sync::Arc;

use entity::{notification, push_subscription};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;

use crate::{domain::notification::PushRules, store::Store};

/// The VAPID key (RFC 8292) this server signs Web Push requests with, and what endpoints it
/// sends to.
#[derive(Clone)]
pub struct PushConfig {
    key: Arc<web_push_native::jwt_simple::algorithms::ES256KeyPair>,
    public_key: String,
    subject: String,
    allow_http: bool,
    /// Hosts allowed although internal (`ROSTER_PUSH_ALLOW_HOSTS`).
    internal_hosts: Vec<String>,
}

impl std::fmt::Debug for PushConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushConfig")
            .field("public_key", &self.public_key)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

impl PushConfig {
    /// The P-256 private key as base64url of its 32 raw bytes (what web-push tools print),
    /// a `mailto:` or `https:` subject, and whether plain `http://` endpoints are allowed.
    ///
    /// # Errors
    /// A key that is not 32 base64url bytes of a valid P-256 scalar.
    pub fn new(private_key: &str, subject: &str, allow_http: bool) -> anyhow::Result<Self> {
        use base64ct::{Base64UrlUnpadded, Encoding};
        use web_push_native::p256::elliptic_curve::sec1::ToEncodedPoint;
        let raw = Base64UrlUnpadded::decode_vec(private_key.trim().trim_end_matches('='))
            .map_err(|_| anyhow::anyhow!("ROSTER_VAPID_PRIVATE_KEY must be base64url"))?;
        let secret = web_push_native::p256::SecretKey::from_slice(&raw)
            .map_err(|_| anyhow::anyhow!("ROSTER_VAPID_PRIVATE_KEY is not a P-256 key"))?;
        let key = web_push_native::jwt_simple::algorithms::ES256KeyPair::from_bytes(&raw)
            .map_err(|e| anyhow::anyhow!("ROSTER_VAPID_PRIVATE_KEY: {e}"))?;
        let public_key = Base64UrlUnpadded::encode_string(
            secret.public_key().to_encoded_point(false).as_bytes(),
        );
        anyhow::ensure!(
            subject.starts_with("mailto:") || subject.starts_with("https://"),
            "ROSTER_VAPID_SUBJECT must be a mailto: or https: URL"
        );
        Ok(Self {
            key: Arc::new(key),
            public_key,
            subject: subject.to_owned(),
            allow_http,
            internal_hosts: Vec::new(),
        })
    }

    /// The key, also sending to these hosts although they are, or resolve to, internal
    /// addresses (a push service under test).
    #[must_use]
    pub fn with_internal_hosts(mut self, hosts: Vec<String>) -> Self {
        self.internal_hosts = hosts;
        self
    }

    /// The HTTP client pushes go out on: no redirects followed, and a push service's name
    /// resolved to the addresses [`PushRules::reachable`] allows only, so that a name which
    /// resolves inside the network (rebinding after registration included) is never reached.
    pub fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(Reachable(self.rules())))
            .build()
            .unwrap_or_default()
    }

    /// A new private key, base64url, for a server that was given none.
    pub fn generate_private_key() -> String {
        use base64ct::{Base64UrlUnpadded, Encoding};
        let key = web_push_native::jwt_simple::algorithms::ES256KeyPair::generate();
        Base64UrlUnpadded::encode_string(&key.to_bytes())
    }

    /// The public key browsers pass as `applicationServerKey`: base64url of the uncompressed
    /// point.
    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// The `Authorization` header for a push to `endpoint` (RFC 8292): `vapid t=<JWT>, k=<key>`,
    /// the JWT signed with ES256 for the endpoint's origin (`aud`, its port included when it
    /// has one), valid 12 hours, with the subject.
    ///
    /// # Errors
    /// An endpoint without a scheme or host.
    pub fn authorization(&self, endpoint: &str) -> Result<String, String> {
        use web_push_native::jwt_simple::{algorithms::ECDSAP256KeyPairLike, claims::Claims};
        let uri: axum::http::Uri = endpoint.parse().map_err(|_| "a malformed endpoint")?;
        let (Some(scheme), Some(host)) = (uri.scheme_str(), uri.host()) else {
            return Err("an endpoint without scheme or host".into());
        };
        let origin = match uri.port_u16() {
            Some(port) => format!("{scheme}://{host}:{port}"),
            None => format!("{scheme}://{host}"),
        };
        let claims = Claims::create(web_push_native::jwt_simple::prelude::Duration::from_hours(
            12,
        ))
        .with_audience(origin)
        .with_subject(&self.subject);
        let token = self.key.sign(claims).map_err(|e| format!("VAPID: {e}"))?;
        Ok(format!("vapid t={token}, k={}", self.public_key))
    }

    /// What the API needs of this key (see [`PushRules`]).
    pub fn rules(&self) -> PushRules {
        PushRules {
            public_key: self.public_key.clone(),
            allow_http: self.allow_http,
            internal_hosts: self.internal_hosts.clone(),
        }
    }
}

/// Resolves a push service's name as the system does, keeping the addresses the rules let the
/// worker reach (see [`PushConfig::client`]).
struct Reachable(PushRules);

impl reqwest::dns::Resolve for Reachable {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let rules = self.0.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addresses: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|address| rules.reachable(&host, address.ip()))
                .collect();
            if addresses.is_empty() {
                return Err(
                    format!("{host} resolves to no address a push service may have").into(),
                );
            }
            Ok(Box::new(addresses.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The notification to every browser or phone its recipient registered (RFC 8030), its JSON
/// payload encrypted for each (RFC 8291, aes128gcm) and signed with the VAPID key (RFC 8292).
/// A subscription the push service no longer knows (404, 410) is removed; any other failure
/// retries the whole delivery.
pub(super) async fn send_push(
    store: &Store,
    client: &reqwest::Client,
    push: &PushConfig,
    notification: &notification::Model,
) -> Result<(), String> {
    use base64ct::{Base64UrlUnpadded, Encoding};
    let subscriptions = push_subscription::Entity::find()
        .filter(push_subscription::Column::UserId.eq(notification.user_id))
        .all(store.db())
        .await
        .map_err(|e| e.to_string())?;
    let payload = json!({
        "id": notification.id,
        "kind": notification.kind,
        "title": notification.title,
        "body": notification.body,
        "enrollmentId": notification.enrollment_id,
    })
    .to_string();
    let mut failures = Vec::new();
    for subscription in subscriptions {
        // Checked at registration; again here for rows registered before that check, and
        // for an address written as such, which no resolver sees.
        if let Err(why) = push.rules().check(&subscription.endpoint) {
            tracing::warn!(endpoint = %subscription.endpoint, why, "a push endpoint refused");
            continue;
        }
        let keys = (
            Base64UrlUnpadded::decode_vec(subscription.p256dh.trim_end_matches('=')),
            Base64UrlUnpadded::decode_vec(subscription.auth.trim_end_matches('=')),
        );
        let (Ok(p256dh), Ok(auth)) = keys else {
            failures.push("a subscription's keys are not base64url".to_owned());
            continue;
        };
        let (Ok(endpoint), Ok(public)) = (
            subscription.endpoint.parse(),
            web_push_native::p256::PublicKey::from_sec1_bytes(&p256dh),
        ) else {
            failures.push("a subscription is malformed".to_owned());
            continue;
        };
        if auth.len() != 16 {
            failures.push("a subscription's auth secret is not 16 bytes".to_owned());
            continue;
        }
        let built = web_push_native::WebPushBuilder::new(
            endpoint,
            public,
            web_push_native::Auth::from(<[u8; 16]>::try_from(auth.as_slice()).unwrap_or_default()),
        )
        .build(payload.clone());
        let request = match built {
            Ok(request) => request,
            Err(e) => {
                failures.push(format!("push: {e:?}"));
                continue;
            }
        };
        let vapid = match push.authorization(&subscription.endpoint) {
            Ok(vapid) => vapid,
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        let (parts, body) = request.into_parts();
        let mut outgoing = client
            .post(subscription.endpoint.as_str())
            .header("authorization", vapid)
            .body(body);
        for (name, value) in &parts.headers {
            outgoing = outgoing.header(name.as_str(), value.as_bytes());
        }
        match outgoing.send().await {
            Ok(response) if response.status().is_success() => {}
            Ok(response) if matches!(response.status().as_u16(), 404 | 410) => {
                // The push service forgot this subscription: so do we.
                let _ = push_subscription::Entity::delete_by_id(subscription.id)
                    .exec(store.db())
                    .await;
            }
            Ok(response) => failures.push(format!("push service answered {}", response.status())),
            Err(e) => failures.push(format!("push: {e}")),
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use reqwest::dns::{Name, Resolve};

    use super::*;

    fn rules(internal: &[&str]) -> PushRules {
        PushRules {
            public_key: String::new(),
            allow_http: true,
            internal_hosts: internal.iter().map(|h| (*h).to_owned()).collect(),
        }
    }

    /// A name checked at registration is checked again when the worker connects: one that
    /// resolves to a loopback address (as after DNS rebinding) is not reached.
    #[tokio::test]
    async fn a_name_resolving_inside_the_network_is_not_reached() {
        let name = || Name::from_str("localhost").unwrap();
        let refused = Reachable(rules(&[])).resolve(name()).await;
        assert!(refused.is_err(), "localhost was reachable");
        let allowed = Reachable(rules(&["localhost"]))
            .resolve(name())
            .await
            .expect("an allowed internal host resolves");
        assert!(allowed.into_iter().all(|a| a.ip().is_loopback()));
    }
}
