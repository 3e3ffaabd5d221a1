//! The engine under pressure, on both databases: thousands of seeded random operations compared
//! step by step with a small in-memory model of DESIGN.md's state machine, and seconds of
//! concurrent enrollments and withdrawals on one section with the invariants sampled meanwhile
//! and the audit trail replayed afterwards.

use std::{
    collections::{BTreeMap, HashMap, HashSet, VecDeque},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use crate::helpers::{Backend, TestApp, both_backends, error_code, parse_id};
use entity::{
    enrollment, enrollment_event, section,
    types::EnrollmentStatus::{self, *},
};
use rand::{Rng, SeedableRng, rngs::StdRng};
use sea_orm::{
    AccessMode, ColumnTrait, EntityTrait, IsolationLevel, QueryFilter, TransactionTrait,
};
use serde_json::{Value, json};
use uuid::Uuid;

const ENROLL: &str = "mutation($s: UUID!) { enroll(sectionId: $s) { id status waitlistPosition } }";
const WITHDRAW: &str = "mutation($e: UUID!) { withdraw(enrollmentId: $e) { status } }";
const CANCEL: &str =
    "mutation($e: UUID!) { cancelEnrollment(enrollmentId: $e, reason: \"r\") { status } }";
const APPROVE: &str = "mutation($e: UUID!) { approveEnrollment(enrollmentId: $e) { status } }";
const COMPLETE: &str = "mutation($e: UUID!) { completeEnrollment(enrollmentId: $e) { status } }";
const FAIL: &str = "mutation($e: UUID!) { failEnrollment(enrollmentId: $e) { status } }";
const SWITCH: &str = "mutation($e: UUID!, $s: UUID!) {
  switchSection(enrollmentId: $e, toSectionId: $s) { status waitlistPosition } }";
const CAPACITY: &str = "mutation($s: UUID!, $c: Int) {
  updateSection(id: $s, input: { capacity: $c }) { id } }";
const ACCEPT: &str = "mutation($e: UUID!) { acceptOffer(enrollmentId: $e) { status } }";
const DECLINE: &str = "mutation($e: UUID!) { declineOffer(enrollmentId: $e) { status } }";
/// Hours an offer is held in the model's offer-mode section.
const OFFER_HOURS: i64 = 24;

/// How many random operations each backend runs.
const STEPS: usize = 2500;

// ---------------------------------------------------------------------------------------------
// The reference model: DESIGN.md's state machine over plain vectors, no concurrency, no SQL.

#[derive(Clone, Debug)]
struct ModelSection {
    id: Uuid,
    course: usize,
    capacity: Option<i32>,
    waitlist_enabled: bool,
    requires_approval: bool,
    /// Offer mode: a freed seat is OFFERED to the earliest waiter.
    offer: bool,
    waitlist_seq: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct ModelEnrollment {
    user: usize,
    section: usize,
    status: EnrollmentStatus,
    ticket: Option<i64>,
}

#[derive(Default)]
struct Model {
    sections: Vec<ModelSection>,
    enrollments: BTreeMap<Uuid, ModelEnrollment>,
    /// Waitlisted enrollments moved into a seat, over the whole walk.
    promotions: usize,
}

/// What the model predicts for one operation: success with the resulting status, or a code.
type Outcome = Result<EnrollmentStatus, &'static str>;

impl Model {
    fn count(&self, section: usize, status: EnrollmentStatus) -> i32 {
        self.enrollments
            .values()
            .filter(|e| e.section == section && e.status == status)
            .count() as i32
    }

    fn seat_free(&self, section: usize) -> bool {
        let s = &self.sections[section];
        self.count(section, Waitlisted) == 0 && s.capacity.is_none_or(|c| self.taken(section) < c)
    }

    /// Seats taken: REGISTERED, PENDING, OFFERED, and the finished enrollments, which keep
    /// their seat.
    fn taken(&self, section: usize) -> i32 {
        [Registered, Pending, Offered, Completed, Failed]
            .into_iter()
            .map(|status| self.count(section, status))
            .sum()
    }

    fn seat_status(&self, section: usize) -> EnrollmentStatus {
        if self.sections[section].requires_approval {
            Pending
        } else {
            Registered
        }
    }

    fn waiting(&self, section: usize) -> Vec<Uuid> {
        let mut queue: Vec<(i64, Uuid)> = self
            .enrollments
            .iter()
            .filter(|(_, e)| e.section == section && e.status == Waitlisted)
            .map(|(id, e)| (e.ticket.expect("a waiter has a ticket"), *id))
            .collect();
        queue.sort();
        queue.into_iter().map(|(_, id)| id).collect()
    }

    fn rank(&self, id: Uuid) -> Option<usize> {
        let e = &self.enrollments[&id];
        self.waiting(e.section)
            .iter()
            .position(|w| *w == id)
            .map(|p| p + 1)
    }

    /// Fills free seats from the waitlist, earliest ticket first.
    fn promote(&mut self, section: usize) {
        let s = &self.sections[section];
        let waiting = self.waiting(section);
        let free = match s.capacity {
            None => waiting.len() as i32,
            Some(c) => c - self.taken(section),
        };
        let status = if s.offer {
            Offered
        } else {
            self.seat_status(section)
        };
        for id in waiting.into_iter().take(free.max(0) as usize) {
            let e = self.enrollments.get_mut(&id).expect("waiter");
            e.status = status;
            e.ticket = None;
            self.promotions += 1;
        }
    }

    fn active_in_course(&self, user: usize, course: usize) -> bool {
        self.enrollments.values().any(|e| {
            e.user == user
                && self.sections[e.section].course == course
                && EnrollmentStatus::ACTIVE.contains(&e.status)
        })
    }

    /// `enroll` without the id, which the database assigns: the caller inserts it.
    fn enroll(&mut self, user: usize, section: usize) -> Result<ModelEnrollment, &'static str> {
        if self.active_in_course(user, self.sections[section].course) {
            return Err("ALREADY_ENROLLED");
        }
        if self.seat_free(section) {
            return Ok(ModelEnrollment {
                user,
                section,
                status: self.seat_status(section),
                ticket: None,
            });
        }
        let s = &mut self.sections[section];
        if !s.waitlist_enabled {
            return Err("SECTION_FULL");
        }
        s.waitlist_seq += 1;
        Ok(ModelEnrollment {
            user,
            section,
            status: Waitlisted,
            ticket: Some(s.waitlist_seq),
        })
    }

    fn change(&mut self, id: Uuid, allowed: &[EnrollmentStatus], to: EnrollmentStatus) -> Outcome {
        let e = self.enrollments.get_mut(&id).expect("known enrollment");
        if !allowed.contains(&e.status) {
            return Err("INVALID_TRANSITION");
        }
        let freed = e.status.holds_seat() && matches!(to, Withdrawn | Cancelled);
        e.status = to;
        e.ticket = None;
        let section = e.section;
        if freed {
            self.promote(section);
        }
        Ok(to)
    }

    fn switch(&mut self, id: Uuid, target: usize) -> Outcome {
        let e = self.enrollments[&id].clone();
        if e.section == target || self.sections[e.section].course != self.sections[target].course {
            return Err("BAD_USER_INPUT");
        }
        if !EnrollmentStatus::ACTIVE.contains(&e.status) {
            return Err("INVALID_TRANSITION");
        }
        if !self.seat_free(target) {
            return Err("SECTION_FULL");
        }
        let to = self.seat_status(target);
        let moved = self.enrollments.get_mut(&id).expect("known enrollment");
        moved.section = target;
        moved.status = to;
        moved.ticket = None;
        if e.status.holds_seat() {
            self.promote(e.section);
        }
        Ok(to)
    }

    /// Accepting an offer takes the seat it held.
    fn accept(&mut self, id: Uuid) -> Outcome {
        let e = &self.enrollments[&id];
        if e.status != Offered {
            return Err("INVALID_TRANSITION");
        }
        let to = self.seat_status(e.section);
        self.enrollments.get_mut(&id).expect("known").status = to;
        Ok(to)
    }

    /// Every open offer lapses: WITHDRAWN, and its seat offered to the next waiter.
    fn expire(&mut self) {
        let open: Vec<Uuid> = self
            .enrollments
            .iter()
            .filter(|(_, e)| e.status == Offered)
            .map(|(id, _)| *id)
            .collect();
        let mut sections = HashSet::new();
        for id in open {
            let e = self.enrollments.get_mut(&id).expect("known");
            e.status = Withdrawn;
            sections.insert(e.section);
        }
        for section in sections {
            self.promote(section);
        }
    }

    fn set_capacity(&mut self, section: usize, capacity: i32) {
        self.sections[section].capacity = Some(capacity);
        self.promote(section);
    }
}

#[derive(Debug)]
enum Op {
    Enroll {
        user: usize,
        section: usize,
    },
    Withdraw(Uuid),
    Cancel(Uuid),
    Approve(Uuid),
    Complete(Uuid),
    Fail(Uuid),
    Switch(Uuid, usize),
    Capacity {
        section: usize,
        capacity: i32,
    },
    Accept(Uuid),
    Decline(Uuid),
    /// The clock passes every open offer's deadline and the timer's sweep runs.
    Expire,
}

/// The database's view, in the model's terms, to compare after every step.
async fn database_state(
    app: &TestApp,
    sections: &[ModelSection],
) -> (
    BTreeMap<Uuid, ModelEnrollment>,
    Vec<(i32, i32, i32, i32, i64)>,
) {
    let index: HashMap<Uuid, usize> = sections
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id, i))
        .collect();
    let enrollments = enrollment::Entity::find()
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .map(|e| {
            (
                e.id,
                ModelEnrollment {
                    user: usize::MAX,
                    section: index[&e.section_id],
                    status: e.status,
                    ticket: e.waitlist_ticket,
                },
            )
        })
        .collect();
    let mut counters = Vec::new();
    for s in sections {
        let row = app.section_row(s.id).await;
        counters.push((
            row.registered_count,
            row.pending_count,
            row.waitlist_count,
            row.offered_count,
            row.waitlist_seq,
        ));
    }
    (enrollments, counters)
}

async fn random_operations_match_the_reference_model(app: TestApp) {
    let campus = app.campus("Org").await;
    let t = campus.teacher_token.clone();
    let mut model = Model::default();
    // Two courses; sections with and without waitlists, approval, unlimited seats, offer mode
    // (one approving, one not).
    let shapes = [
        (0, Some(2), true, false, false),
        (0, Some(2), true, true, false),
        (0, Some(2), false, false, false),
        (1, None, true, false, false),
        (1, Some(1), true, false, false),
        (1, Some(2), true, false, true),
        (0, Some(1), true, true, true),
    ];
    let courses = [
        app.create_course(&t, json!({ "name": "Model A" })).await,
        app.create_course(&t, json!({ "name": "Model B" })).await,
    ];
    for (i, (course, capacity, waitlist_enabled, requires_approval, offer)) in
        shapes.into_iter().enumerate()
    {
        let id = app
            .create_section(
                &t,
                courses[course],
                json!({
                    "name": format!("S{i}"), "capacity": capacity,
                    "waitlistEnabled": waitlist_enabled, "requiresApproval": requires_approval,
                    "promotionMode": if offer { "OFFER" } else { "AUTOMATIC" },
                    "offerHours": OFFER_HOURS,
                }),
            )
            .await;
        model.sections.push(ModelSection {
            id,
            course,
            capacity,
            waitlist_enabled,
            requires_approval,
            offer,
            waitlist_seq: 0,
        });
    }
    let students = app.students(&campus, 12).await;
    let mut rng = StdRng::seed_from_u64(0x5EA7_2026);
    let mut seen: HashMap<String, usize> = HashMap::new();

    for step in 0..STEPS {
        // Mostly active enrollments, whose moves are the interesting ones; some final ones
        // to exercise refusals.
        let ids: Vec<Uuid> = model.enrollments.keys().copied().collect();
        let active: Vec<Uuid> = model
            .enrollments
            .iter()
            .filter(|(_, e)| EnrollmentStatus::ACTIVE.contains(&e.status))
            .map(|(id, _)| *id)
            .collect();
        let pick = |rng: &mut StdRng| {
            let from = if !active.is_empty() && rng.random_bool(0.85) {
                &active
            } else {
                &ids
            };
            from[rng.random_range(0..from.len())]
        };
        // Switch targets mostly within the course.
        let sibling = |rng: &mut StdRng, id: Uuid| {
            let course = model.sections[model.enrollments[&id].section].course;
            let same: Vec<usize> = (0..model.sections.len())
                .filter(|i| model.sections[*i].course == course)
                .collect();
            if rng.random_bool(0.9) {
                same[rng.random_range(0..same.len())]
            } else {
                rng.random_range(0..model.sections.len())
            }
        };
        let offered: Vec<Uuid> = model
            .enrollments
            .iter()
            .filter(|(_, e)| e.status == Offered)
            .map(|(id, _)| *id)
            .collect();
        // Mostly open offers, sometimes anything (a refusal).
        let pick_offer = |rng: &mut StdRng| {
            if !offered.is_empty() && rng.random_bool(0.8) {
                offered[rng.random_range(0..offered.len())]
            } else {
                pick(rng)
            }
        };
        let roll = rng.random_range(0..100);
        let op = if ids.is_empty() || roll < 30 {
            Op::Enroll {
                user: rng.random_range(0..students.len()),
                section: rng.random_range(0..model.sections.len()),
            }
        } else if roll < 42 {
            Op::Withdraw(pick(&mut rng))
        } else if roll < 48 {
            Op::Cancel(pick(&mut rng))
        } else if roll < 55 {
            Op::Approve(pick(&mut rng))
        } else if roll < 60 {
            Op::Complete(pick(&mut rng))
        } else if roll < 63 {
            Op::Fail(pick(&mut rng))
        } else if roll < 70 {
            Op::Accept(pick_offer(&mut rng))
        } else if roll < 74 {
            Op::Decline(pick_offer(&mut rng))
        } else if roll < 76 {
            Op::Expire
        } else if roll < 97 {
            let id = pick(&mut rng);
            Op::Switch(id, sibling(&mut rng, id))
        } else {
            let capped = [0, 1, 2, 4, 5, 6];
            Op::Capacity {
                section: capped[rng.random_range(0..capped.len())],
                capacity: rng.random_range(1..=3),
            }
        };

        let (expected, response, key): (Outcome, Value, &str) = match &op {
            Op::Enroll { user, section } => {
                let predicted = model.enroll(*user, *section);
                let response = app
                    .gql(
                        Some(&students[*user].1),
                        ENROLL,
                        json!({ "s": model.sections[*section].id }),
                    )
                    .await;
                let outcome = match predicted {
                    Ok(row) => {
                        let data = &response["data"]["enroll"];
                        assert!(data.is_object(), "step {step} {op:?}: {response}");
                        let id = parse_id(&data["id"]);
                        let status = row.status;
                        model.enrollments.insert(id, row);
                        assert_eq!(
                            data["waitlistPosition"],
                            json!(model.rank(id)),
                            "step {step}: the waitlist position is the rank"
                        );
                        Ok(status)
                    }
                    Err(code) => Err(code),
                };
                (outcome, response, "enroll")
            }
            Op::Withdraw(id)
            | Op::Cancel(id)
            | Op::Approve(id)
            | Op::Complete(id)
            | Op::Fail(id) => {
                let owner = &students[model.enrollments[id].user].1;
                let (mutation, token, allowed, to, name): (&str, &str, &[EnrollmentStatus], _, _) =
                    match op {
                        Op::Withdraw(_) => (
                            WITHDRAW,
                            owner,
                            &EnrollmentStatus::ACTIVE,
                            Withdrawn,
                            "withdraw",
                        ),
                        Op::Cancel(_) => (
                            CANCEL,
                            &t,
                            &EnrollmentStatus::ACTIVE,
                            Cancelled,
                            "cancelEnrollment",
                        ),
                        Op::Approve(_) => {
                            (APPROVE, &t, &[Pending], Registered, "approveEnrollment")
                        }
                        Op::Complete(_) => {
                            (COMPLETE, &t, &[Registered], Completed, "completeEnrollment")
                        }
                        _ => (FAIL, &t, &[Registered], Failed, "failEnrollment"),
                    };
                let expected = model.change(*id, allowed, to);
                (
                    expected,
                    app.gql(Some(token), mutation, json!({ "e": id })).await,
                    name,
                )
            }
            Op::Switch(id, target) => {
                let owner = &students[model.enrollments[id].user].1;
                let expected = model.switch(*id, *target);
                let response = app
                    .gql(
                        Some(owner),
                        SWITCH,
                        json!({ "e": id, "s": model.sections[*target].id }),
                    )
                    .await;
                (expected, response, "switchSection")
            }
            Op::Accept(id) | Op::Decline(id) => {
                let owner = &students[model.enrollments[id].user].1;
                let (mutation, name, expected) = match op {
                    Op::Accept(_) => (ACCEPT, "acceptOffer", model.accept(*id)),
                    _ => (
                        DECLINE,
                        "declineOffer",
                        model.change(*id, &[Offered], Withdrawn),
                    ),
                };
                (
                    expected,
                    app.gql(Some(owner), mutation, json!({ "e": id })).await,
                    name,
                )
            }
            Op::Expire => {
                model.expire();
                let store = &app.state.store;
                store
                    .clock()
                    .advance(chrono::Duration::hours(OFFER_HOURS) + chrono::Duration::minutes(1));
                roster::service::offers::expire_due(store)
                    .await
                    .expect("the sweep");
                (Ok(Withdrawn), json!({}), "expire")
            }
            Op::Capacity { section, capacity } => {
                model.set_capacity(*section, *capacity);
                let response = app
                    .gql(
                        Some(&t),
                        CAPACITY,
                        json!({ "s": model.sections[*section].id, "c": capacity }),
                    )
                    .await;
                (Ok(Registered), response, "updateSection")
            }
        };
        match &expected {
            Ok(status) => {
                assert!(
                    response.get("errors").is_none(),
                    "step {step} {op:?}: expected {status:?}, got {response}"
                );
                if key != "updateSection" && key != "expire" {
                    let got = &response["data"][key];
                    assert_eq!(
                        got["status"],
                        json!(format!("{status:?}").to_uppercase()),
                        "step {step} {op:?}"
                    );
                    if key == "switchSection" {
                        assert_eq!(got["waitlistPosition"], Value::Null);
                    }
                }
            }
            Err(code) => assert_eq!(
                error_code(&response),
                *code,
                "step {step} {op:?}: {response}"
            ),
        }
        *seen
            .entry(format!(
                "{key} {}",
                match &expected {
                    Ok(_) => "ok",
                    Err(c) => c,
                }
            ))
            .or_default() += 1;

        let (rows, counters) = database_state(&app, &model.sections).await;
        let mine: BTreeMap<Uuid, ModelEnrollment> = model
            .enrollments
            .iter()
            .map(|(id, e)| {
                (
                    *id,
                    ModelEnrollment {
                        user: usize::MAX,
                        ..e.clone()
                    },
                )
            })
            .collect();
        assert_eq!(
            rows, mine,
            "[{:?}] step {step} {op:?}: enrollments differ from the model",
            app.backend
        );
        for (i, s) in model.sections.iter().enumerate() {
            let expected = (
                model.count(i, Registered),
                model.count(i, Pending),
                model.count(i, Waitlisted),
                model.count(i, Offered),
                s.waitlist_seq,
            );
            assert_eq!(
                counters[i], expected,
                "[{:?}] step {step} {op:?}: section {i} counters",
                app.backend
            );
        }
    }
    // The walk must have reached every kind of outcome, or it proved little.
    for must in [
        "enroll ok",
        "enroll ALREADY_ENROLLED",
        "enroll SECTION_FULL",
        "withdraw ok",
        "withdraw INVALID_TRANSITION",
        "cancelEnrollment ok",
        "approveEnrollment ok",
        "completeEnrollment ok",
        "failEnrollment ok",
        "switchSection ok",
        "switchSection SECTION_FULL",
        "switchSection BAD_USER_INPUT",
        "switchSection INVALID_TRANSITION",
        "updateSection ok",
        "acceptOffer ok",
        "acceptOffer INVALID_TRANSITION",
        "declineOffer ok",
        "expire ok",
    ] {
        assert!(
            seen.get(must).copied().unwrap_or(0) > 0,
            "never saw {must}: {seen:?}"
        );
    }
    // Finished enrollments keep their seats, so completions free none: fewer promotions than
    // withdrawals alone would give.
    assert!(
        model.promotions > 10,
        "too few promotions: {}",
        model.promotions
    );
    eprintln!(
        "[{:?}] {STEPS} steps matched the model, {} promotions; outcomes {seen:?}",
        app.backend, model.promotions
    );
}

async fn concurrent_withdrawals_and_enrollments_keep_the_invariants(app: TestApp) {
    const CAPACITY: i32 = 8;
    const WORKERS: usize = 8;
    const RUN_FOR: Duration = Duration::from_secs(4);
    let campus = app.campus("Org").await;
    let (_, section) = app
        .course_with_section(&campus, "Soak", Some(CAPACITY), "MONDAY")
        .await;
    let students = app.students(&campus, 40).await;
    let app = Arc::new(app);
    let stop = Arc::new(AtomicBool::new(false));
    let operations = Arc::new(AtomicUsize::new(0));

    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (app, stop, operations) = (app.clone(), stop.clone(), operations.clone());
            let mine: Vec<(Uuid, String)> =
                students.iter().skip(w).step_by(WORKERS).cloned().collect();
            tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(w as u64);
                let mut active: HashMap<usize, Uuid> = HashMap::new();
                while !stop.load(Ordering::Relaxed) {
                    let i = rng.random_range(0..mine.len());
                    let token = &mine[i].1;
                    match active.remove(&i) {
                        Some(id) => {
                            app.withdraw(token, id).await.expect("withdrawn");
                        }
                        None => {
                            let enrolled = app.enroll(token, section).await.expect("enrolled");
                            active.insert(i, enrolled.id);
                        }
                    }
                    operations.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    let sampler = {
        let (app, stop) = (app.clone(), stop.clone());
        tokio::spawn(async move {
            let mut samples = 0;
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(40)).await;
                sample_invariants(&app, section).await;
                samples += 1;
            }
            samples
        })
    };
    let started = Instant::now();
    tokio::time::sleep(RUN_FOR).await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.expect("worker");
    }
    let samples = sampler.await.expect("sampler");
    app.assert_section_consistent(section).await;
    let promotions = replay_audit_trail(&app, section, CAPACITY as usize).await;
    let ops = operations.load(Ordering::Relaxed);
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "[{:?}] {ops} operations in {seconds:.1}s, {samples} consistent samples, \
         {promotions} promotions replayed",
        app.backend
    );
    assert!(
        ops > 100 && samples > 10 && promotions > 10,
        "too little happened to prove anything"
    );

    // Invariant 4 as clients see it: positions are exactly 1..n in ticket order.
    let mut positions = Vec::new();
    for (_, token) in &students {
        let mine = app
            .ok(
                Some(token),
                "{ myEnrollments(status: [WAITLISTED]) { waitlistPosition } }",
                json!({}),
            )
            .await;
        if let Some(p) = mine["myEnrollments"][0]["waitlistPosition"].as_i64() {
            positions.push(p);
        }
    }
    positions.sort_unstable();
    assert_eq!(positions, (1..=positions.len() as i64).collect::<Vec<_>>());
}

/// Offer mode under concurrency: students enrolling, withdrawing, accepting and declining
/// offers around one section while a sweeper passes expired offers on. Seats never exceed
/// capacity, every offer ends exactly once, and the audit trail replays to the final state.
async fn concurrent_offers_keep_the_invariants(app: TestApp) {
    const CAPACITY: i32 = 4;
    const WORKERS: usize = 8;
    /// Accepts, declines and withdrawals (enrollments come on top).
    const OPERATIONS: usize = 200;
    /// The student of each worker who lets every offer lapse.
    const ABSENT: usize = 0;
    let campus = app.campus("Org").await;
    let course = app
        .create_course(&campus.teacher_token, json!({ "name": "Offers" }))
        .await;
    let section = app
        .create_section(
            &campus.teacher_token,
            course,
            json!({ "name": "Hot", "capacity": CAPACITY, "promotionMode": "OFFER",
                    "offerHours": 1 }),
        )
        .await;
    let students = app.students(&campus, 32).await;
    let app = Arc::new(app);
    let operations = Arc::new(AtomicUsize::new(0));
    let answered = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));

    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (app, operations, answered) = (app.clone(), operations.clone(), answered.clone());
            let mine: Vec<(Uuid, String)> =
                students.iter().skip(w).step_by(WORKERS).cloned().collect();
            tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(0x0FFE + w as u64);
                let mut current: HashMap<usize, Uuid> = HashMap::new();
                while operations.load(Ordering::Relaxed) < OPERATIONS {
                    // Open offers are answered first, mostly: that is the race under test. The
                    // worker's first student never answers one, so that some offers lapse
                    // however fast the others are answered.
                    let answering = current.iter().filter(|(i, _)| **i != ABSENT);
                    let rows = enrollment::Entity::find()
                        .filter(enrollment::Column::Id.is_in(answering.map(|(_, id)| *id)))
                        .filter(enrollment::Column::Status.eq(Offered))
                        .all(&app.db)
                        .await
                        .unwrap();
                    let i = match rows.first() {
                        Some(row) if rng.random_bool(0.8) => {
                            *current
                                .iter()
                                .find(|(_, id)| **id == row.id)
                                .expect("mine")
                                .0
                        }
                        _ => rng.random_range(0..mine.len()),
                    };
                    let token = &mine[i].1;
                    let Some(id) = current.get(&i).copied() else {
                        let enrolled = app.enroll(token, section).await.expect("enrolled");
                        current.insert(i, enrolled.id);
                        continue;
                    };
                    let status = app.enrollment_row(id).await.status;
                    let (mutation, ends) = match status {
                        Offered if i == ABSENT => continue,
                        Offered if rng.random_bool(0.6) => (ACCEPT, false),
                        Offered => (DECLINE, true),
                        Registered | Waitlisted => (WITHDRAW, true),
                        _ => {
                            // Ended meanwhile (an offer expired): enroll again next time.
                            current.remove(&i);
                            continue;
                        }
                    };
                    operations.fetch_add(1, Ordering::Relaxed);
                    let response = app.gql(Some(token), mutation, json!({ "e": id })).await;
                    if response.get("errors").is_some() {
                        // Only a race with the sweeper may refuse: the offer expired first.
                        let code = error_code(&response);
                        assert!(
                            matches!(code.as_str(), "INVALID_TRANSITION" | "OFFER_EXPIRED"),
                            "{mutation}: {response}"
                        );
                    } else {
                        if matches!(mutation, ACCEPT | DECLINE) {
                            answered.fetch_add(1, Ordering::Relaxed);
                        }
                        if ends {
                            current.remove(&i);
                        }
                    }
                }
            })
        })
        .collect();
    // Every so often the clock passes the open offers' deadline and a sweep runs, as the timer
    // of any replica would.
    let sweeper = {
        let (app, stop) = (app.clone(), stop.clone());
        tokio::spawn(async move {
            let mut lapsed = 0;
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(5)).await;
                app.state
                    .store
                    .clock()
                    .advance(chrono::Duration::minutes(6));
                lapsed += roster::service::offers::expire_due(&app.state.store)
                    .await
                    .expect("sweep");
                sample_invariants(&app, section).await;
            }
            lapsed
        })
    };
    for worker in workers {
        worker.await.expect("worker");
    }
    stop.store(true, Ordering::Relaxed);
    let lapsed = sweeper.await.expect("sweeper");
    // Let every open offer end, so that each offer's end is in the trail.
    app.state.store.clock().advance(chrono::Duration::hours(2));
    let mut rounds = 0;
    while section_has_offers(&app, section).await {
        roster::service::offers::expire_due(&app.state.store)
            .await
            .expect("final sweep");
        app.state.store.clock().advance(chrono::Duration::hours(2));
        rounds += 1;
        assert!(rounds < 100, "offers keep coming");
    }
    app.assert_section_consistent(section).await;
    let (promotions, offers) = replay_offer_trail(&app, section, CAPACITY as usize).await;
    let answered = answered.load(Ordering::Relaxed);
    eprintln!(
        "[{:?}] {OPERATIONS} operations: {offers} offers, {answered} answered, {lapsed} lapsed \
         during the run, {promotions} seats taken by offers",
        app.backend
    );
    assert!(
        offers > 20 && answered > 10 && lapsed > 0,
        "too little happened to prove anything"
    );
}

async fn section_has_offers(app: &TestApp, section_id: Uuid) -> bool {
    enrollment::Entity::find()
        .filter(enrollment::Column::SectionId.eq(section_id))
        .filter(enrollment::Column::Status.eq(Offered))
        .one(&app.db)
        .await
        .unwrap()
        .is_some()
}

/// Replays an offer-mode section's audit trail in commit order: seats (REGISTERED and
/// OFFERED) never exceed capacity, a freed seat with someone waiting is offered in the same
/// transaction to the earliest waiter, an offer ends exactly once (accepted, declined,
/// expired or withdrawn), and the replayed statuses equal the rows. Returns how many offers
/// were accepted and how many were made.
async fn replay_offer_trail(app: &TestApp, section_id: Uuid, capacity: usize) -> (usize, usize) {
    let (rows, events) = section_trail(app, section_id).await;
    let mut status: HashMap<Uuid, EnrollmentStatus> = HashMap::new();
    let mut seats: HashSet<Uuid> = HashSet::new();
    let mut open: HashSet<Uuid> = HashSet::new();
    let mut queue: VecDeque<Uuid> = VecDeque::new();
    let (mut owed, mut accepted, mut made) = (0usize, 0, 0);
    for event in &events {
        let who = event.enrollment_id;
        assert_eq!(
            status.get(&who).copied(),
            event.from_status,
            "the trail is unbroken"
        );
        status.insert(who, event.to_status);
        match (event.from_status, event.to_status) {
            (Some(Waitlisted), Offered) => {
                assert_eq!(
                    queue.pop_front(),
                    Some(who),
                    "offered past the earliest waiter"
                );
                assert!(owed > 0, "an offer without a freed seat");
                owed -= 1;
                seats.insert(who);
                open.insert(who);
                made += 1;
            }
            transition => {
                assert_eq!(
                    owed, 0,
                    "a freed seat was not offered in the same transaction"
                );
                match transition {
                    (None, Registered) => {
                        assert!(
                            queue.is_empty(),
                            "a newcomer took a seat while others waited"
                        );
                        seats.insert(who);
                    }
                    (None, Waitlisted) => queue.push_back(who),
                    (Some(Offered), Registered) => {
                        assert!(open.remove(&who), "an offer accepted after it ended");
                        accepted += 1;
                    }
                    (Some(Offered | Registered), Withdrawn) => {
                        if transition.0 == Some(Offered) {
                            assert!(open.remove(&who), "an offer ended twice");
                        }
                        assert!(seats.remove(&who));
                        owed = usize::from(!queue.is_empty());
                    }
                    (Some(Waitlisted), Withdrawn) => {
                        let before = queue.len();
                        queue.retain(|w| *w != who);
                        assert_eq!(queue.len() + 1, before);
                    }
                    other => panic!("unexpected transition {other:?}"),
                }
            }
        }
        assert!(seats.len() <= capacity, "overbooked at event {}", event.id);
    }
    assert_eq!(owed, 0);
    assert!(open.is_empty(), "offers left open: {open:?}");
    for row in &rows {
        assert_eq!(
            status.get(&row.id),
            Some(&row.status),
            "the trail replays to the row"
        );
    }
    (accepted, made)
}

both_backends!(
    random_operations_match_the_reference_model,
    concurrent_withdrawals_and_enrollments_keep_the_invariants,
    concurrent_offers_keep_the_invariants
);

/// Invariants 1, 3 and 4 in one consistent snapshot of the section and its enrollments.
async fn sample_invariants(app: &TestApp, section_id: Uuid) {
    let txn = match app.backend {
        Backend::Postgres => app
            .db
            .begin_with_config(
                Some(IsolationLevel::RepeatableRead),
                Some(AccessMode::ReadOnly),
            )
            .await
            .unwrap(),
        Backend::Sqlite => app.db.begin().await.unwrap(),
    };
    let section = section::Entity::find_by_id(section_id)
        .one(&txn)
        .await
        .unwrap()
        .unwrap();
    let rows = enrollment::Entity::find()
        .filter(enrollment::Column::SectionId.eq(section_id))
        .all(&txn)
        .await
        .unwrap();
    txn.commit().await.unwrap();
    let count = |s: EnrollmentStatus| rows.iter().filter(|e| e.status == s).count() as i32;
    let (registered, offered, waiting) = (count(Registered), count(Offered), count(Waitlisted));
    assert_eq!(
        (
            section.registered_count,
            section.offered_count,
            section.waitlist_count
        ),
        (registered, offered, waiting),
        "sampled counters equal the rows"
    );
    let capacity = section.capacity.expect("capped");
    let taken = registered + offered;
    assert!(taken <= capacity, "sampled: overbooked");
    assert!(
        waiting == 0 || taken == capacity,
        "sampled: {waiting} wait while a seat is free"
    );
    let tickets: HashSet<i64> = rows.iter().filter_map(|e| e.waitlist_ticket).collect();
    assert_eq!(
        tickets.len() as i32,
        waiting,
        "sampled: one ticket per waiter"
    );
}

/// A section's enrollments and their events in commit order (every writer holds the section's
/// lock while it writes events, so event ids follow commit order).
async fn section_trail(
    app: &TestApp,
    section_id: Uuid,
) -> (Vec<enrollment::Model>, Vec<enrollment_event::Model>) {
    let rows = enrollment::Entity::find()
        .filter(enrollment::Column::SectionId.eq(section_id))
        .all(&app.db)
        .await
        .unwrap();
    let ids: Vec<Uuid> = rows.iter().map(|e| e.id).collect();
    let mut events = Vec::new();
    for chunk in ids.chunks(500) {
        events.extend(
            enrollment_event::Entity::find()
                .filter(enrollment_event::Column::EnrollmentId.is_in(chunk.to_vec()))
                .all(&app.db)
                .await
                .unwrap(),
        );
    }
    events.sort_by_key(|e| e.id);
    (rows, events)
}

/// Replays the section's audit trail in commit order (every writer holds the section's lock
/// while it writes events, so event ids follow commit order) and checks that nobody took a seat
/// past someone waiting, that seats never exceeded capacity, and that every withdrawal of a seat
/// with someone waiting was followed, in the same transaction, by the promotion of the earliest
/// waiter. Returns how many promotions it saw.
async fn replay_audit_trail(app: &TestApp, section_id: Uuid, capacity: usize) -> usize {
    let (_, events) = section_trail(app, section_id).await;
    let mut seats: HashSet<Uuid> = HashSet::new();
    let mut queue: VecDeque<Uuid> = VecDeque::new();
    let mut owed = 0usize;
    let mut promotions = 0;
    for event in &events {
        let who = event.enrollment_id;
        match (event.from_status, event.to_status) {
            (Some(Waitlisted), Registered) => {
                assert_eq!(
                    queue.pop_front(),
                    Some(who),
                    "promotion skipped the earliest waiter"
                );
                assert!(owed > 0, "a promotion without a freed seat");
                owed -= 1;
                seats.insert(who);
                promotions += 1;
            }
            _ => {
                assert_eq!(
                    owed, 0,
                    "a freed seat was not filled in the same transaction"
                );
                match (event.from_status, event.to_status) {
                    (None, Registered) => {
                        assert!(
                            queue.is_empty(),
                            "a newcomer took a seat while others waited"
                        );
                        seats.insert(who);
                    }
                    (None, Waitlisted) => {
                        assert_eq!(
                            seats.len(),
                            capacity,
                            "joined the waitlist while a seat was free"
                        );
                        queue.push_back(who);
                    }
                    (Some(Registered), Withdrawn) => {
                        assert!(seats.remove(&who));
                        owed = usize::from(!queue.is_empty());
                    }
                    (Some(Waitlisted), Withdrawn) => {
                        let before = queue.len();
                        queue.retain(|w| *w != who);
                        assert_eq!(queue.len() + 1, before);
                    }
                    other => panic!("unexpected transition {other:?}"),
                }
            }
        }
        assert!(seats.len() <= capacity, "overbooked at event {}", event.id);
    }
    assert_eq!(owed, 0);
    promotions
}
