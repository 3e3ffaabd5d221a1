//! Demo data: a few organizations, their staff and students, and 24 courses with sections, some
//! full and some with waitlists, so that GraphiQL has something to show on the first run.
//!
//! The data is generated in memory from a fixed seed, with every section's counters computed
//! from the enrollments generated for it, then written in one transaction.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use entity::{
    certification, course, course_prerequisite, enrollment, enrollment_event, organization,
    section, term,
    types::{
        Admission, EnrollmentStatus, Holidays, Meeting, PromotionMode, Role, Schedule, Weekday,
    },
    user,
};
use rand::{Rng, SeedableRng, rngs::StdRng, seq::SliceRandom};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, IntoActiveModel,
    QueryFilter, Set,
};
use uuid::Uuid;

use crate::{domain::seats::Seats, error::ApiError, store::Store};

pub const DEMO_STUDENT_EMAIL: &str = "student1@demo.roster.dev";
pub const DEMO_TEACHER_EMAIL: &str = "teacher1@demo.roster.dev";
pub const DEMO_COORDINATOR_EMAIL: &str = "coordinator1@demo.roster.dev";
pub const DEMO_ADMIN_EMAIL: &str = "admin@demo.roster.dev";

/// The demo organizations' time zone: its terms cross a daylight-saving change.
const DEMO_TIME_ZONE: &str = "America/New_York";

const ORGANIZATIONS: [&str; 3] = [
    "Northside Learning Association",
    "Harbor Community College",
    "Riverside Mentors",
];

const COURSES: [(&str, &str, &str); 24] = [
    (
        "Introduction to Programming",
        "CS-101",
        "Variables, control flow and functions in Python, from zero.",
    ),
    (
        "Data Structures",
        "CS-201",
        "Lists, trees, hash maps and graphs, and when to use which.",
    ),
    (
        "Web Development Basics",
        "WEB-110",
        "HTML, CSS and a little JavaScript: build and publish a site.",
    ),
    (
        "Databases and SQL",
        "DB-150",
        "Model data, write queries, and understand indexes and transactions.",
    ),
    (
        "First Aid Essentials",
        "FA-100",
        "Recognise emergencies and give first aid until help arrives.",
    ),
    (
        "Peer Mentoring Foundations",
        "PM-100",
        "Listening, boundaries and follow-up for new peer mentors.",
    ),
    (
        "Advanced Peer Mentoring",
        "PM-200",
        "Group sessions, conflict and referral for certified mentors.",
    ),
    (
        "Public Speaking",
        "COM-120",
        "Structure a talk, handle nerves and answer questions.",
    ),
    (
        "Spanish for Beginners",
        "LANG-101",
        "Everyday Spanish conversation for complete beginners.",
    ),
    (
        "Photography Workshop",
        "ART-130",
        "Composition, light and editing with any camera.",
    ),
    (
        "Personal Finance",
        "FIN-100",
        "Budgets, saving, credit and the basics of investing.",
    ),
    (
        "Creative Writing",
        "ENG-140",
        "Short fiction and poetry with weekly feedback circles.",
    ),
    (
        "Statistics in Practice",
        "MATH-210",
        "Descriptive statistics, sampling and tests, with real data.",
    ),
    (
        "Linear Algebra",
        "MATH-220",
        "Vectors, matrices and transformations for programmers.",
    ),
    (
        "Machine Learning Primer",
        "CS-310",
        "Regression, classification and evaluation, hands on.",
    ),
    (
        "Project Management",
        "BUS-200",
        "Plan, estimate and deliver projects with small teams.",
    ),
    (
        "Graphic Design",
        "ART-210",
        "Typography, colour and layout for print and screen.",
    ),
    (
        "Nutrition and Health",
        "HLT-110",
        "What to eat and why, without fads.",
    ),
    (
        "Urban Gardening",
        "ENV-105",
        "Grow vegetables on balconies and in shared plots.",
    ),
    (
        "Intro to Psychology",
        "PSY-101",
        "Perception, memory, motivation and how we study them.",
    ),
    (
        "Music Theory",
        "MUS-100",
        "Scales, chords and rhythm, with a keyboard at hand.",
    ),
    (
        "Entrepreneurship",
        "BUS-150",
        "From an idea to a first paying customer.",
    ),
    (
        "Climate Science",
        "ENV-200",
        "The physics of climate and what the data shows.",
    ),
    (
        "Archived: Legacy Systems",
        "CS-099",
        "No longer offered; kept for its certificates.",
    ),
];

const FIRST_NAMES: [&str; 20] = [
    "Ada", "Ben", "Chloé", "Dmitri", "Emma", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemi",
    "Liam", "Maya", "Noor", "Oskar", "Priya", "Quinn", "Rosa", "Sami", "Tara",
];
const LAST_NAMES: [&str; 12] = [
    "Lovelace", "Okafor", "Martin", "Ivanov", "Nguyen", "Haddad", "Hopper", "Tanaka", "García",
    "Berg", "Adeyemi", "Kowalski",
];

/// Whether the demo data is already there.
///
/// # Errors
/// The database fails.
pub async fn demo_loaded(db: &DatabaseConnection) -> Result<bool, DbErr> {
    Ok(user::Entity::find()
        .filter(user::Column::Email.eq(DEMO_STUDENT_EMAIL))
        .one(db)
        .await?
        .is_some())
}

/// Writes the demo data in one transaction.
///
/// # Errors
/// The database fails, or some demo emails are already taken.
pub async fn load_demo(store: &Store) -> Result<(), ApiError> {
    let data = &Demo::generate(store.now());
    store
        .write(|tx| {
            Box::pin(async move {
                insert_all::<organization::Entity>(tx, &data.organizations).await?;
                insert_all::<term::Entity>(tx, &data.terms).await?;
                insert_all::<user::Entity>(tx, &data.users).await?;
                insert_all::<course::Entity>(tx, &data.courses).await?;
                insert_all::<course_prerequisite::Entity>(tx, &data.prerequisites).await?;
                insert_all::<section::Entity>(tx, &data.sections).await?;
                insert_all::<enrollment::Entity>(tx, &data.enrollments).await?;
                insert_all::<certification::Entity>(tx, &data.certifications).await?;
                for chunk in data.events.chunks(200) {
                    enrollment_event::Entity::insert_many(chunk.iter().cloned())
                        .exec(tx)
                        .await?;
                }
                Ok(())
            })
        })
        .await
}

async fn insert_all<E>(txn: &impl ConnectionTrait, rows: &[E::Model]) -> Result<(), DbErr>
where
    E: EntityTrait,
    E::Model: IntoActiveModel<E::ActiveModel> + Clone,
    E::ActiveModel: Send,
{
    for chunk in rows.chunks(200) {
        E::insert_many(
            chunk
                .iter()
                .cloned()
                .map(IntoActiveModel::into_active_model),
        )
        .exec(txn)
        .await?;
    }
    Ok(())
}

/// Deterministic ids, so two demo loads produce the same rows.
struct Ids(StdRng);

impl Ids {
    fn next(&mut self) -> Uuid {
        uuid::Builder::from_random_bytes(self.0.random()).into_uuid()
    }
}

/// An organization's demo terms at `at`: the current one (started a month ago, enrollment open,
/// the drop deadline a week away) and the next (enrollment opening in two weeks), each with a
/// holiday and in [`DEMO_TIME_ZONE`], whose daylight-saving changes fall inside a term.
fn demo_terms(organization: Uuid, at: DateTime<Utc>, ids: &mut Ids) -> [term::Model; 2] {
    use chrono::DurationRound;
    let at = at.duration_trunc(Duration::hours(1)).unwrap_or(at);
    let starts = (at - Duration::days(30)).date_naive();
    let ends = starts + Duration::days(105);
    let next_starts = ends + Duration::days(21);
    let next_ends = next_starts + Duration::days(105);
    let monday_after =
        |day: chrono::NaiveDate| crate::domain::calendar::first_on_or_after(day, Weekday::Monday);
    let term = |id,
                name: String,
                (from, to): (chrono::NaiveDate, chrono::NaiveDate),
                holiday,
                opens: DateTime<Utc>,
                closes,
                drop,
                withdraw| term::Model {
        id,
        organization_id: organization,
        code: from.format("%Y-%m").to_string(),
        name,
        starts_on: from,
        ends_on: to,
        time_zone: DEMO_TIME_ZONE.into(),
        holidays: Holidays(vec![holiday]),
        enrollment_opens_at: Some(opens),
        enrollment_closes_at: Some(closes),
        drop_deadline: Some(drop),
        withdraw_deadline: Some(withdraw),
        admission: Admission::FirstCome,
        lottery_minutes: None,
        lottery_seed: None,
        lottery_seed_hash: None,
        lottery_drawn_at: None,
        created_at: at - Duration::days(60),
        updated_at: at - Duration::days(60),
    };
    let season = |day: chrono::NaiveDate| {
        use chrono::Datelike;
        let name = match day.month() {
            1..=5 => "Spring",
            6..=8 => "Summer",
            _ => "Fall",
        };
        format!("{name} {}", day.year())
    };
    [
        term(
            ids.next(),
            season(starts),
            (starts, ends),
            monday_after(starts + Duration::days(35)),
            at - Duration::days(45),
            at + Duration::days(30),
            at + Duration::days(7),
            at + Duration::days(45),
        ),
        term(
            ids.next(),
            season(next_starts),
            (next_starts, next_ends),
            monday_after(next_starts + Duration::days(28)),
            at + Duration::days(14),
            at + Duration::days(70),
            at + Duration::days(70),
            at + Duration::days(120),
        ),
    ]
}

/// (course, prerequisite) by index into [`COURSES`]: Data Structures needs Introduction to
/// Programming, Advanced Peer Mentoring the foundations course, Machine Learning Statistics.
const PREREQUISITES: [(usize, usize); 3] = [(1, 0), (6, 5), (14, 12)];

/// The generated rows.
struct Demo {
    organizations: Vec<organization::Model>,
    terms: Vec<term::Model>,
    users: Vec<user::Model>,
    courses: Vec<course::Model>,
    prerequisites: Vec<course_prerequisite::Model>,
    sections: Vec<section::Model>,
    enrollments: Vec<enrollment::Model>,
    events: Vec<enrollment_event::ActiveModel>,
    certifications: Vec<certification::Model>,
}

impl Demo {
    fn generate(at: DateTime<Utc>) -> Self {
        let mut rng = StdRng::seed_from_u64(2026);
        let mut ids = Ids(StdRng::seed_from_u64(1));
        let base = at - Duration::days(30);

        let organizations: Vec<_> = ORGANIZATIONS
            .iter()
            .map(|name| organization::Model {
                id: ids.next(),
                name: (*name).into(),
                time_zone: DEMO_TIME_ZONE.into(),
                created_at: base,
            })
            .collect();
        let org = |i: usize| organizations[i % organizations.len()].id;
        // Each organization's current term and the next; drawn from ids of their own, so the
        // other demo rows keep theirs.
        let mut term_ids = Ids(StdRng::seed_from_u64(3));
        let terms: Vec<term::Model> = organizations
            .iter()
            .flat_map(|o| demo_terms(o.id, at, &mut term_ids))
            .collect();
        let term_of = |organization: Uuid, next: bool| {
            terms
                .iter()
                .filter(|t| t.organization_id == organization)
                .nth(usize::from(next))
                .map(|t| t.id)
        };
        let mut person =
            |email: String, name: String, role: Role, org_id: Uuid, picture: Option<String>| {
                user::Model {
                    id: ids.next(),
                    email,
                    name,
                    picture,
                    role,
                    organization_id: Some(org_id),
                    created_at: base,
                    updated_at: base,
                }
            };

        let mut users = vec![person(
            DEMO_ADMIN_EMAIL.into(),
            "Avery Admin".into(),
            Role::Admin,
            org(0),
            None,
        )];
        for i in 0..3 {
            users.push(person(
                format!("coordinator{}@demo.roster.dev", i + 1),
                format!(
                    "{} {}",
                    FIRST_NAMES[(i * 7 + 3) % 20],
                    LAST_NAMES[(i * 5) % 12]
                ),
                Role::Coordinator,
                org(i),
                None,
            ));
        }
        let teachers: Vec<user::Model> = (0..8)
            .map(|i| {
                person(
                    format!("teacher{}@demo.roster.dev", i + 1),
                    format!(
                        "{} {}",
                        FIRST_NAMES[(i * 3 + 1) % 20],
                        LAST_NAMES[(i * 7 + 2) % 12]
                    ),
                    Role::Teacher,
                    org(i),
                    Some(format!(
                        "https://picsum.photos/seed/roster-teacher-{}/200",
                        i + 1
                    )),
                )
            })
            .collect();
        let students: Vec<user::Model> = (0..60)
            .map(|i| {
                person(
                    format!("student{}@demo.roster.dev", i + 1),
                    format!("{} {}", FIRST_NAMES[i % 20], LAST_NAMES[(i / 2 + i) % 12]),
                    Role::Student,
                    org(i),
                    None,
                )
            })
            .collect();
        users.extend(teachers.iter().cloned());
        users.extend(students.iter().cloned());

        let courses: Vec<course::Model> = COURSES
            .iter()
            .enumerate()
            .map(|(i, (name, code, description))| {
                // Courses of one organization are taught by its own teachers.
                let teacher = &teachers[i % teachers.len()];
                let created = base + Duration::hours(6 * i as i64);
                course::Model {
                    id: ids.next(),
                    organization_id: teacher.organization_id.unwrap_or(organizations[0].id),
                    teacher_id: teacher.id,
                    name: (*name).into(),
                    description: Some((*description).into()),
                    code: Some((*code).into()),
                    is_active: i != 23,
                    certificate_validity_months: matches!(i, 0 | 4 | 5 | 6 | 23).then_some(24),
                    created_at: created,
                    updated_at: created,
                }
            })
            .collect();
        let prerequisites = PREREQUISITES
            .into_iter()
            .map(|(c, p)| course_prerequisite::Model {
                course_id: courses[c].id,
                prerequisite_id: courses[p].id,
            })
            .collect();

        let capacities = [
            Some(25),
            Some(5),
            None,
            Some(30),
            Some(8),
            Some(12),
            Some(40),
        ];
        let mut sections = Vec::new();
        for (i, c) in courses.iter().enumerate() {
            for s in 0..(i % 3 + 1) {
                let weekday = Weekday::ALL[(i + s * 2) % 5];
                let start_hour = 8 + (i * 2 + s * 3) % 10;
                let schedule = Schedule(vec![Meeting {
                    weekday,
                    start: format!("{start_hour:02}:00"),
                    end: format!("{:02}:30", start_hour + 1),
                    room: Some(format!("Room {}", 100 + i * 3 + s)),
                }]);
                sections.push(section::Model {
                    id: ids.next(),
                    course_id: c.id,
                    name: format!("Section {}", char::from(b'A' + s as u8)),
                    weekdays: schedule.weekday_mask(),
                    schedule,
                    capacity: capacities[(i + s) % capacities.len()],
                    registered_count: 0,
                    pending_count: 0,
                    waitlist_count: 0,
                    finished_count: 0,
                    offered_count: 0,
                    term_id: term_of(c.organization_id, false),
                    starts_on: None,
                    ends_on: None,
                    enrollment_opens_at: None,
                    enrollment_closes_at: None,
                    close_noticed_at: None,
                    // Some sections offer a freed seat for two days instead of giving it.
                    promotion_mode: if i % 5 == 4 {
                        PromotionMode::Offer
                    } else {
                        PromotionMode::Automatic
                    },
                    offer_hours: if i % 5 == 4 { 48 } else { 24 },
                    assistant_id: None,
                    waitlist_seq: 0,
                    is_active: !(i == 2 && s == 2),
                    requires_approval: i == 7,
                    // One full section without a waitlist, to show SECTION_FULL.
                    waitlist_enabled: i != 11,
                    created_at: c.created_at,
                    updated_at: c.created_at,
                });
            }
        }

        // A few courses also run next term, whose enrollment opens in two weeks.
        for (i, c) in courses.iter().enumerate().filter(|(i, _)| i % 4 == 1) {
            let schedule = Schedule(vec![Meeting {
                weekday: Weekday::ALL[i % 5],
                start: "10:00".into(),
                end: "11:30".into(),
                room: Some(format!("Room {}", 300 + i)),
            }]);
            sections.push(section::Model {
                id: term_ids.next(),
                course_id: c.id,
                name: "Next term".into(),
                weekdays: schedule.weekday_mask(),
                schedule,
                capacity: Some(20),
                registered_count: 0,
                pending_count: 0,
                waitlist_count: 0,
                finished_count: 0,
                offered_count: 0,
                term_id: term_of(c.organization_id, true),
                starts_on: None,
                ends_on: None,
                enrollment_opens_at: None,
                enrollment_closes_at: None,
                close_noticed_at: None,
                promotion_mode: PromotionMode::Automatic,
                offer_hours: 24,
                assistant_id: None,
                waitlist_seq: 0,
                is_active: true,
                requires_approval: false,
                waitlist_enabled: true,
                created_at: c.created_at,
                updated_at: c.created_at,
            });
        }

        let mut book = Book {
            at: base + Duration::days(1),
            taken: HashSet::new(),
            enrollments: Vec::new(),
            events: Vec::new(),
            certifications: Vec::new(),
        };
        // The first ten students completed Introduction to Programming and the mentoring
        // foundations; their certificates open Data Structures and Advanced Peer Mentoring.
        for student in &students[..10] {
            for course_index in [0, 5] {
                let idx = sections
                    .iter()
                    .position(|s| s.course_id == courses[course_index].id);
                if let Some(idx) = idx {
                    book.complete(
                        student,
                        &mut sections[idx],
                        &courses[course_index],
                        &mut ids,
                    );
                }
            }
        }
        // Popular small sections fill up and grow a waitlist.
        let popular: Vec<usize> = sections
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_active && matches!(s.capacity, Some(5) | Some(8)))
            .map(|(i, _)| i)
            .collect();
        let mut order: Vec<usize> = (1..students.len()).collect();
        for &idx in &popular {
            order.shuffle(&mut rng);
            let course = courses
                .iter()
                .find(|c| c.id == sections[idx].course_id)
                .cloned();
            let Some(course) = course else { continue };
            if !course.is_active {
                continue;
            }
            let want = sections[idx].capacity.unwrap_or(0) + 3;
            for &student in order.iter().take(want as usize) {
                book.enroll(&students[student], &mut sections[idx], &mut ids);
            }
        }
        // Everyone else picks a few courses at random.
        for student in students.iter().skip(1) {
            for _ in 0..rng.random_range(1..=3) {
                let idx = rng.random_range(0..sections.len());
                let course = &courses[courses
                    .iter()
                    .position(|c| c.id == sections[idx].course_id)
                    .unwrap_or(0)];
                // Random students hold no certificates: leave courses with prerequisites alone.
                if PREREQUISITES
                    .iter()
                    .any(|(c, _)| course.code.as_deref() == Some(COURSES[*c].1))
                {
                    continue;
                }
                book.enroll(student, &mut sections[idx], &mut ids);
            }
        }
        // The demo student: registered in two courses and waiting for a seat in a full one.
        let demo = &students[0];
        for code in ["WEB-110", "CS-201"] {
            if let Some(idx) = first_open_section(&sections, &courses, code) {
                book.enroll(demo, &mut sections[idx], &mut ids);
            }
        }
        for &idx in &popular {
            let s = &sections[idx];
            let full = s
                .capacity
                .is_some_and(|c| s.registered_count + s.pending_count >= c);
            if full && s.waitlist_enabled && !book.taken.contains(&(demo.id, s.course_id)) {
                book.enroll(demo, &mut sections[idx], &mut ids);
                break;
            }
        }

        Demo {
            organizations,
            terms,
            users,
            courses,
            prerequisites,
            sections,
            enrollments: book.enrollments,
            events: book.events,
            certifications: book.certifications,
        }
    }
}

fn first_open_section(
    sections: &[section::Model],
    courses: &[course::Model],
    code: &str,
) -> Option<usize> {
    let course = courses.iter().find(|c| c.code.as_deref() == Some(code))?;
    sections
        .iter()
        .position(|s| s.course_id == course.id && s.is_active && !Seats::from(s).is_full())
}

/// Enrollments being generated, with the rules of the engine applied to counters in memory.
struct Book {
    at: DateTime<Utc>,
    taken: HashSet<(Uuid, Uuid)>,
    enrollments: Vec<enrollment::Model>,
    events: Vec<enrollment_event::ActiveModel>,
    certifications: Vec<certification::Model>,
}

impl Book {
    fn tick(&mut self) -> DateTime<Utc> {
        self.at += Duration::minutes(7);
        self.at
    }

    fn enroll(
        &mut self,
        student: &user::Model,
        section: &mut section::Model,
        ids: &mut Ids,
    ) -> Option<EnrollmentStatus> {
        if !section.is_active || !self.taken.insert((student.id, section.course_id)) {
            return None;
        }
        let status = if !Seats::from(&*section).is_full() {
            if section.requires_approval {
                section.pending_count += 1;
                EnrollmentStatus::Pending
            } else {
                section.registered_count += 1;
                EnrollmentStatus::Registered
            }
        } else if section.waitlist_enabled {
            section.waitlist_count += 1;
            section.waitlist_seq += 1;
            EnrollmentStatus::Waitlisted
        } else {
            self.taken.remove(&(student.id, section.course_id));
            return None;
        };
        let at = self.tick();
        let row = enrollment::Model {
            id: ids.next(),
            waitlist_ticket: (status == EnrollmentStatus::Waitlisted)
                .then_some(section.waitlist_seq),
            ..crate::service::new_enrollment(student.id, section, status, true, at)
        };
        self.event(row.id, None, status, Some(student.id), at);
        self.enrollments.push(row);
        Some(status)
    }

    fn complete(
        &mut self,
        student: &user::Model,
        section: &mut section::Model,
        course: &course::Model,
        ids: &mut Ids,
    ) {
        // Enroll (taking a seat), then confirm attendance; the finished enrollment keeps its seat.
        if self.enroll(student, section, ids) != Some(EnrollmentStatus::Registered) {
            return;
        }
        section.registered_count -= 1;
        section.finished_count += 1;
        self.taken.remove(&(student.id, section.course_id));
        let at = self.tick();
        let Some(row) = self.enrollments.last_mut() else {
            return;
        };
        row.status = EnrollmentStatus::Completed;
        row.completed_at = Some(at);
        row.completed_by = Some(course.teacher_id);
        row.completion_evidence =
            Some(serde_json::json!({ "attendance": "confirmed", "sessions": 8 }));
        row.updated_at = at;
        let enrollment_id = row.id;
        self.event(
            enrollment_id,
            Some(EnrollmentStatus::Registered),
            EnrollmentStatus::Completed,
            Some(course.teacher_id),
            at,
        );
        self.certifications.push(certification::Model {
            id: ids.next(),
            user_id: student.id,
            course_id: course.id,
            enrollment_id,
            issued_at: at,
            expires_at: course
                .certificate_validity_months
                .and_then(|m| at.checked_add_months(chrono::Months::new(m as u32))),
            expiry_notified_at: None,
        });
    }

    fn event(
        &mut self,
        enrollment_id: Uuid,
        from: Option<EnrollmentStatus>,
        to: EnrollmentStatus,
        actor: Option<Uuid>,
        at: DateTime<Utc>,
    ) {
        self.events.push(enrollment_event::ActiveModel {
            enrollment_id: Set(enrollment_id),
            from_status: Set(from),
            to_status: Set(to),
            actor_id: Set(actor),
            reason: Set(None),
            details: Set(None),
            at: Set(at),
            ..Default::default()
        });
    }
}

/// Sizes of `roster seed --scale 1`, the benchmark data set (the PostGraphile anchor's sizes).
const SCALE_TEACHERS: f64 = 200.0;
const SCALE_STUDENTS: f64 = 20_000.0;
const SCALE_COURSES: f64 = 2_000.0;
/// Courses each student takes, so about 100,000 enrollments at scale 1.
const COURSES_PER_STUDENT: usize = 5;

/// Loads the benchmark data set, `scale` times its size (1 = 200 teachers, 20,000 students,
/// 2,000 courses of which 90 % active, 3 sections each with 20 to 60 seats or, for about 15 %,
/// no limit, and about 100,000 enrollments: mostly REGISTERED, WAITLISTED past capacity, some
/// WITHDRAWN). Deterministic, written in bulk in one transaction, counters computed from the
/// rows. Returns the number of enrollments.
///
/// # Errors
/// The database fails, or the data set (its e-mails) is already there.
pub async fn load_scale(store: &Store, scale: f64) -> Result<usize, ApiError> {
    let count = |base: f64| ((base * scale).round() as usize).max(1);
    let mut rng = StdRng::seed_from_u64(0x5CA1E);
    let mut ids = Ids(StdRng::seed_from_u64(0x1D5));
    let base = store.now() - Duration::days(30);
    let organizations: Vec<organization::Model> = (0..count(10.0).min(50))
        .map(|i| organization::Model {
            id: ids.next(),
            name: format!("Scale Organization {i}"),
            time_zone: "UTC".into(),
            created_at: base,
        })
        .collect();
    let person = |ids: &mut Ids, role: Role, i: usize, organization: Uuid| {
        let kind = format!("{role:?}").to_lowercase();
        user::Model {
            id: ids.next(),
            email: format!("{kind}{i}@scale.roster.dev"),
            name: format!(
                "{} {}",
                FIRST_NAMES[i % FIRST_NAMES.len()],
                LAST_NAMES[(i / FIRST_NAMES.len()) % LAST_NAMES.len()]
            ),
            picture: Some(format!("https://img.roster.dev/{kind}/{i}.png")),
            role,
            organization_id: Some(organization),
            created_at: base,
            updated_at: base,
        }
    };
    let org_of = |i: usize| organizations[i % organizations.len()].id;
    let teachers: Vec<user::Model> = (0..count(SCALE_TEACHERS))
        .map(|i| person(&mut ids, Role::Teacher, i, org_of(i)))
        .collect();
    let students: Vec<user::Model> = (0..count(SCALE_STUDENTS))
        .map(|i| person(&mut ids, Role::Student, i, org_of(i)))
        .collect();
    let courses: Vec<course::Model> = (0..count(SCALE_COURSES))
        .map(|i| {
            let teacher = &teachers[i % teachers.len()];
            let (name, code, description) = COURSES[i % COURSES.len()];
            let at = base + Duration::seconds(i as i64);
            course::Model {
                id: ids.next(),
                organization_id: teacher.organization_id.unwrap_or(organizations[0].id),
                teacher_id: teacher.id,
                name: format!("{name} {}", i / COURSES.len() + 1),
                description: Some(description.to_owned()),
                code: Some(format!("{code}-{i}")),
                is_active: i % 10 != 9,
                certificate_validity_months: (i % 4 == 0).then_some(12),
                created_at: at,
                updated_at: at,
            }
        })
        .collect();
    let mut sections: Vec<section::Model> = Vec::with_capacity(courses.len() * 3);
    for (i, c) in courses.iter().enumerate() {
        for s in 0..3 {
            let weekday = Weekday::ALL[(i + s * 2) % 5];
            let start_hour = 8 + (i + s * 3) % 10;
            let schedule = Schedule(vec![Meeting {
                weekday,
                start: format!("{start_hour:02}:00"),
                end: format!("{start_hour:02}:50"),
                room: Some(format!("Room {}", 100 + (i * 3 + s) % 400)),
            }]);
            sections.push(section::Model {
                id: ids.next(),
                course_id: c.id,
                name: format!("Section {}", char::from(b'A' + s as u8)),
                weekdays: schedule.weekday_mask(),
                schedule,
                capacity: (!rng.random_bool(0.15)).then(|| rng.random_range(20..=60)),
                registered_count: 0,
                pending_count: 0,
                waitlist_count: 0,
                finished_count: 0,
                offered_count: 0,
                term_id: None,
                starts_on: None,
                ends_on: None,
                enrollment_opens_at: None,
                enrollment_closes_at: None,
                close_noticed_at: None,
                promotion_mode: PromotionMode::Automatic,
                offer_hours: 24,
                assistant_id: None,
                waitlist_seq: 0,
                is_active: true,
                requires_approval: false,
                waitlist_enabled: true,
                created_at: c.created_at,
                updated_at: c.created_at,
            });
        }
    }
    // Each student takes distinct active courses, in a random section of each; a section
    // seats its first `capacity` takers and puts the rest on its waitlist; about 8 % withdrew.
    let active: Vec<usize> = (0..courses.len())
        .filter(|i| courses[*i].is_active)
        .collect();
    let mut enrollments = Vec::with_capacity(students.len() * COURSES_PER_STUDENT);
    let mut events = Vec::with_capacity(students.len() * COURSES_PER_STUDENT);
    for (n, student) in students.iter().enumerate() {
        let mut taken = HashSet::new();
        for _ in 0..COURSES_PER_STUDENT.min(active.len()) {
            let course = loop {
                let pick = active[rng.random_range(0..active.len())];
                if taken.insert(pick) {
                    break pick;
                }
            };
            let section = &mut sections[course * 3 + rng.random_range(0..3)];
            let at = base + Duration::seconds((n * COURSES_PER_STUDENT + taken.len()) as i64);
            let withdrawn = rng.random_bool(0.08);
            let full = section
                .capacity
                .is_some_and(|c| section.registered_count >= c);
            let status = if withdrawn {
                EnrollmentStatus::Withdrawn
            } else if full {
                section.waitlist_count += 1;
                section.waitlist_seq += 1;
                EnrollmentStatus::Waitlisted
            } else {
                section.registered_count += 1;
                EnrollmentStatus::Registered
            };
            let row = enrollment::Model {
                id: ids.next(),
                user_id: student.id,
                course_id: section.course_id,
                section_id: section.id,
                status,
                visibility: n % 5 != 0,
                enrolled_at: at,
                enrolled_by: None,
                prerequisite_check_passed: true,
                prerequisite_check_at: Some(at),
                seat_reserved_at: status.holds_seat().then_some(at),
                waitlist_ticket: (status == EnrollmentStatus::Waitlisted)
                    .then_some(section.waitlist_seq),
                completed_at: None,
                completed_by: None,
                completion_evidence: None,
                cancelled_at: None,
                withdrawn_at: withdrawn.then_some(at),
                reason: None,
                notes: None,
                skip_reason: None,
                notes_updated_at: None,
                notes_updated_by: None,
                skipped_at: None,
                offer_expires_at: None,
                offer_remind_at: None,
                record: None,
                lottery_draw_at: None,
                lottery_rank: None,
                created_at: at,
                updated_at: at,
            };
            events.push(enrollment_event::ActiveModel {
                enrollment_id: sea_orm::Set(row.id),
                from_status: sea_orm::Set(None),
                to_status: sea_orm::Set(status),
                actor_id: sea_orm::Set(Some(student.id)),
                reason: sea_orm::Set(None),
                details: sea_orm::Set(None),
                at: sea_orm::Set(at),
                ..Default::default()
            });
            enrollments.push(row);
        }
    }
    let total = enrollments.len();
    let rows = &(
        organizations,
        teachers,
        students,
        courses,
        sections,
        enrollments,
        events,
    );
    store
        .write(|tx| {
            Box::pin(async move {
                let (organizations, teachers, students, courses, sections, enrollments, events) =
                    rows;
                insert_all::<organization::Entity>(tx, organizations).await?;
                insert_all::<user::Entity>(tx, teachers).await?;
                insert_all::<user::Entity>(tx, students).await?;
                insert_all::<course::Entity>(tx, courses).await?;
                insert_all::<section::Entity>(tx, sections).await?;
                insert_all::<enrollment::Entity>(tx, enrollments).await?;
                for chunk in events.chunks(1000) {
                    enrollment_event::Entity::insert_many(chunk.iter().cloned())
                        .exec(tx)
                        .await?;
                }
                Ok(())
            })
        })
        .await?;
    Ok(total)
}
