//! Batched lookups: every key type below is one `WHERE … IN (…)` statement per request however
//! many objects ask for it. One [`DbLoader`] serves all of them; the key's type picks the query.

use std::{
    collections::{HashMap, HashSet},
    marker::PhantomData,
    sync::Arc,
};

use async_graphql::dataloader::Loader;
use entity::positional::Positional;
use entity::{
    certification, course, course_prerequisite, enrollment, enrollment_event, organization,
    section, team, team_member, term, types::EnrollmentStatus, user,
};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use crate::{domain::order, store::rows};
use uuid::Uuid;

/// Loads rows for one request. `viewer` scopes the viewer-specific keys.
pub struct DbLoader {
    db: DatabaseConnection,
    viewer: Option<Uuid>,
}

impl DbLoader {
    pub fn new(db: DatabaseConnection, viewer: Option<Uuid>) -> Self {
        Self { db, viewer }
    }
}

type LoadResult<K, V> = Result<HashMap<K, V>, Arc<DbErr>>;

fn by<K: std::hash::Hash + Eq, V>(rows: Vec<V>, key: impl Fn(&V) -> K) -> HashMap<K, V> {
    rows.into_iter().map(|row| (key(&row), row)).collect()
}

fn grouped<K: std::hash::Hash + Eq, V>(
    keys: impl IntoIterator<Item = K>,
    rows: Vec<V>,
    key: impl Fn(&V) -> K,
) -> HashMap<K, Vec<V>> {
    let mut map: HashMap<K, Vec<V>> = keys.into_iter().map(|k| (k, Vec::new())).collect();
    for row in rows {
        map.entry(key(&row)).or_default().push(row);
    }
    map
}

macro_rules! id_key {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub struct $name(pub Uuid);
    };
}

id_key!(
    /// The active sections of a course, by the course's id.
    ActiveSectionsOf
);
id_key!(
    /// The prerequisite courses of a course, by the course's id.
    PrerequisitesOf
);
id_key!(
    /// The viewer's active enrollment in a course, by the course's id (the "Enrolled" badge).
    ViewerEnrollmentIn
);
id_key!(
    /// The certification an enrollment earned, by the enrollment's id.
    CertificationOf
);
id_key!(
    /// The audit events of an enrollment, oldest first, by the enrollment's id.
    EventsOf
);

id_key!(
    /// A team's memberships, earliest first, by the team's id (the coach is not a member).
    MembersOf
);
id_key!(
    /// The teams a user belongs to or coaches, by the user's id.
    TeamsOf
);
id_key!(
    /// Everyone who shares a team with a user (members and coaches of the user's teams, the
    /// user excluded), by the user's id.
    TeammatesOf
);
id_key!(
    /// A user's enrollments, newest first, by the user's id.
    EnrollmentsOf
);
id_key!(
    /// A section's REGISTERED enrollments, by the section's id.
    RegisteredIn
);

/// A row of `E` by its id. Every entity with a `Uuid` id is loaded the same way: one
/// `WHERE id IN (…)` for all the ids a request asks for.
pub struct ById<E>(pub Uuid, PhantomData<fn() -> E>);

impl<E> ById<E> {
    pub fn new(id: Uuid) -> Self {
        Self(id, PhantomData)
    }
}

impl<E> Clone for ById<E> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<E> Copy for ById<E> {}

impl<E> PartialEq for ById<E> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl<E> Eq for ById<E> {}

impl<E> std::hash::Hash for ById<E> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

pub type UserKey = ById<user::Entity>;
pub type EnrollmentKey = ById<enrollment::Entity>;
pub type OrganizationKey = ById<organization::Entity>;
pub type CourseKey = ById<course::Entity>;
pub type SectionKey = ById<section::Entity>;
pub type TermKey = ById<term::Entity>;

/// An entity whose primary key is one `Uuid` column.
pub trait Identified: EntityTrait<Model: Clone + Send + Sync + Positional> {
    const ID: Self::Column;
    fn id(model: &Self::Model) -> Uuid;
}

macro_rules! identified {
    ($($entity:ident),*) => {
        $(
            impl Identified for $entity::Entity {
                const ID: Self::Column = $entity::Column::Id;
                fn id(model: &Self::Model) -> Uuid {
                    model.id
                }
            }
        )*
    };
}

identified!(user, enrollment, organization, course, section, term);

impl<E: Identified> Loader<ById<E>> for DbLoader {
    type Value = E::Model;
    type Error = Arc<DbErr>;

    async fn load(&self, keys: &[ById<E>]) -> LoadResult<ById<E>, Self::Value> {
        let rows = rows(
            E::find().filter(E::ID.is_in(keys.iter().map(|k| k.0))),
            &self.db,
        )
        .await?;
        Ok(by(rows, |row| ById::new(E::id(row))))
    }
}

/// The rank of a waitlist ticket among a section's current waitlist.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WaitlistRank {
    pub section_id: Uuid,
    pub ticket: i64,
}

/// A loader of the rows of `$entity` whose `$column` (`$field` on the model) is one of the keys,
/// in the order `$select` gives, grouped by key; every key gets a list, empty if need be.
macro_rules! grouped_loader {
    ($key:ident: $entity:ident by $column:ident / $field:ident, $select:expr) => {
        impl Loader<$key> for DbLoader {
            type Value = Vec<$entity::Model>;
            type Error = Arc<DbErr>;

            async fn load(&self, keys: &[$key]) -> LoadResult<$key, Self::Value> {
                let select =
                    $select.filter($entity::Column::$column.is_in(keys.iter().map(|k| k.0)));
                let rows = rows(select, &self.db).await?;
                Ok(grouped(keys.iter().copied(), rows, |row| $key(row.$field)))
            }
        }
    };
}

/// Shared (`Arc`): the loader hands out a copy of a value each time it is asked, and a page asks
/// for each course's sections twice (priming, then the field).
impl Loader<ActiveSectionsOf> for DbLoader {
    type Value = Arc<[section::Model]>;
    type Error = Arc<DbErr>;

    /// Sorted here, a course's few at a time, rather than by the database: sorting a page's
    /// 150 rows by name was half of the statement's time in PostgreSQL.
    async fn load(&self, keys: &[ActiveSectionsOf]) -> LoadResult<ActiveSectionsOf, Self::Value> {
        let select = section::Entity::find()
            .filter(section::Column::IsActive.eq(true))
            .filter(section::Column::CourseId.is_in(keys.iter().map(|k| k.0)));
        let rows = rows(select, &self.db).await?;
        let map = grouped(keys.iter().copied(), rows, |row| {
            ActiveSectionsOf(row.course_id)
        });
        Ok(map
            .into_iter()
            .map(|(key, mut sections)| {
                sections.sort_by(order::sections);
                (key, sections.into())
            })
            .collect())
    }
}
grouped_loader!(
    EventsOf: enrollment_event by EnrollmentId / enrollment_id,
    enrollment_event::Entity::find().order_by_asc(enrollment_event::Column::Id)
);
grouped_loader!(
    MembersOf: team_member by TeamId / team_id,
    team_member::Entity::find()
        .order_by_asc(team_member::Column::JoinedAt)
        .order_by_asc(team_member::Column::UserId)
);
grouped_loader!(
    EnrollmentsOf: enrollment by UserId / user_id,
    enrollment::Entity::find()
        .order_by_desc(enrollment::Column::EnrolledAt)
        .order_by_desc(enrollment::Column::Id)
);
grouped_loader!(
    RegisteredIn: enrollment by SectionId / section_id,
    enrollment::Entity::find()
        .filter(enrollment::Column::Status.eq(EnrollmentStatus::Registered))
        .order_by_asc(enrollment::Column::SeatReservedAt)
        .order_by_asc(enrollment::Column::Id)
);

impl Loader<PrerequisitesOf> for DbLoader {
    type Value = Vec<course::Model>;
    type Error = Arc<DbErr>;

    async fn load(&self, keys: &[PrerequisitesOf]) -> LoadResult<PrerequisitesOf, Self::Value> {
        let edges = course_prerequisite::Entity::find()
            .filter(course_prerequisite::Column::CourseId.is_in(keys.iter().map(|k| k.0)))
            .all(&self.db)
            .await?;
        let wanted: HashSet<Uuid> = edges.iter().map(|e| e.prerequisite_id).collect();
        let courses = if wanted.is_empty() {
            HashMap::new()
        } else {
            by(
                rows(
                    course::Entity::find().filter(course::Column::Id.is_in(wanted)),
                    &self.db,
                )
                .await?,
                |c| c.id,
            )
        };
        let mut map: HashMap<PrerequisitesOf, Vec<course::Model>> =
            keys.iter().map(|k| (*k, Vec::new())).collect();
        for edge in edges {
            if let Some(c) = courses.get(&edge.prerequisite_id) {
                map.entry(PrerequisitesOf(edge.course_id))
                    .or_default()
                    .push(c.clone());
            }
        }
        for list in map.values_mut() {
            list.sort_by(|a, b| a.name.cmp(&b.name));
        }
        Ok(map)
    }
}

/// `None` for courses without one: absence is cached too, so a primed page asks only once.
impl Loader<ViewerEnrollmentIn> for DbLoader {
    type Value = Option<enrollment::Model>;
    type Error = Arc<DbErr>;

    async fn load(
        &self,
        keys: &[ViewerEnrollmentIn],
    ) -> LoadResult<ViewerEnrollmentIn, Self::Value> {
        let mut found: HashMap<_, _> = keys.iter().map(|k| (*k, None)).collect();
        let Some(viewer) = self.viewer else {
            return Ok(found);
        };
        let select = enrollment::Entity::find()
            .filter(enrollment::Column::UserId.eq(viewer))
            .filter(enrollment::Column::CourseId.is_in(keys.iter().map(|k| k.0)))
            .filter(enrollment::Column::Status.is_in(EnrollmentStatus::ACTIVE));
        let rows = rows(select, &self.db).await?;
        for row in rows {
            found.insert(ViewerEnrollmentIn(row.course_id), Some(row));
        }
        Ok(found)
    }
}

impl Loader<CertificationOf> for DbLoader {
    type Value = certification::Model;
    type Error = Arc<DbErr>;

    async fn load(&self, keys: &[CertificationOf]) -> LoadResult<CertificationOf, Self::Value> {
        let rows = certification::Entity::find()
            .filter(certification::Column::EnrollmentId.is_in(keys.iter().map(|k| k.0)))
            .all(&self.db)
            .await?;
        Ok(by(rows, |c| CertificationOf(c.enrollment_id)))
    }
}

impl Loader<WaitlistRank> for DbLoader {
    type Value = i32;
    type Error = Arc<DbErr>;

    /// One statement reads the tickets of every section asked about; ranks are counted here.
    async fn load(&self, keys: &[WaitlistRank]) -> LoadResult<WaitlistRank, Self::Value> {
        let sections: HashSet<Uuid> = keys.iter().map(|k| k.section_id).collect();
        let rows: Vec<(Uuid, Option<i64>)> = enrollment::Entity::find()
            .select_only()
            .column(enrollment::Column::SectionId)
            .column(enrollment::Column::WaitlistTicket)
            .filter(enrollment::Column::SectionId.is_in(sections))
            .filter(enrollment::Column::Status.eq(EnrollmentStatus::Waitlisted))
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut tickets: HashMap<Uuid, Vec<i64>> = HashMap::new();
        for (section, ticket) in rows {
            if let Some(ticket) = ticket {
                tickets.entry(section).or_default().push(ticket);
            }
        }
        Ok(keys
            .iter()
            .filter_map(|k| {
                let queue = tickets.get(&k.section_id)?;
                let ahead = queue.iter().filter(|t| **t < k.ticket).count();
                queue
                    .contains(&k.ticket)
                    .then(|| (*k, i32::try_from(ahead + 1).unwrap_or(i32::MAX)))
            })
            .collect())
    }
}

/// The teams each of `users` belongs to or coaches: two statements.
async fn teams_of(
    db: &DatabaseConnection,
    users: &[Uuid],
) -> Result<(Vec<team_member::Model>, Vec<team::Model>), DbErr> {
    let memberships = team_member::Entity::find()
        .filter(team_member::Column::UserId.is_in(users.iter().copied()))
        .all(db)
        .await?;
    let teams = team::Entity::find()
        .filter(
            sea_orm::Condition::any()
                .add(team::Column::Id.is_in(memberships.iter().map(|m| m.team_id)))
                .add(team::Column::CoachId.is_in(users.iter().copied())),
        )
        .order_by_asc(team::Column::Name)
        .all(db)
        .await?;
    Ok((memberships, teams))
}

impl Loader<TeamsOf> for DbLoader {
    type Value = Vec<team::Model>;
    type Error = Arc<DbErr>;

    async fn load(&self, keys: &[TeamsOf]) -> LoadResult<TeamsOf, Self::Value> {
        let users: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let (memberships, teams) = teams_of(&self.db, &users).await?;
        Ok(keys
            .iter()
            .map(|key| {
                let joined: HashSet<Uuid> = memberships
                    .iter()
                    .filter(|m| m.user_id == key.0)
                    .map(|m| m.team_id)
                    .collect();
                let mine = teams
                    .iter()
                    .filter(|t| t.coach_id == key.0 || joined.contains(&t.id))
                    .cloned()
                    .collect();
                (*key, mine)
            })
            .collect())
    }
}

impl Loader<TeammatesOf> for DbLoader {
    type Value = HashSet<Uuid>;
    type Error = Arc<DbErr>;

    async fn load(&self, keys: &[TeammatesOf]) -> LoadResult<TeammatesOf, Self::Value> {
        let users: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let (memberships, teams) = teams_of(&self.db, &users).await?;
        let everyone = team_member::Entity::find()
            .filter(team_member::Column::TeamId.is_in(teams.iter().map(|t| t.id)))
            .all(&self.db)
            .await?;
        Ok(keys
            .iter()
            .map(|key| {
                let mine: HashSet<Uuid> = teams
                    .iter()
                    .filter(|t| {
                        t.coach_id == key.0
                            || memberships
                                .iter()
                                .any(|m| m.user_id == key.0 && m.team_id == t.id)
                    })
                    .map(|t| t.id)
                    .collect();
                let mut mates: HashSet<Uuid> = everyone
                    .iter()
                    .filter(|m| mine.contains(&m.team_id))
                    .map(|m| m.user_id)
                    .chain(
                        teams
                            .iter()
                            .filter(|t| mine.contains(&t.id))
                            .map(|t| t.coach_id),
                    )
                    .collect();
                mates.remove(&key.0);
                (*key, mates)
            })
            .collect())
    }
}
