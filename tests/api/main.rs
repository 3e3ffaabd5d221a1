//! Roster's integration tests, in one test binary.
//!
//! Each module was once a test file of its own; every such file was a crate that linked the whole
//! application, and linking them was most of the build. `helpers` is the harness they share: the
//! application under test on a fresh SQLite or PostgreSQL database, and typed requests.

mod helpers;

mod auth;
mod calendar;
mod change_feed;
mod cli;
mod crash;
mod deployment;
mod discovery;
mod enrollment;
mod enrollment_stress;
mod export;
mod floods;
mod fuzz;
mod http;
mod layout;
mod limits;
mod load;
mod lottery;
mod management;
mod migrations;
mod notifications;
mod offers;
mod operations;
mod outage;
mod oversight;
mod response_cache;
mod rules;
mod schema;
mod scope;
mod seed_scale;
mod staff;
mod subscriptions;
mod teams;
mod text;
mod time;
mod topology;
mod upgrade;
mod write_path;
