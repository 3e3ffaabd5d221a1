//! Roster's schema, one migration per table (and one per later change), applied in order at
//! start-up.
//!
//! Plain column types, CHECK constraints and foreign keys go through SeaQuery's builder; partial
//! and expression indexes are written in the SQL that SQLite and PostgreSQL share.

pub use sea_orm_migration::prelude::*;

mod m20261123_000001_create_organizations;
mod m20261123_000002_create_users;
mod m20261123_000003_create_courses;
mod m20261123_000004_create_course_prerequisites;
mod m20261123_000005_create_sections;
mod m20261123_000006_create_enrollments;
mod m20261123_000007_create_enrollment_events;
mod m20261123_000008_create_certifications;
mod m20261123_000009_create_teams;
mod m20261123_000010_create_team_members;
mod m20261123_000011_create_team_join_failures;
mod m20261125_000012_add_finished_seats_and_skips;
mod m20261125_000013_add_assistants_and_note_authors;
mod m20261125_000014_index_staff_listings;
mod m20261125_000015_create_notifications;
mod m20261125_000016_add_offer_mode;
mod m20261125_000017_create_user_identities;
mod m20261207_000018_create_changes;
mod m20261207_000019_create_terms;
mod m20261207_000020_create_appointments;
mod m20261207_000021_add_lottery;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_create_organizations::Migration),
            Box::new(m20261123_000002_create_users::Migration),
            Box::new(m20261123_000003_create_courses::Migration),
            Box::new(m20261123_000004_create_course_prerequisites::Migration),
            Box::new(m20261123_000005_create_sections::Migration),
            Box::new(m20261123_000006_create_enrollments::Migration),
            Box::new(m20261123_000007_create_enrollment_events::Migration),
            Box::new(m20261123_000008_create_certifications::Migration),
            Box::new(m20261123_000009_create_teams::Migration),
            Box::new(m20261123_000010_create_team_members::Migration),
            Box::new(m20261123_000011_create_team_join_failures::Migration),
            Box::new(m20261125_000012_add_finished_seats_and_skips::Migration),
            Box::new(m20261125_000013_add_assistants_and_note_authors::Migration),
            Box::new(m20261125_000014_index_staff_listings::Migration),
            Box::new(m20261125_000015_create_notifications::Migration),
            Box::new(m20261125_000016_add_offer_mode::Migration),
            Box::new(m20261125_000017_create_user_identities::Migration),
            Box::new(m20261207_000018_create_changes::Migration),
            Box::new(m20261207_000019_create_terms::Migration),
            Box::new(m20261207_000020_create_appointments::Migration),
            Box::new(m20261207_000021_add_lottery::Migration),
        ]
    }
}
