//! Bearer tokens and the viewer they identify.
//!
//! A token is Roster's own (HS256, `sub` = the user id, minted by `roster token`) or, when an
//! OpenID provider is configured, the provider's (see [`super::oidc`]). Either way the user's
//! role and organization are read from the database for each request, so a demotion takes
//! effect at once.

use std::{sync::Arc, time::Duration};

use entity::user;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use sea_orm::{DatabaseConnection, EntityTrait};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::oidc::Oidc;
use crate::{domain::viewer::Viewer, error::ApiError, store::Store};

/// The shortest secret accepted: HS256 is only as strong as its key.
pub const MIN_SECRET_LEN: usize = 32;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: Uuid,
    iat: i64,
    exp: i64,
}

/// Signs and checks HS256 bearer tokens, and holds the OpenID provider whose tokens are
/// accepted beside them, if one is configured.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    oidc: Option<Arc<Oidc>>,
    /// The key calendar feed tokens are derived with: HMAC-SHA256 of a fixed label under the
    /// signing secret, so it lasts as long as the secret and is no bearer token.
    calendar: [u8; 32],
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeys(..)")
    }
}

impl TokenKeys {
    /// Keys from a shared secret.
    ///
    /// # Errors
    /// The secret is shorter than [`MIN_SECRET_LEN`] bytes.
    pub fn new(secret: &[u8]) -> anyhow::Result<Self> {
        anyhow::ensure!(
            secret.len() >= MIN_SECRET_LEN,
            "the JWT secret must be at least {MIN_SECRET_LEN} bytes (got {})",
            secret.len()
        );
        // Only HS256 is accepted: `alg: none` and every other algorithm fail validation.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = 5;
        Ok(Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            oidc: None,
            calendar: {
                use hmac::{Hmac, Mac};
                let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret)?;
                mac.update(b"roster calendar feed key");
                mac.finalize().into_bytes().into()
            },
        })
    }

    /// The key calendar feed tokens are derived with (see `service::calendar`).
    pub fn calendar_key(&self) -> [u8; 32] {
        self.calendar
    }

    /// Also accepts the tokens of this OpenID provider.
    #[must_use]
    pub fn with_oidc(mut self, oidc: Arc<Oidc>) -> Self {
        self.oidc = Some(oidc);
        self
    }

    /// The OpenID provider whose tokens are accepted, if any.
    pub fn oidc(&self) -> Option<&Arc<Oidc>> {
        self.oidc.as_ref()
    }

    /// A token for `user_id` that expires after `ttl`.
    ///
    /// # Errors
    /// Signing failed (it does not, for HMAC keys; the error is passed on rather than hidden).
    pub fn issue(&self, user_id: Uuid, ttl: Duration) -> anyhow::Result<String> {
        let now = chrono::Utc::now().timestamp();
        let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
        let claims = Claims {
            sub: user_id,
            iat: now,
            exp: now.saturating_add(ttl),
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    /// The user id a valid token names.
    ///
    /// # Errors
    /// `UNAUTHENTICATED` for any token that is malformed, expired, not yet valid, signed with
    /// another key or algorithm, or missing a claim.
    pub fn verify(&self, token: &str) -> Result<Uuid, ApiError> {
        self.verify_with_expiry(token).map(|(sub, _)| sub)
    }

    /// [`TokenKeys::verify`], with the token's `exp`.
    fn verify_with_expiry(&self, token: &str) -> Result<(Uuid, i64), ApiError> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| (data.claims.sub, data.claims.exp))
            .map_err(|e| ApiError::Unauthenticated(format!("invalid token: {e}")))
    }
}

/// Resolves an `Authorization` header value to a viewer.
///
/// No header means an anonymous request (`Ok(None)`); a header that is present but not a valid
/// bearer token for an existing user is `UNAUTHENTICATED`, never silently anonymous.
///
/// # Errors
/// `UNAUTHENTICATED` as above; `INTERNAL` when the database fails.
pub async fn viewer_from_header(
    store: &Store,
    keys: &TokenKeys,
    header: Option<&str>,
) -> Result<Option<Viewer>, ApiError> {
    Ok(authenticate(store, keys, header)
        .await?
        .map(|(viewer, _)| viewer))
}

/// [`viewer_from_header`], with the time the token expires (seconds since the epoch): a
/// WebSocket connection closes then.
///
/// A token naming the configured OpenID provider as its issuer, or signed with anything but
/// HS256, is the provider's to verify, and its user is found (or created) by
/// `service::users::from_identity`; any other is Roster's own HS256 token.
///
/// # Errors
/// `UNAUTHENTICATED` as above, with the reason; `UNAVAILABLE` when the database or the
/// provider's keys cannot be had.
pub async fn authenticate(
    store: &Store,
    keys: &TokenKeys,
    header: Option<&str>,
) -> Result<Option<(Viewer, i64)>, ApiError> {
    let Some(header) = header.map(str::trim).filter(|h| !h.is_empty()) else {
        return Ok(None);
    };
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .ok_or_else(|| {
            ApiError::Unauthenticated("the Authorization header must be `Bearer <token>`".into())
        })?;
    let token = token.trim();
    if let Some(oidc) = keys.oidc.as_ref().filter(|oidc| oidc.claims_token(token)) {
        let identity = oidc.verify(token).await?;
        let user = crate::service::users::from_identity(store, oidc.config(), &identity).await?;
        return Ok(Some((Viewer { user }, identity.expires_at)));
    }
    let (user_id, expires_at) = keys.verify_with_expiry(token)?;
    let user = find_user(store.db(), user_id)
        .await?
        .ok_or_else(|| ApiError::Unauthenticated("the token's user does not exist".into()))?;
    Ok(Some((Viewer { user }, expires_at)))
}

async fn find_user(db: &DatabaseConnection, id: Uuid) -> Result<Option<user::Model>, ApiError> {
    Ok(user::Entity::find_by_id(id).one(db).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn issued_token_verifies_to_its_user() {
        let keys = TokenKeys::new(SECRET).unwrap();
        let id = Uuid::new_v4();
        let token = keys.issue(id, Duration::from_secs(60)).unwrap();
        assert_eq!(keys.verify(&token).unwrap(), id);
    }

    #[test]
    fn token_signed_with_another_secret_is_rejected() {
        let keys = TokenKeys::new(SECRET).unwrap();
        let other = TokenKeys::new(b"another-secret-another-secret-xx").unwrap();
        let token = other
            .issue(Uuid::new_v4(), Duration::from_secs(60))
            .unwrap();
        assert_eq!(keys.verify(&token).unwrap_err().code(), "UNAUTHENTICATED");
    }

    #[test]
    fn expired_token_is_rejected() {
        let keys = TokenKeys::new(SECRET).unwrap();
        let claims = Claims {
            sub: Uuid::new_v4(),
            iat: 0,
            exp: chrono::Utc::now().timestamp() - 3600,
        };
        let token = jsonwebtoken::encode(&Header::default(), &claims, &keys.encoding).unwrap();
        assert_eq!(keys.verify(&token).unwrap_err().code(), "UNAUTHENTICATED");
    }

    #[test]
    fn short_secret_is_refused() {
        assert!(TokenKeys::new(b"short").is_err());
    }
}
