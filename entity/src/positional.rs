//! Decoding a model by the position of its columns instead of by their names.
//!
//! The derived `FromQueryResult` finds each column by name, a hash lookup per value; a page of
//! discovery decodes about four thousand values, and the lookups were a third of the decoding.
//! `Entity::find()` selects the model's columns in declaration order, so the rows of such a
//! select can be decoded by position: [`ByPosition`] does that for the models listed below.
//! Only plain selects of the entity qualify, not joins or selects with prefixed columns
//! (`find_also_related`), which keep the derived decoding.

use sea_orm::{DbErr, FromQueryResult, QueryResult};

/// A model whose columns can be decoded by position, in the order of its fields.
pub trait Positional: Sized {
    /// The model's fields, in the order they are decoded; each a column of the same name.
    const FIELDS: &'static [&'static str];

    /// Decodes a row whose columns are the model's, in its field order.
    ///
    /// # Errors
    /// A column is missing or its value does not decode into the field's type.
    fn from_position(row: &QueryResult) -> Result<Self, DbErr>;
}

/// A row of a plain `Entity::find()` select, decoded by position (`into_model::<ByPosition<_>>()`).
#[derive(Clone, Debug, PartialEq)]
pub struct ByPosition<M>(pub M);

impl<M: Positional + Send + Sync> FromQueryResult for ByPosition<M> {
    fn from_query_result(row: &QueryResult, pre: &str) -> Result<Self, DbErr> {
        if !pre.is_empty() {
            return Err(DbErr::Type(format!(
                "columns prefixed with {pre:?} cannot be decoded by position"
            )));
        }
        M::from_position(row).map(ByPosition)
    }
}

/// Implements [`Positional`] for `$module::Model`, whose fields are listed in declaration order.
/// A field left out does not compile; a list out of order fails the test below.
macro_rules! positional {
    ($module:ident { $($field:ident),* $(,)? }) => {
        impl Positional for crate::$module::Model {
            const FIELDS: &'static [&'static str] = &[$(stringify!($field)),*];

            fn from_position(row: &QueryResult) -> Result<Self, DbErr> {
                let mut column = 0usize;
                let mut next = || {
                    column += 1;
                    column - 1
                };
                // A struct expression evaluates its fields in the order written.
                Ok(Self { $($field: row.try_get_by_index(next())?),* })
            }
        }
    };
}

positional!(course {
    id,
    organization_id,
    teacher_id,
    name,
    description,
    code,
    is_active,
    certificate_validity_months,
    created_at,
    updated_at,
});

positional!(section {
    id,
    course_id,
    name,
    schedule,
    weekdays,
    capacity,
    registered_count,
    pending_count,
    waitlist_count,
    finished_count,
    waitlist_seq,
    is_active,
    assistant_id,
    requires_approval,
    waitlist_enabled,
    promotion_mode,
    offer_hours,
    offered_count,
    term_id,
    starts_on,
    ends_on,
    enrollment_opens_at,
    enrollment_closes_at,
    close_noticed_at,
    created_at,
    updated_at,
});

positional!(term {
    id,
    organization_id,
    name,
    code,
    starts_on,
    ends_on,
    time_zone,
    holidays,
    enrollment_opens_at,
    enrollment_closes_at,
    drop_deadline,
    withdraw_deadline,
    admission,
    lottery_minutes,
    lottery_seed,
    lottery_seed_hash,
    lottery_drawn_at,
    created_at,
    updated_at,
});

positional!(user {
    id,
    email,
    name,
    picture,
    role,
    organization_id,
    created_at,
    updated_at,
});

positional!(organization {
    id,
    name,
    time_zone,
    created_at,
});

positional!(enrollment {
    id,
    user_id,
    course_id,
    section_id,
    status,
    visibility,
    enrolled_at,
    enrolled_by,
    prerequisite_check_passed,
    prerequisite_check_at,
    seat_reserved_at,
    waitlist_ticket,
    completed_at,
    completed_by,
    completion_evidence,
    cancelled_at,
    withdrawn_at,
    reason,
    notes,
    notes_updated_at,
    notes_updated_by,
    skip_reason,
    skipped_at,
    offer_expires_at,
    offer_remind_at,
    record,
    lottery_draw_at,
    lottery_rank,
    created_at,
    updated_at,
});

positional!(enrollment_event {
    id,
    enrollment_id,
    from_status,
    to_status,
    actor_id,
    reason,
    details,
    at,
});

positional!(team_member {
    team_id,
    user_id,
    joined_at,
});

#[cfg(test)]
mod tests {
    use sea_orm::{EntityTrait, IdenStatic, Iterable};

    use super::Positional;

    /// The columns `Entity::find()` selects, in its order.
    fn selected<E: EntityTrait>() -> Vec<&'static str> {
        E::Column::iter().map(|c| c.as_str()).collect()
    }

    #[test]
    fn every_positional_model_lists_its_columns_in_select_order() {
        use crate::*;
        let cases: [(&str, &[&str], Vec<&str>); 8] = [
            ("term", term::Model::FIELDS, selected::<term::Entity>()),
            (
                "course",
                course::Model::FIELDS,
                selected::<course::Entity>(),
            ),
            (
                "section",
                section::Model::FIELDS,
                selected::<section::Entity>(),
            ),
            ("user", user::Model::FIELDS, selected::<user::Entity>()),
            (
                "organization",
                organization::Model::FIELDS,
                selected::<organization::Entity>(),
            ),
            (
                "enrollment",
                enrollment::Model::FIELDS,
                selected::<enrollment::Entity>(),
            ),
            (
                "enrollment_event",
                enrollment_event::Model::FIELDS,
                selected::<enrollment_event::Entity>(),
            ),
            (
                "team_member",
                team_member::Model::FIELDS,
                selected::<team_member::Entity>(),
            ),
        ];
        for (model, fields, columns) in cases {
            assert_eq!(fields, columns.as_slice(), "{model}");
        }
    }
}
