//! One function per use case. Each write is one transaction: begin, lock or conditional write,
//! check, write, commit. Resolvers call these and map the result; they hold no rules themselves.

pub mod catalog;
pub mod enrollment;
pub mod lifecycle;
pub mod teams;
pub mod users;

use sea_orm::{DatabaseBackend, EntityTrait, QuerySelect, Select};

/// `SELECT … FOR UPDATE` on PostgreSQL. SQLite has no row locks and needs none: a write
/// transaction there is `BEGIN IMMEDIATE` and already holds the database's write lock.
pub(crate) fn for_update<E: EntityTrait>(select: Select<E>, backend: DatabaseBackend) -> Select<E> {
    match backend {
        DatabaseBackend::Postgres => select.lock_exclusive(),
        _ => select,
    }
}
