use sea_orm_migration::{prelude::*, schema::*};

use super::m20261123_000002_create_users::Users;
use super::m20261123_000003_create_courses::Courses;
use super::m20261123_000005_create_sections::Sections;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Enrollments::Table)
                    .col(pk_uuid(Enrollments::Id))
                    .col(uuid(Enrollments::UserId))
                    .col(uuid(Enrollments::CourseId))
                    .col(uuid(Enrollments::SectionId))
                    .col(string_len(Enrollments::Status, 16))
                    .col(boolean(Enrollments::Visibility).default(true))
                    .col(timestamp_with_time_zone(Enrollments::EnrolledAt))
                    .col(uuid_null(Enrollments::EnrolledBy))
                    .col(boolean(Enrollments::PrerequisiteCheckPassed))
                    .col(timestamp_with_time_zone_null(
                        Enrollments::PrerequisiteCheckAt,
                    ))
                    .col(timestamp_with_time_zone_null(Enrollments::SeatReservedAt))
                    .col(big_integer_null(Enrollments::WaitlistTicket))
                    .col(timestamp_with_time_zone_null(Enrollments::CompletedAt))
                    .col(uuid_null(Enrollments::CompletedBy))
                    .col(json_binary_null(Enrollments::CompletionEvidence))
                    .col(timestamp_with_time_zone_null(Enrollments::CancelledAt))
                    .col(timestamp_with_time_zone_null(Enrollments::WithdrawnAt))
                    .col(text_null(Enrollments::Reason))
                    .col(text_null(Enrollments::Notes))
                    .col(timestamp_with_time_zone(Enrollments::CreatedAt))
                    .col(timestamp_with_time_zone(Enrollments::UpdatedAt))
                    .check((
                        "enrollments_status_check",
                        Expr::cust(
                            "status IN ('PENDING', 'REGISTERED', 'WAITLISTED', 'COMPLETED', \
                             'FAILED', 'WITHDRAWN', 'CANCELLED')",
                        ),
                    ))
                    .check((
                        "enrollments_waitlist_ticket_check",
                        Expr::cust("status <> 'WAITLISTED' OR waitlist_ticket IS NOT NULL"),
                    ))
                    .check((
                        "enrollments_completed_check",
                        Expr::cust("status <> 'COMPLETED' OR completed_at IS NOT NULL"),
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_enrollments_user")
                            .from(Enrollments::Table, Enrollments::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_enrollments_course")
                            .from(Enrollments::Table, Enrollments::CourseId)
                            .to(Courses::Table, Courses::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_enrollments_section")
                            .from(Enrollments::Table, Enrollments::SectionId)
                            .to(Sections::Table, Sections::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_enrollments_enrolled_by")
                            .from(Enrollments::Table, Enrollments::EnrolledBy)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_enrollments_completed_by")
                            .from(Enrollments::Table, Enrollments::CompletedBy)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        // Invariant 2 at the database level: one active enrollment per user and course, however
        // many requests race. Partial indexes read the same on SQLite and PostgreSQL.
        db.execute_unprepared(
            "CREATE UNIQUE INDEX enrollments_active_user_course_uq ON enrollments (user_id, course_id) \
             WHERE status IN ('PENDING', 'REGISTERED', 'WAITLISTED')",
        )
        .await?;
        // Seat and waitlist reads (and waitlist order within a section) walk this one.
        db.execute_unprepared(
            "CREATE INDEX enrollments_section_status_idx \
             ON enrollments (section_id, status, waitlist_ticket)",
        )
        .await?;
        db.execute_unprepared("CREATE INDEX enrollments_user_idx ON enrollments (user_id, status)")
            .await?;
        db.execute_unprepared(
            "CREATE INDEX enrollments_course_status_idx ON enrollments (course_id, status)",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Enrollments::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
pub enum Enrollments {
    Table,
    Id,
    UserId,
    CourseId,
    SectionId,
    Status,
    Visibility,
    EnrolledAt,
    EnrolledBy,
    PrerequisiteCheckPassed,
    PrerequisiteCheckAt,
    SeatReservedAt,
    WaitlistTicket,
    CompletedAt,
    CompletedBy,
    CompletionEvidence,
    CancelledAt,
    WithdrawnAt,
    Reason,
    Notes,
    CreatedAt,
    UpdatedAt,
}
