//! SeaORM entities for Roster, one module per table, in sea-orm-cli's shape.
//!
//! Hand-written types shared by several tables (enums stored as text, the JSON schedule) live in
//! [`types`], beside the generated modules rather than inside them.

pub mod prelude;

pub mod appointment;
pub mod calendar_feed;
pub mod certification;
pub mod course;
pub mod course_prerequisite;
pub mod enrollment;
pub mod enrollment_event;
pub mod notification;
pub mod notification_delivery;
pub mod organization;
pub mod positional;
pub mod push_subscription;
pub mod section;
pub mod team;
pub mod team_join_failure;
pub mod team_member;
pub mod term;
pub mod types;
pub mod user;
pub mod user_identity;
