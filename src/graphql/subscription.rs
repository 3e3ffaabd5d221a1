//! Live updates over `/graphql/ws` (`graphql-transport-ws` and the legacy `graphql-ws`).
//!
//! Each subscription listens to this replica's [`Bus`](crate::store::feed::Bus), which carries only
//! committed changes, and re-reads the rows it reports, so what it sends is what the database
//! holds. A subscriber that falls more than `BUS_CAPACITY` changes behind gets a
//! `SUBSCRIBER_TOO_SLOW` error and its subscription ends; it never holds anyone else up.
//!
//! A subscription's setup (its checks and first read) creates its source stream. A failure there
//! is a request error, not an event (GraphQL spec, "Source Stream"): [`source_stream`] marks it
//! on the operation's [`SourceStream`], and the WebSocket layer sends it as the protocol's
//! `error` message. The first read waits for the database within the request timeout, then
//! fails with `UNAVAILABLE`, for that subscription alone.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use async_graphql::{Context, Result, SimpleObject, Subscription, dataloader::Loader};
use entity::{section, types::EnrollmentStatus};
use futures_util::Stream;
use tokio::sync::broadcast::{self, error::RecvError};
use uuid::Uuid;

use super::{
    loaders::{DbLoader, WaitlistRank},
    request,
    types::{Enrollment, EnrollmentEvent, Notification},
};
use crate::{
    domain::seats::Seats,
    error::ApiError,
    service::{courses, enrollments, notifications, sections},
    store::{
        Store,
        feed::{ActiveSubscription, Bus, Notice},
    },
};

#[derive(Default)]
pub struct SubscriptionRoot;

/// A section's seats as committed. Sent once on subscribe and after every change.
#[derive(SimpleObject, Clone, Debug, PartialEq, Eq)]
pub struct SeatUpdate {
    pub section_id: Uuid,
    /// Null means unlimited.
    pub capacity: Option<i32>,
    pub registered_count: i32,
    pub pending_count: i32,
    /// COMPLETED and FAILED enrollments, which keep their seats.
    pub finished_count: i32,
    /// Seats held by open offers (offer mode).
    pub offered_count: i32,
    pub waitlist_count: i32,
    /// Free seats; null when the capacity is unlimited.
    pub seats_available: Option<i32>,
    pub is_full: bool,
}

impl From<section::Model> for SeatUpdate {
    fn from(s: section::Model) -> Self {
        let seats = Seats::from(&s);
        Self {
            section_id: s.id,
            capacity: seats.capacity,
            registered_count: seats.registered,
            pending_count: seats.pending,
            finished_count: seats.finished,
            offered_count: seats.offered,
            waitlist_count: seats.waitlisted,
            seats_available: seats.available(),
            is_full: seats.is_full(),
        }
    }
}

/// Where one of the viewer's waitlisted enrollments stands.
#[derive(SimpleObject, Clone, Debug, PartialEq, Eq)]
pub struct WaitlistPositionUpdate {
    pub enrollment_id: Uuid,
    pub section_id: Uuid,
    /// The 1-based rank on the waitlist; null once the enrollment left it (promoted, withdrawn,
    /// cancelled or switched).
    pub position: Option<i32>,
}

#[Subscription(name = "Subscription")]
impl SubscriptionRoot {
    /// The viewer's enrollments promoted from a waitlist to REGISTERED, or offered a seat
    /// (OFFERED, in a section in offer mode), as they happen.
    async fn waitlist_promotions(
        &self,
        ctx: &Context<'_>,
    ) -> Result<impl Stream<Item = Result<Enrollment>> + use<>> {
        let viewer = source_stream(ctx, async { Ok(request(ctx)?.require_viewer()?.id()) }).await?;
        let rc = request(ctx)?;
        let (store, mut changes) = (rc.store.clone(), Changes::new(rc.store.bus()));
        Ok(async_stream::try_stream! {
            while let Some(notice) = changes.next().await? {
                let Some(event) = &notice.event else { continue };
                if event.user_id != viewer
                    || event.from != Some(EnrollmentStatus::Waitlisted)
                    || !matches!(
                        event.to,
                        EnrollmentStatus::Registered | EnrollmentStatus::Offered
                    )
                {
                    continue;
                }
                let read = || enrollments::by_id(&store, event.enrollment_id);
                if let Some(row) = ride_out(read).await? {
                    yield Enrollment(row);
                }
            }
        })
    }

    /// A section's registered, pending and waitlist counts and free seats: once on subscribe,
    /// then after every committed change to them. Open to anyone, like discovery.
    async fn section_seats(
        &self,
        ctx: &Context<'_>,
        section_id: Uuid,
    ) -> Result<impl Stream<Item = Result<SeatUpdate>> + use<>> {
        let rc = request(ctx)?;
        // Subscribe before the first read, so no change can fall between the two.
        let (db, bus, mut changes) = (
            rc.store.db().clone(),
            rc.store.bus().clone(),
            Changes::new(rc.store.bus()),
        );
        let first = source_stream(ctx, async {
            first_read(ctx, || sections::by_id(&rc.store, section_id))
                .await?
                .map(SeatUpdate::from)
                .ok_or(ApiError::NotFound("section"))
        })
        .await?;
        Ok(async_stream::try_stream! {
            let mut last = first.clone();
            yield first;
            while let Some(notice) = changes.next().await? {
                if !notice.resync && !notice.sections.contains(&section_id) {
                    continue;
                }
                let read = || async {
                    Ok(bus.section_after(&db, section_id, notice.seq).await?)
                };
                let row = ride_out(read).await?;
                if let Some(now) = row.map(SeatUpdate::from).filter(|now| *now != last) {
                    last = now.clone();
                    yield now;
                }
            }
        })
    }

    /// Every enrollment event of a course as it commits: for staff of the course only.
    async fn enrollment_events(
        &self,
        ctx: &Context<'_>,
        course_id: Uuid,
    ) -> Result<impl Stream<Item = Result<EnrollmentEvent>> + use<>> {
        let rc = request(ctx)?;
        source_stream(ctx, async {
            let viewer = rc.require_viewer()?;
            first_read(ctx, || {
                courses::managed(&rc.store, viewer, course_id, "follow its events")
            })
            .await
        })
        .await?;
        let (store, mut changes) = (rc.store.clone(), Changes::new(rc.store.bus()));
        Ok(async_stream::try_stream! {
            while let Some(notice) = changes.next().await? {
                let Some(event) = notice.event.as_ref().filter(|_| notice.course_id == course_id)
                else {
                    continue;
                };
                if let Some(row) = ride_out(|| enrollments::event_by_id(&store, event.id)).await? {
                    yield EnrollmentEvent(row);
                }
            }
        })
    }

    /// The viewer's notifications as they are written (the inbox's live view): each one once,
    /// oldest first, from the moment of subscribing.
    async fn notifications(
        &self,
        ctx: &Context<'_>,
    ) -> Result<impl Stream<Item = Result<Notification>> + use<>> {
        let rc = request(ctx)?;
        let (store, mut changes) = (rc.store.clone(), Changes::new(rc.store.bus()));
        let (viewer, mut seen) = source_stream(ctx, async {
            let viewer = rc.require_viewer()?.id();
            // Only what is written from now on.
            let latest = first_read(ctx, || notifications::since(&store, viewer, None)).await?;
            Ok((viewer, latest.last().map(|n| (n.created_at, n.id))))
        })
        .await?;
        Ok(async_stream::try_stream! {
            while let Some(notice) = changes.next().await? {
                if !notice.resync && !notice.notified.contains(&viewer) {
                    continue;
                }
                let fresh = ride_out(|| notifications::since(&store, viewer, seen)).await?;
                for row in fresh {
                    seen = Some((row.created_at, row.id));
                    yield Notification(row);
                }
            }
        })
    }

    /// The viewer's waitlist positions: the current ones on subscribe, then each change (a
    /// position moves up when someone ahead leaves or is promoted, and becomes null when the
    /// enrollment leaves the waitlist). `Enrollment.waitlistPosition` reads the same rank.
    async fn waitlist_positions(
        &self,
        ctx: &Context<'_>,
    ) -> Result<impl Stream<Item = Result<WaitlistPositionUpdate>> + use<>> {
        let rc = request(ctx)?;
        let (store, mut changes) = (rc.store.clone(), Changes::new(rc.store.bus()));
        let (viewer, mut known) = source_stream(ctx, async {
            let viewer = rc.require_viewer()?.id();
            Ok((viewer, first_read(ctx, || positions(&store, viewer)).await?))
        })
        .await?;
        Ok(async_stream::try_stream! {
            for update in known.values() {
                yield update.clone();
            }
            while let Some(notice) = changes.next().await? {
                let mine = notice.event.as_ref().is_some_and(|e| e.user_id == viewer);
                let watched = known.values().any(|u| notice.sections.contains(&u.section_id));
                if !mine && !watched && !notice.resync {
                    continue;
                }
                let now = ride_out(|| positions(&store, viewer)).await?;
                for (id, before) in &known {
                    if !now.contains_key(id) {
                        yield WaitlistPositionUpdate { position: None, ..before.clone() };
                    }
                }
                for (id, update) in &now {
                    if known.get(id) != Some(update) {
                        yield update.clone();
                    }
                }
                known = now;
            }
        })
    }
}

/// Whether one operation's source stream could be created: the WebSocket layer gives each
/// operation its own (as request data) and sends a failed setup as the protocol's `error`
/// message. `timeout` bounds the setup's first read.
#[derive(Clone, Debug)]
pub struct SourceStream {
    failed: Arc<AtomicBool>,
    timeout: Duration,
}

impl SourceStream {
    /// A source stream not yet created, whose first read may wait up to `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Self {
            failed: Arc::default(),
            timeout,
        }
    }

    /// Whether the setup failed, so that its error is a request error.
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::SeqCst)
    }
}

/// Runs a subscription's setup, marking a failure on the operation's [`SourceStream`].
async fn source_stream<T>(
    ctx: &Context<'_>,
    setup: impl Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    let created = setup.await;
    if created.is_err()
        && let Some(source) = ctx.data_opt::<SourceStream>()
    {
        source.failed.store(true, Ordering::SeqCst);
    }
    created
}

/// A setup's first read: it waits for the database (a pool that ran dry, an outage) as
/// [`ride_out`] does, but only within the request timeout, then fails with `UNAVAILABLE`.
async fn first_read<T, F, Fut>(ctx: &Context<'_>, read: F) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    let limit = ctx
        .data_opt::<SourceStream>()
        .map_or(Duration::from_secs(15), |source| source.timeout);
    tokio::time::timeout(limit, ride_out(read))
        .await
        .unwrap_or(Err(ApiError::Unavailable))
}

/// The longest pause between two tries of a read during a database outage.
const OUTAGE_PAUSE_MAX: Duration = Duration::from_secs(5);

/// Runs `read` until the database answers: during an outage a subscription pauses (its socket
/// stays open, nothing is sent) instead of ending with an error, and goes on when the database
/// is back. Changes committed meanwhile reach it as the listener's resync.
async fn ride_out<T, F, Fut>(mut read: F) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    let mut pause = Duration::from_millis(200);
    loop {
        match read().await {
            Err(ApiError::Unavailable) => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(OUTAGE_PAUSE_MAX);
            }
            other => return other,
        }
    }
}

/// One subscription's view of the bus: counted as active while it lives.
struct Changes {
    receiver: broadcast::Receiver<Arc<Notice>>,
    _active: ActiveSubscription,
}

impl Changes {
    fn new(bus: &Bus) -> Self {
        Self {
            receiver: bus.subscribe(),
            _active: bus.track(),
        }
    }

    /// The next committed change, `None` when the bus is gone, or `SUBSCRIBER_TOO_SLOW` when
    /// this subscriber fell too far behind (its stream then ends).
    async fn next(&mut self) -> Result<Option<Arc<Notice>>, ApiError> {
        next(&mut self.receiver).await
    }
}

async fn next(
    changes: &mut broadcast::Receiver<Arc<Notice>>,
) -> Result<Option<Arc<Notice>>, ApiError> {
    match changes.recv().await {
        Ok(notice) => Ok(Some(notice)),
        Err(RecvError::Closed) => Ok(None),
        Err(RecvError::Lagged(missed)) => Err(ApiError::SubscriberTooSlow { missed }),
    }
}

/// The viewer's waitlisted enrollments and their ranks: two statements.
async fn positions(
    store: &Store,
    viewer: Uuid,
) -> Result<HashMap<Uuid, WaitlistPositionUpdate>, ApiError> {
    let waiting = enrollments::waitlisted(store, viewer).await?;
    let keys: Vec<WaitlistRank> = waiting
        .iter()
        .filter_map(|e| {
            e.waitlist_ticket.map(|ticket| WaitlistRank {
                section_id: e.section_id,
                ticket,
            })
        })
        .collect();
    let ranks = if keys.is_empty() {
        HashMap::new()
    } else {
        DbLoader::new(store.db().clone(), Some(viewer))
            .load(&keys)
            .await
            .map_err(|e| match crate::error::is_unavailable(&e) {
                true => ApiError::Unavailable,
                false => ApiError::Internal(e.to_string().into()),
            })?
    };
    Ok(waiting
        .into_iter()
        .map(|e| {
            let position = e.waitlist_ticket.and_then(|ticket| {
                ranks
                    .get(&WaitlistRank {
                        section_id: e.section_id,
                        ticket,
                    })
                    .copied()
            });
            (
                e.id,
                WaitlistPositionUpdate {
                    enrollment_id: e.id,
                    section_id: e.section_id,
                    position,
                },
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_told_and_stops() {
        let (sender, mut receiver) = broadcast::channel(2);
        let notice = Arc::new(Notice {
            sections: vec![],
            course_id: Uuid::nil(),
            event: None,
            seq: 0,
            resync: false,
            notified: Vec::new(),
        });
        for _ in 0..4 {
            sender.send(notice.clone()).unwrap();
        }
        let err = next(&mut receiver).await.unwrap_err();
        assert_eq!(err.code(), "SUBSCRIBER_TOO_SLOW");
        assert!(matches!(err, ApiError::SubscriberTooSlow { missed: 2 }));
        drop(sender);
        // What it still holds, then the end.
        assert!(next(&mut receiver).await.unwrap().is_some());
        assert!(next(&mut receiver).await.unwrap().is_some());
        assert!(next(&mut receiver).await.unwrap().is_none());
    }
}
