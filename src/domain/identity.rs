//! What an OpenID provider's token proves (an [`Identity`]) and the settings that say how an
//! identity becomes a Roster user ([`OidcConfig`]); verifying tokens is
//! `crate::identity::oidc`, finding or creating the user `service::users::from_identity`.

/// The settings of `ROSTER_OIDC_*`.
#[derive(Clone, Debug, Default)]
pub struct OidcConfig {
    /// The provider's issuer URL, exactly as its tokens' `iss`.
    pub issuer: String,
    /// The JWKS URL; by default read from the issuer's discovery document.
    pub jwks_url: Option<String>,
    /// The `aud` Roster's tokens carry (its client id, or the API's identifier).
    pub audience: String,
    /// Allows `http://` URLs (tests, private networks); otherwise only `https://`.
    pub allow_http: bool,
    /// Creates a user on first sign-in when none matches.
    pub auto_create: bool,
    /// The organization users created on first sign-in belong to (by name; created if missing).
    pub organization: Option<String>,
    /// A claim (`roles`, `groups`) whose values may name the role of a user created on first
    /// sign-in: `admin`, `coordinator`, `teacher` or `student`. Never changes an existing user.
    pub role_claim: Option<String>,
}

/// Who a valid provider token says the user is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    pub picture: Option<String>,
    /// The values of the configured role claim.
    pub roles: Vec<String>,
    /// When the token expires (seconds since the epoch).
    pub expires_at: i64,
}
