//! Pure rules, no I/O: the status machine, schedules, seat arithmetic, input limits, cursors,
//! who may see and do what (the viewer, visibility), and what a sign-in identity is. Everything
//! here is reachable from unit tests without a database.

pub mod calendar;
pub mod cursor;
pub mod ical;
pub mod identity;
pub mod lottery;
pub mod notification;
pub mod order;
pub mod schedule;
pub mod seats;
pub mod status;
pub mod validate;
pub mod viewer;
pub mod visibility;
