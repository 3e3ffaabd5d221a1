//! Roster: a GraphQL API server for course discovery, enrollment, waitlists and certifications.
//!
//! `main.rs` only parses the command line; everything it runs lives here so that the tests drive
//! the very same [`app::App`] the binary serves.

pub mod app;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod db;
pub mod delivery;
pub mod domain;
pub mod error;
pub mod events;
pub mod export;
pub mod graphiql;
pub mod graphql;
pub mod http;
pub mod jobs;
pub mod metrics;
pub mod oidc;
pub mod response_cache;
pub mod seed;
pub mod service;
pub mod store;
pub mod telemetry;
