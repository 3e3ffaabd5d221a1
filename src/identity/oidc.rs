//! Bearer tokens from the organization's OpenID provider (docs/design.md#sign-in): verified
//! against the provider's published keys (JWKS), found by discovery from the issuer or
//! configured directly, cached, and fetched again when a token names a key the cache does not
//! hold (key rotation), at most once per [`REFRESH_FLOOR`].
//!
//! What a token proves is who the user is at the provider (`iss` + `sub`); what they may do in
//! Roster is read from Roster's own database, as for every request. Finding or creating the
//! user is `service::users::from_identity`.

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use jsonwebtoken::{
    Algorithm, DecodingKey, Validation, decode, decode_header,
    errors::ErrorKind,
    jwk::{Jwk, JwkSet},
};
use serde::Deserialize;
use tokio::sync::{Mutex, RwLock};

use crate::{
    domain::identity::{Identity, OidcConfig},
    error::ApiError,
};

/// The least time between two fetches of the keys, so that tokens naming unknown keys cannot
/// make Roster hammer the provider.
pub const REFRESH_FLOOR: Duration = Duration::from_secs(5);

/// How long a request waits for the provider's keys (discovery and key set together) before it
/// is answered `UNAVAILABLE`: a provider that hangs must not hold requests for the request's
/// whole time limit.
const KEYS_WITHIN: Duration = Duration::from_secs(3);

/// How long fetched keys are used before they are fetched again on the next sign-in.
const KEYS_MAX_AGE: Duration = Duration::from_secs(3600);

/// Clock difference allowed on `exp` and `nbf`, in seconds.
const LEEWAY_SECS: u64 = 60;

#[derive(Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    exp: i64,
    #[serde(default)]
    email: Option<String>,
    /// A boolean, or the string "true" as some providers send it.
    #[serde(default)]
    email_verified: Option<serde_json::Value>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    given_name: Option<String>,
    #[serde(default)]
    family_name: Option<String>,
    #[serde(default)]
    preferred_username: Option<String>,
    #[serde(default)]
    picture: Option<String>,
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
}

#[derive(Default)]
struct Keys {
    set: Option<JwkSet>,
    fetched: Option<Instant>,
}

/// The provider: its settings and the keys fetched from it.
pub struct Oidc {
    config: OidcConfig,
    http: reqwest::Client,
    keys: RwLock<Keys>,
    /// One fetch at a time; whoever waited finds the keys fresh.
    fetching: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc")
            .field("issuer", &self.config.issuer)
            .finish_non_exhaustive()
    }
}

impl Oidc {
    /// The provider of `config`.
    ///
    /// # Errors
    /// A URL that is not `https://` (or `http://` when allowed), or no audience.
    pub fn new(config: OidcConfig) -> anyhow::Result<Self> {
        let allowed = |url: &str| {
            url.starts_with("https://") || (config.allow_http && url.starts_with("http://"))
        };
        anyhow::ensure!(
            allowed(&config.issuer),
            "ROSTER_OIDC_ISSUER must be an https:// URL (http:// only with ROSTER_OIDC_ALLOW_HTTP=true)"
        );
        if let Some(url) = &config.jwks_url {
            anyhow::ensure!(
                allowed(url),
                "ROSTER_OIDC_JWKS_URL must be an https:// URL (http:// only with ROSTER_OIDC_ALLOW_HTTP=true)"
            );
        }
        anyhow::ensure!(
            !config.audience.trim().is_empty(),
            "ROSTER_OIDC_AUDIENCE is required with ROSTER_OIDC_ISSUER (the client id or API \
             identifier the provider puts in `aud`)"
        );
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .https_only(!config.allow_http)
            .build()?;
        Ok(Self {
            config,
            http,
            keys: RwLock::default(),
            fetching: Mutex::new(None),
        })
    }

    pub fn config(&self) -> &OidcConfig {
        &self.config
    }

    /// Whether `token` is for this provider to verify rather than Roster's own HS256 keys: it
    /// names the provider as its issuer, or is signed with anything but HS256.
    pub fn claims_token(&self, token: &str) -> bool {
        #[derive(Deserialize)]
        struct Issuer {
            iss: Option<String>,
        }
        let issuer = jsonwebtoken::dangerous::insecure_decode_claims::<Issuer>(token)
            .ok()
            .and_then(|c| c.iss);
        let alg = decode_header(token).ok().map(|h| h.alg);
        issuer.as_deref() == Some(self.config.issuer.as_str())
            || alg.is_some_and(|alg| alg != Algorithm::HS256)
    }

    /// Verifies a provider token: signature by a key of the provider's JWKS, `iss`, `aud`,
    /// `exp` and `nbf` (with a minute of leeway).
    ///
    /// # Errors
    /// `UNAUTHENTICATED` with the reason; `UNAVAILABLE` when the keys are needed and the
    /// provider does not answer.
    pub async fn verify(&self, token: &str) -> Result<Identity, ApiError> {
        let refuse = |why: String| ApiError::Unauthenticated(why);
        let header = decode_header(token).map_err(|e| {
            refuse(format!(
                "malformed token or unsupported algorithm (the provider's tokens must be \
                 signed with RS256, ES256 or EdDSA): {e}"
            ))
        })?;
        if header.alg.family() == jsonwebtoken::AlgorithmFamily::Hmac {
            return Err(refuse(format!(
                "{:?} is not accepted from the OpenID provider: its tokens must be signed \
                 with its published keys (RS256, ES256 or EdDSA)",
                header.alg
            )));
        }
        let jwk = self.key(header.kid.as_deref()).await?;
        if let Some(alg) = jwk.common.key_algorithm
            && format!("{alg:?}") != format!("{:?}", header.alg)
        {
            return Err(refuse(format!(
                "the token's algorithm {:?} is not its key's ({alg:?})",
                header.alg
            )));
        }
        let key = DecodingKey::from_jwk(&jwk)
            .map_err(|e| refuse(format!("the provider's key cannot be used: {e}")))?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        let data = decode::<Claims>(token, &key, &validation).map_err(|e| {
            refuse(match e.kind() {
                ErrorKind::ExpiredSignature => "the token expired".to_owned(),
                ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)".to_owned(),
                ErrorKind::InvalidIssuer => format!(
                    "unknown issuer: this server accepts tokens of {}",
                    self.config.issuer
                ),
                ErrorKind::InvalidAudience => format!(
                    "wrong audience: this server accepts tokens for {}",
                    self.config.audience
                ),
                ErrorKind::InvalidSignature => "bad signature".to_owned(),
                ErrorKind::MissingRequiredClaim(claim) => {
                    format!("the token has no `{claim}` claim")
                }
                other => format!("invalid token: {other:?}"),
            })
        })?;
        let identity = self.identity(data.claims);
        checked(&identity)?;
        Ok(identity)
    }

    fn identity(&self, claims: Claims) -> Identity {
        let email_verified = match &claims.email_verified {
            Some(serde_json::Value::Bool(b)) => *b,
            Some(serde_json::Value::String(s)) => s.eq_ignore_ascii_case("true"),
            _ => false,
        };
        let name = claims.name.clone().or_else(|| {
            let full = [claims.given_name.as_deref(), claims.family_name.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
            (!full.trim().is_empty())
                .then_some(full)
                .or_else(|| claims.preferred_username.clone())
        });
        let roles = self
            .config
            .role_claim
            .as_ref()
            .and_then(|claim| claims.rest.get(claim))
            .map(|value| match value {
                serde_json::Value::String(s) => vec![s.clone()],
                serde_json::Value::Array(items) => items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
                _ => Vec::new(),
            })
            .unwrap_or_default();
        Identity {
            issuer: claims.iss,
            subject: claims.sub,
            email: claims.email.map(|e| e.trim().to_lowercase()),
            email_verified,
            name,
            picture: claims.picture,
            roles,
            expires_at: claims.exp,
        }
    }

    /// The key `kid` names (the only key when the token names none and there is one), from
    /// the cache or, when the cache lacks it or is old, from the provider.
    async fn key(&self, kid: Option<&str>) -> Result<Jwk, ApiError> {
        let pick = |set: &JwkSet| -> Option<Jwk> {
            match kid {
                Some(kid) => set.find(kid).cloned(),
                None if set.keys.len() == 1 => set.keys.first().cloned(),
                None => None,
            }
        };
        {
            let keys = self.keys.read().await;
            if let (Some(set), Some(fetched)) = (&keys.set, keys.fetched)
                && fetched.elapsed() < KEYS_MAX_AGE
                && let Some(jwk) = pick(set)
            {
                return Ok(jwk);
            }
        }
        // Unknown or old: fetch, unless a fetch happened within the floor.
        let mut last = self.fetching.lock().await;
        let recent = last.is_some_and(|at| at.elapsed() < REFRESH_FLOOR);
        if !recent {
            *last = Some(Instant::now());
            match tokio::time::timeout(KEYS_WITHIN, self.fetch())
                .await
                .unwrap_or_else(|_| Err(anyhow::anyhow!("no answer within {KEYS_WITHIN:?}")))
            {
                Ok(set) => {
                    let mut keys = self.keys.write().await;
                    keys.set = Some(set);
                    keys.fetched = Some(Instant::now());
                }
                Err(err) => {
                    tracing::warn!(error = %err, issuer = %self.config.issuer, "cannot fetch the OpenID provider's keys");
                    // A cached key still verifies while the provider is away.
                    let keys = self.keys.read().await;
                    if let Some(jwk) = keys.set.as_ref().and_then(pick) {
                        return Ok(jwk);
                    }
                    return Err(ApiError::ProviderUnavailable);
                }
            }
        }
        drop(last);
        let keys = self.keys.read().await;
        match keys.set.as_ref() {
            Some(set) => pick(set).ok_or_else(|| {
                ApiError::Unauthenticated(match kid {
                    Some(kid) => format!("unknown key: the provider publishes no key `{kid}`"),
                    None => "the token names no key (`kid`) and the provider has several".into(),
                })
            }),
            None => Err(ApiError::ProviderUnavailable),
        }
    }

    /// Fetches the provider's keys now, as a sign-in would (`roster check`).
    ///
    /// # Errors
    /// The provider does not answer within the time a sign-in waits, or publishes no keys.
    pub async fn probe(&self) -> anyhow::Result<()> {
        let set = tokio::time::timeout(KEYS_WITHIN, self.fetch())
            .await
            .map_err(|_| anyhow::anyhow!("no answer within {KEYS_WITHIN:?}"))??;
        anyhow::ensure!(!set.keys.is_empty(), "the provider publishes no keys");
        Ok(())
    }

    /// The provider's key set, from `jwks_url` or the issuer's discovery document.
    async fn fetch(&self) -> anyhow::Result<JwkSet> {
        #[derive(Deserialize)]
        struct Discovery {
            issuer: String,
            jwks_uri: String,
        }
        let url = match &self.config.jwks_url {
            Some(url) => url.clone(),
            None => {
                let discovery: Discovery = self
                    .http
                    .get(format!(
                        "{}/.well-known/openid-configuration",
                        self.config.issuer.trim_end_matches('/')
                    ))
                    .send()
                    .await?
                    .error_for_status()?
                    .json()
                    .await?;
                anyhow::ensure!(
                    discovery.issuer == self.config.issuer,
                    "the discovery document names issuer {} instead of {}",
                    discovery.issuer,
                    self.config.issuer
                );
                discovery.jwks_uri
            }
        };
        let set: JwkSet = self
            .http
            .get(&url)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let kids: HashSet<_> = set
            .keys
            .iter()
            .filter_map(|k| k.common.key_id.clone())
            .collect();
        tracing::info!(keys = set.keys.len(), kids = ?kids, "fetched the OpenID provider's keys");
        Ok(set)
    }
}

/// A provider's claims are input like any other: an identity whose subject or e-mail no column
/// could store, or whose e-mail is not an address, is refused with the reason, before anything
/// reads or writes with it. (Names and pictures are checked where a user is created.)
///
/// # Errors
/// `UNAUTHENTICATED` naming the claim.
fn checked(identity: &Identity) -> Result<(), ApiError> {
    let text = |value: &str, max: usize| {
        !value.is_empty()
            && value.chars().count() <= max
            && value.chars().all(crate::domain::validate::storable)
    };
    if !text(&identity.subject, 255) {
        return Err(ApiError::Unauthenticated(
            "the token's `sub` claim is empty, too long or holds control characters".into(),
        ));
    }
    if let Some(email) = &identity.email {
        let address = text(email, 254)
            && !email.chars().any(char::is_whitespace)
            && email.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && domain.contains('.') && !domain.contains('@')
            });
        if !address {
            return Err(ApiError::Unauthenticated(
                "the token's `email` claim is not an e-mail address".into(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> OidcConfig {
        OidcConfig {
            issuer: "https://sso.example.edu/realms/campus".into(),
            audience: "roster-app".into(),
            auto_create: true,
            role_claim: Some("groups".into()),
            ..OidcConfig::default()
        }
    }

    #[test]
    fn settings_need_https_and_an_audience() {
        assert!(Oidc::new(config()).is_ok());
        let http = OidcConfig {
            issuer: "http://sso.local".into(),
            ..config()
        };
        assert!(Oidc::new(http.clone()).is_err());
        assert!(
            Oidc::new(OidcConfig {
                allow_http: true,
                ..http
            })
            .is_ok()
        );
        assert!(
            Oidc::new(OidcConfig {
                audience: " ".into(),
                ..config()
            })
            .is_err()
        );
    }

    #[test]
    fn claims_become_an_identity() {
        let oidc = Oidc::new(config()).unwrap();
        let claims: Claims = serde_json::from_value(serde_json::json!({
            "iss": "https://sso.example.edu/realms/campus", "sub": "u-1", "exp": 2_000_000_000,
            "email": " Ada@Example.EDU ", "email_verified": "true",
            "given_name": "Ada", "family_name": "Lovelace", "groups": ["staff", "teacher"],
        }))
        .unwrap();
        let identity = oidc.identity(claims);
        assert_eq!(identity.email.as_deref(), Some("ada@example.edu"));
        assert!(identity.email_verified);
        assert_eq!(identity.name.as_deref(), Some("Ada Lovelace"));
        assert_eq!(identity.roles, ["staff", "teacher"]);
    }

    #[test]
    fn claims_no_column_could_store_are_refused() {
        let good = Identity {
            issuer: "https://sso.example.edu".into(),
            subject: "248289761001".into(),
            email: Some("ada@example.edu".into()),
            ..Identity::default()
        };
        assert!(checked(&good).is_ok());
        for email in [
            "ada\0@example.edu",
            "not-an-address",
            "ada@localhost",
            "two@@example.edu",
            "ada lovelace@example.edu",
            "ada\u{7}@example.edu",
        ] {
            let bad = Identity {
                email: Some(email.into()),
                ..good.clone()
            };
            assert!(checked(&bad).is_err(), "{email:?} was accepted");
        }
        let long = Identity {
            email: Some(format!("{}@example.edu", "a".repeat(300))),
            ..good.clone()
        };
        assert!(checked(&long).is_err(), "an over-long e-mail");
        let subject = Identity {
            subject: "sub\0".into(),
            ..good.clone()
        };
        assert!(checked(&subject).is_err(), "a NUL in the subject");
    }

    #[test]
    fn only_the_providers_tokens_go_to_the_provider() {
        let oidc = Oidc::new(config()).unwrap();
        let own = crate::identity::tokens::TokenKeys::new(b"0123456789abcdef0123456789abcdef")
            .unwrap()
            .issue(uuid::Uuid::new_v4(), Duration::from_secs(60))
            .unwrap();
        assert!(!oidc.claims_token(&own), "Roster's own HS256 token");
        let named = format!(
            "eyJhbGciOiJIUzI1NiJ9.{}.c2ln",
            base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                r#"{"iss":"https://sso.example.edu/realms/campus"}"#
            )
        );
        assert!(oidc.claims_token(&named), "HS256 naming the provider");
    }
}
