//! The errors a client can see, each with a stable `extensions.code`.
//!
//! Every failure on a request path ends up as an [`ApiError`]. Database and other unexpected
//! errors become [`ApiError::Internal`]: the details are logged with a correlation id and the client
//! sees only the id. The mapping to GraphQL errors happens in one place,
//! [`crate::graphql::errors`], so a resolver can use `?` on anything without leaking text.

use sea_orm::{DbErr, RuntimeErr, SqlErr};
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request needs a signed-in user, or its bearer token is not valid. `UNAUTHENTICATED`.
    #[error("{0}")]
    Unauthenticated(String),
    /// The viewer is signed in but may not do this. `FORBIDDEN`.
    #[error("{0}")]
    Forbidden(String),
    /// The thing named does not exist or the viewer may not know it exists. `NOT_FOUND`.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// An argument is invalid; `field` names it (also in `extensions.field`). `BAD_USER_INPUT`.
    #[error("{field}: {message}")]
    BadUserInput { field: String, message: String },
    /// The user already has an active enrollment in this course. `ALREADY_ENROLLED`.
    #[error("already enrolled in this course")]
    AlreadyEnrolled,
    /// No seat is free and the section has no waitlist. `SECTION_FULL`.
    #[error("the section is full")]
    SectionFull,
    /// The section or its course is not active. `SECTION_INACTIVE`.
    #[error("{0}")]
    SectionInactive(String),
    /// Prerequisite certifications are missing or expired; `extensions.missingCourseIds` lists
    /// the courses. `PREREQUISITES_MISSING`.
    #[error("missing prerequisite certifications: {}", .names.join(", "))]
    PrerequisitesMissing { ids: Vec<Uuid>, names: Vec<String> },
    /// The section's meetings overlap a section the user is registered in. `SCHEDULE_CONFLICT`.
    #[error("schedule conflicts with {0}")]
    ScheduleConflict(String),
    /// The enrollment's status does not allow this change (or is not the one the client
    /// expected); `extensions.currentStatus` says where it stands. `INVALID_TRANSITION`.
    #[error("cannot go from {from} to {to}")]
    InvalidTransition { from: String, to: String },
    /// The offered seat's deadline passed before it was accepted; the seat went on to the next
    /// waiter. `OFFER_EXPIRED`.
    #[error("the offer expired; the seat went to the next person on the waitlist")]
    OfferExpired,
    /// The section's enrollment window has not opened; `extensions.opensAt` says when it does
    /// (the student's own appointment, if any). `ENROLLMENT_NOT_OPEN`.
    #[error("enrollment opens at {}", .opens_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))]
    EnrollmentNotOpen {
        opens_at: chrono::DateTime<chrono::Utc>,
    },
    /// The section's enrollment window has closed; `extensions.closedAt` says when.
    /// `ENROLLMENT_CLOSED`.
    #[error("enrollment closed at {}", .closed_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))]
    EnrollmentClosed {
        closed_at: chrono::DateTime<chrono::Utc>,
    },
    /// The term's deadline for this change has passed; only staff may still make it.
    /// `DEADLINE_PASSED`.
    #[error("{0}")]
    DeadlinePassed(String),
    /// The team pass key does not match. `INVALID_PASS_KEY`.
    #[error("invalid pass key")]
    InvalidPassKey,
    /// Too many wrong pass keys for this team from this user lately; `extensions.retryAfterSeconds`
    /// says when the next attempt is allowed. `TOO_MANY_ATTEMPTS`.
    #[error("too many wrong pass keys for this team: try again in {retry_after_seconds} seconds")]
    TooManyAttempts { retry_after_seconds: i64 },
    /// A subscriber fell more than the bus holds behind; its subscription ends and the client
    /// should subscribe again. `SUBSCRIBER_TOO_SLOW`.
    #[error("the subscriber fell {missed} changes behind; subscribe again")]
    SubscriberTooSlow { missed: u64 },
    /// The change clashes with existing data (a duplicate name, say). `CONFLICT`.
    #[error("{0}")]
    Conflict(String),
    /// The database does not answer (stopped, unreachable, or every connection busy past the
    /// acquire timeout). Nothing was changed that the client must know of; try again.
    /// `UNAVAILABLE` (HTTP 503 under `application/graphql-response+json`).
    #[error("the database is unavailable; try again shortly")]
    Unavailable,
    /// More writes are under way and waiting than the database can serve within the request
    /// timeout: this one was refused at once and changed nothing; retry after a moment.
    /// `UNAVAILABLE` (HTTP 503 with `Retry-After` under `application/graphql-response+json`).
    #[error("the server is busy with other writes; try again in a moment")]
    Overloaded,
    /// The student's lottery window has ended and its draw is under way: their enrollment
    /// waits for it, so that nobody goes ahead of the draw. `UNAVAILABLE` (HTTP 503 with
    /// `Retry-After`); the draw takes seconds.
    #[error("the lottery of your enrollment window is being drawn; try again in a few seconds")]
    LotteryDrawing,
    /// The OpenID provider's keys could not be had within a few seconds and none are cached, so
    /// its token cannot be checked now. `UNAVAILABLE`, as for the database, naming the provider.
    #[error("the identity provider is unavailable; try again shortly")]
    ProviderUnavailable,
    /// Anything unexpected. The client sees only a correlation id; the cause is logged. `INTERNAL`.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    /// The stable `extensions.code` clients match on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated(_) => "UNAUTHENTICATED",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::NotFound(_) => "NOT_FOUND",
            Self::BadUserInput { .. } => "BAD_USER_INPUT",
            Self::AlreadyEnrolled => "ALREADY_ENROLLED",
            Self::SectionFull => "SECTION_FULL",
            Self::SectionInactive(_) => "SECTION_INACTIVE",
            Self::PrerequisitesMissing { .. } => "PREREQUISITES_MISSING",
            Self::ScheduleConflict(_) => "SCHEDULE_CONFLICT",
            Self::InvalidTransition { .. } => "INVALID_TRANSITION",
            Self::OfferExpired => "OFFER_EXPIRED",
            Self::EnrollmentNotOpen { .. } => "ENROLLMENT_NOT_OPEN",
            Self::EnrollmentClosed { .. } => "ENROLLMENT_CLOSED",
            Self::DeadlinePassed(_) => "DEADLINE_PASSED",
            Self::InvalidPassKey => "INVALID_PASS_KEY",
            Self::TooManyAttempts { .. } => "TOO_MANY_ATTEMPTS",
            Self::SubscriberTooSlow { .. } => "SUBSCRIBER_TOO_SLOW",
            Self::Conflict(_) => "CONFLICT",
            Self::Unavailable
            | Self::ProviderUnavailable
            | Self::Overloaded
            | Self::LotteryDrawing => "UNAVAILABLE",
            Self::Internal(_) => "INTERNAL",
        }
    }

    /// Shorthand for [`ApiError::BadUserInput`].
    pub fn bad_input(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::BadUserInput {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Shorthand for [`ApiError::Forbidden`].
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::Forbidden(message.into())
    }

    /// The error for a personal request made without a token.
    pub fn sign_in_required() -> Self {
        Self::Unauthenticated("sign in required: send an Authorization: Bearer token".into())
    }

    /// Maps a unique-constraint violation to a domain error chosen by the caller; any other
    /// database error stays internal. This is how races lost to a unique index surface as
    /// `ALREADY_ENROLLED` or `CONFLICT` rather than as failures.
    pub fn on_unique_violation(err: DbErr, domain: impl FnOnce() -> ApiError) -> ApiError {
        match err.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(_)) => domain(),
            _ => err.into(),
        }
    }
}

impl From<DbErr> for ApiError {
    fn from(err: DbErr) -> Self {
        if is_unavailable(&err) {
            tracing::warn!(error = %err, "the database is unavailable");
            return Self::Unavailable;
        }
        Self::Internal(Box::new(err))
    }
}

/// Whether a database error means the database could not be reached or stopped answering
/// (no connection within the acquire timeout, a connection refused or cut, the server shutting
/// down), rather than a fault of the statement.
pub fn is_unavailable(err: &DbErr) -> bool {
    use sea_orm::sqlx::Error as Sqlx;
    let runtime = match err {
        DbErr::ConnectionAcquire(_) => return true,
        DbErr::Conn(e) | DbErr::Exec(e) | DbErr::Query(e) => e,
        _ => return false,
    };
    let RuntimeErr::SqlxError(sqlx_err) = runtime else {
        return false;
    };
    match sqlx_err.as_ref() {
        Sqlx::Io(_)
        | Sqlx::Tls(_)
        | Sqlx::PoolTimedOut
        | Sqlx::PoolClosed
        | Sqlx::WorkerCrashed
        | Sqlx::Protocol(_) => true,
        Sqlx::Database(db) => {
            // PostgreSQL's connection exceptions (08…) and operator intervention (57P0…:
            // shutdown, crash, cannot connect now).
            let code = db.code().unwrap_or_default();
            code.starts_with("08") || code.starts_with("57P0")
        }
        _ => false,
    }
}

/// Whether a database error means "try the transaction again": SQLite's busy/locked, or
/// PostgreSQL's serialization failure and deadlock.
pub fn is_retryable(err: &DbErr) -> bool {
    let runtime = match err {
        DbErr::Conn(e) | DbErr::Exec(e) | DbErr::Query(e) => e,
        _ => return false,
    };
    let RuntimeErr::SqlxError(sqlx_err) = runtime else {
        return false;
    };
    let Some(db_err) = sqlx_err.as_database_error() else {
        return false;
    };
    let code = db_err.code().unwrap_or_default();
    matches!(code.as_ref(), "5" | "6" | "517" | "262" | "40001" | "40P01")
}

impl ApiError {
    /// What a client may read of this error: its message, except for an internal error, whose
    /// cause is logged under a correlation id that the message names instead.
    pub fn public_message(&self) -> String {
        match self {
            Self::Internal(cause) => {
                let id = Uuid::new_v4();
                tracing::error!(correlation_id = %id, error = %cause, "internal error");
                format!("internal error (correlation id {id})")
            }
            other => other.to_string(),
        }
    }

    /// Whether the failure was a lost race the database asks us to retry (see [`is_retryable`]).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Internal(cause) => cause.downcast_ref::<DbErr>().is_some_and(is_retryable),
            _ => false,
        }
    }
}
