//! Roster: a GraphQL API server for course discovery, enrollment, waitlists and certifications.
//!
//! `main.rs` only parses the command line; everything it runs lives here so that the tests drive
//! the very same [`app::App`] the binary serves. The modules, from the top down
//! (docs/architecture.md#layers): each uses only those below it.
//!
//! - [`cli`], [`config`]: the command line and every setting; [`ops`]: `check` and `backup`;
//! - [`http`]: serving HTTP (the router, GraphQL over HTTP, WebSocket, exports, GraphiQL,
//!   health and metrics), over [`app`], the application every request shares, and
//!   [`response_cache`];
//! - [`graphql`]: the schema, resolvers, loaders and hooks;
//! - [`identity`]: bearer tokens (Roster's own and an OpenID provider's) → the viewer;
//! - [`delivery`]: notifications beyond the inbox (Web Push, e-mail, webhooks);
//! - [`service`]: one function per use case, each write one transaction;
//! - [`store`]: the database, the one write path, the change feed, the clock;
//! - [`domain`]: pure rules, no I/O; [`jobs`], [`error`], [`metrics`], [`telemetry`]: the
//!   shapes and plumbing everything shares.
//!
//! [`seed`] loads demo and benchmark data through the services and the store.

// async-graphql nests one future type per level of the schema (an object's fields resolved
// by `try_join_all` inside its parent's); proving the deepest of them `Send` takes more than
// the default 128 steps in a release build (E0275 on `PageInfo`'s container).
#![recursion_limit = "256"]

pub mod app;
pub mod cli;
pub mod config;
pub mod delivery;
pub mod domain;
pub mod error;
pub mod graphql;
pub mod http;
pub mod identity;
pub mod jobs;
pub mod metrics;
pub mod ops;
pub mod response_cache;
pub mod seed;
pub mod service;
pub mod store;
pub mod telemetry;
