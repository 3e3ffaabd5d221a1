//! Pure rules, no I/O: the status machine, schedules, seat arithmetic, input limits and cursors. Everything here is
//! reachable from unit tests without a database.

pub mod cursor;
pub mod notification;
pub mod order;
pub mod schedule;
pub mod seats;
pub mod status;
pub mod validate;
pub mod visibility;
