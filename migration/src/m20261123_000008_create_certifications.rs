use sea_orm_migration::{prelude::*, schema::*};

use super::m20261123_000002_create_users::Users;
use super::m20261123_000003_create_courses::Courses;
use super::m20261123_000006_create_enrollments::Enrollments;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Certifications::Table)
                    .col(pk_uuid(Certifications::Id))
                    .col(uuid(Certifications::UserId))
                    .col(uuid(Certifications::CourseId))
                    // Invariant 5: one certification per enrollment, whatever retries happen.
                    .col(uuid_uniq(Certifications::EnrollmentId))
                    .col(timestamp_with_time_zone(Certifications::IssuedAt))
                    .col(timestamp_with_time_zone_null(Certifications::ExpiresAt))
                    .check((
                        "certifications_expiry_check",
                        Expr::cust("expires_at IS NULL OR expires_at > issued_at"),
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_certifications_user")
                            .from(Certifications::Table, Certifications::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_certifications_course")
                            .from(Certifications::Table, Certifications::CourseId)
                            .to(Courses::Table, Courses::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_certifications_enrollment")
                            .from(Certifications::Table, Certifications::EnrollmentId)
                            .to(Enrollments::Table, Enrollments::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("certifications_user_course_idx")
                    .table(Certifications::Table)
                    .col(Certifications::UserId)
                    .col(Certifications::CourseId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Certifications::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Certifications {
    Table,
    Id,
    UserId,
    CourseId,
    EnrollmentId,
    IssuedAt,
    ExpiresAt,
}
