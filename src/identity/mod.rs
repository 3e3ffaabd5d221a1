//! Who a request acts as: a bearer token, Roster's own ([`tokens`]) or an OpenID provider's
//! ([`oidc`]), resolved to a [`crate::domain::viewer::Viewer`] whose role and organization are
//! read from the database for each request.

pub mod oidc;
pub mod tokens;
