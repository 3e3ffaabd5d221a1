use sea_orm_migration::{prelude::*, schema::*};

use super::m20261123_000003_create_courses::Courses;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Sections::Table)
                    .col(pk_uuid(Sections::Id))
                    .col(uuid(Sections::CourseId))
                    .col(string_len(Sections::Name, 100))
                    .col(json_binary(Sections::Schedule))
                    .col(integer(Sections::Weekdays).default(0))
                    .col(integer_null(Sections::Capacity))
                    .col(integer(Sections::RegisteredCount).default(0))
                    .col(integer(Sections::PendingCount).default(0))
                    .col(integer(Sections::WaitlistCount).default(0))
                    .col(big_integer(Sections::WaitlistSeq).default(0))
                    .col(boolean(Sections::IsActive).default(true))
                    .col(boolean(Sections::RequiresApproval).default(false))
                    .col(boolean(Sections::WaitlistEnabled).default(true))
                    .col(timestamp_with_time_zone(Sections::CreatedAt))
                    .col(timestamp_with_time_zone(Sections::UpdatedAt))
                    .check((
                        "sections_name_check",
                        Expr::cust("length(name) BETWEEN 1 AND 100"),
                    ))
                    // 0 is rejected rather than read as "unlimited": NULL says that.
                    .check((
                        "sections_capacity_check",
                        Expr::cust("capacity IS NULL OR capacity >= 1"),
                    ))
                    .check((
                        "sections_counters_check",
                        Expr::cust(
                            "registered_count >= 0 AND pending_count >= 0 AND waitlist_count >= 0 \
                             AND waitlist_seq >= 0",
                        ),
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_sections_course")
                            .from(Sections::Table, Sections::CourseId)
                            .to(Courses::Table, Courses::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("sections_course_active_idx")
                    .table(Sections::Table)
                    .col(Sections::CourseId)
                    .col(Sections::IsActive)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Sections::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
pub enum Sections {
    Table,
    Id,
    CourseId,
    Name,
    Schedule,
    Weekdays,
    Capacity,
    RegisteredCount,
    PendingCount,
    WaitlistCount,
    WaitlistSeq,
    IsActive,
    RequiresApproval,
    WaitlistEnabled,
    CreatedAt,
    UpdatedAt,
}
