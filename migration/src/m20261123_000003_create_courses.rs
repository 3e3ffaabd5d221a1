use sea_orm_migration::{prelude::*, schema::*};

use super::m20261123_000001_create_organizations::Organizations;
use super::m20261123_000002_create_users::Users;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Courses::Table)
                    .col(pk_uuid(Courses::Id))
                    .col(uuid(Courses::OrganizationId))
                    .col(uuid(Courses::TeacherId))
                    .col(string_len(Courses::Name, 255))
                    .col(text_null(Courses::Description))
                    .col(string_len_null(Courses::Code, 50))
                    .col(boolean(Courses::IsActive).default(true))
                    .col(integer_null(Courses::CertificateValidityMonths))
                    .col(timestamp_with_time_zone(Courses::CreatedAt))
                    .col(timestamp_with_time_zone(Courses::UpdatedAt))
                    .check((
                        "courses_name_check",
                        Expr::cust("length(name) BETWEEN 1 AND 255"),
                    ))
                    .check((
                        "courses_validity_check",
                        Expr::cust(
                            "certificate_validity_months IS NULL OR certificate_validity_months >= 1",
                        ),
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_courses_organization")
                            .from(Courses::Table, Courses::OrganizationId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_courses_teacher")
                            .from(Courses::Table, Courses::TeacherId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        // Discovery pages walk this index newest first (seed 004).
        for (name, cols) in [
            (
                "courses_active_created_idx",
                &[Courses::IsActive, Courses::CreatedAt][..],
            ),
            ("courses_teacher_idx", &[Courses::TeacherId][..]),
            ("courses_organization_idx", &[Courses::OrganizationId][..]),
            ("courses_code_idx", &[Courses::Code][..]),
        ] {
            let mut index = Index::create();
            index.name(name).table(Courses::Table);
            for col in cols {
                index.col(*col);
            }
            manager.create_index(index).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Courses::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden, Clone, Copy)]
pub enum Courses {
    Table,
    Id,
    OrganizationId,
    TeacherId,
    Name,
    Description,
    Code,
    IsActive,
    CertificateValidityMonths,
    CreatedAt,
    UpdatedAt,
}
