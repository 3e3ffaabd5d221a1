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
                    .table(CoursePrerequisites::Table)
                    .col(uuid(CoursePrerequisites::CourseId))
                    .col(uuid(CoursePrerequisites::PrerequisiteId))
                    .primary_key(
                        Index::create()
                            .col(CoursePrerequisites::CourseId)
                            .col(CoursePrerequisites::PrerequisiteId),
                    )
                    .check((
                        "course_prerequisites_not_self_check",
                        Expr::cust("course_id <> prerequisite_id"),
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_course_prerequisites_course")
                            .from(CoursePrerequisites::Table, CoursePrerequisites::CourseId)
                            .to(Courses::Table, Courses::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_course_prerequisites_prerequisite")
                            .from(
                                CoursePrerequisites::Table,
                                CoursePrerequisites::PrerequisiteId,
                            )
                            .to(Courses::Table, Courses::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(CoursePrerequisites::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum CoursePrerequisites {
    Table,
    CourseId,
    PrerequisiteId,
}
