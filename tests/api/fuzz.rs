//! Random documents and variables thrown at the schema for a bounded time (a fixed seed, so a
//! failure reproduces): no panic, every error has a code, and none is `INTERNAL`.

use std::time::{Duration, Instant};

use crate::helpers::{TestApp, both_backends};
use rand::{Rng, SeedableRng, rngs::StdRng, seq::IndexedRandom};
use serde_json::{Value, json};
use uuid::Uuid;

const ITERATIONS: usize = 10_000;
const TIME_LIMIT: Duration = Duration::from_secs(20);

const ROOTS: &[&str] = &[
    "courses",
    "course",
    "section",
    "me",
    "user",
    "myEnrollments",
    "myCertifications",
    "team",
    "teamsByCoach",
    "createCourse",
    "updateCourse",
    "createSection",
    "updateSection",
    "enroll",
    "withdraw",
    "cancelEnrollment",
    "approveEnrollment",
    "completeEnrollment",
    "failEnrollment",
    "switchSection",
    "setEnrollmentVisibility",
    "createTeam",
    "joinTeam",
    "leaveTeam",
    "removeTeamMember",
    "updateTeam",
    "__schema",
    "__typename",
    "nope",
];
const ARGS: &[&str] = &[
    "id",
    "first",
    "after",
    "filter",
    "input",
    "sectionId",
    "userId",
    "enrollmentId",
    "reason",
    "evidence",
    "toSectionId",
    "visibility",
    "name",
    "passKey",
    "teamId",
    "coachId",
    "status",
    "overrideCapacity",
    "overrideScheduleConflict",
    "bogus",
];
const FIELDS: &[&str] = &[
    "id",
    "name",
    "code",
    "description",
    "totalCount",
    "edges",
    "node",
    "pageInfo",
    "endCursor",
    "hasNextPage",
    "teacher",
    "sections",
    "capacity",
    "registeredCount",
    "waitlistCount",
    "seatsAvailable",
    "schedule",
    "weekday",
    "start",
    "end",
    "status",
    "waitlistPosition",
    "history",
    "from",
    "to",
    "certification",
    "expiresAt",
    "user",
    "email",
    "course",
    "section",
    "notes",
    "members",
    "memberCount",
    "memberEnrollments",
    "classmates",
    "enrollments",
    "teams",
    "coach",
    "prerequisites",
    "viewerEnrollment",
    "__typename",
    "missing",
];
const INPUT_KEYS: &[&str] = &[
    "name",
    "code",
    "description",
    "capacity",
    "courseId",
    "schedule",
    "weekday",
    "start",
    "end",
    "room",
    "isActive",
    "requiresApproval",
    "waitlistEnabled",
    "prerequisiteIds",
    "certificateValidityMonths",
    "teacherId",
    "organizationId",
    "search",
    "hasOpenSeats",
    "x",
];

/// Operations of the right shape, whose `%KIND` holes get random values (mostly of the kind).
const TEMPLATES: &[&str] = &[
    "{ courses(first: %INT, after: %STR, filter: { search: %STR, hasOpenSeats: %BOOL, weekday: %DAY }) { totalCount edges { cursor node { id name sections { id seatsAvailable waitlistCount } } } } }",
    "{ course(id: %UUID) { id name prerequisites { id } sections { id classmates { id } } viewerEnrollment { status } } }",
    "{ section(id: %UUID) { id capacity schedule { weekday start end } course { name } } }",
    "{ user(id: %UUID) { name email enrollments(status: [%STATUS]) { id status } teams { name } } }",
    "{ me { name } myEnrollments(status: [%STATUS]) { id status waitlistPosition history { from to } } myCertifications { id } }",
    "{ team(name: %STR) { name memberCount members { id } memberEnrollments { id } } teamsByCoach(coachId: %UUID) { id } }",
    "mutation { enroll(sectionId: %UUID, userId: %UUID, visibility: %BOOL, overrideCapacity: %BOOL) { id status waitlistPosition } }",
    "mutation { withdraw(enrollmentId: %UUID, reason: %STR) { id status } }",
    "mutation { cancelEnrollment(enrollmentId: %UUID, reason: %STR) { status } }",
    "mutation { approveEnrollment(enrollmentId: %UUID) { status } }",
    "mutation { completeEnrollment(enrollmentId: %UUID, evidence: %ANY) { status certification { id } } }",
    "mutation { failEnrollment(enrollmentId: %UUID, reason: %STR) { status } }",
    "mutation { switchSection(enrollmentId: %UUID, toSectionId: %UUID) { status } }",
    "mutation { setEnrollmentVisibility(enrollmentId: %UUID, visibility: %BOOL) { visibility } }",
    "mutation { createCourse(input: { name: %STR, code: %STR, description: %STR, certificateValidityMonths: %INT, prerequisiteIds: [%UUID] }) { id } }",
    "mutation { updateCourse(id: %UUID, input: { name: %STR, isActive: %BOOL }) { id } }",
    "mutation { createSection(input: { courseId: %UUID, name: %STR, capacity: %INT, requiresApproval: %BOOL, schedule: [{ weekday: %DAY, start: %STR, end: %STR, room: %STR }] }) { id } }",
    "mutation { updateSection(id: %UUID, input: { capacity: %INT, waitlistEnabled: %BOOL, isActive: %BOOL }) { id registeredCount } }",
    "mutation { createTeam(name: %STR, passKey: %STR) { id } }",
    "mutation { joinTeam(name: %STR, passKey: %STR) { id } }",
    "mutation { leaveTeam(teamId: %UUID) }",
    "mutation { removeTeamMember(teamId: %UUID, userId: %UUID) { id } }",
    "mutation { updateTeam(teamId: %UUID, name: %STR, passKey: %STR) { id } }",
];

struct Fuzzer {
    rng: StdRng,
    ids: Vec<Uuid>,
}

impl Fuzzer {
    fn string(&mut self) -> String {
        let pieces = [
            "",
            "a",
            "Yoga",
            " ",
            "%",
            "_",
            "\\\\",
            "\\\"",
            "é",
            "🎓",
            "09:00",
            "MONDAY",
            "'; DROP TABLE courses; --",
        ];
        let n = self.rng.random_range(0..6);
        let mut s: String = (0..n)
            .map(|_| *pieces.choose(&mut self.rng).unwrap())
            .collect();
        if self.rng.random_bool(0.05) {
            s.push_str(&"x".repeat(self.rng.random_range(100..6000)));
        }
        s
    }

    fn uuid(&mut self) -> String {
        if self.rng.random_bool(0.5) && !self.ids.is_empty() {
            self.ids.choose(&mut self.rng).unwrap().to_string()
        } else if self.rng.random_bool(0.8) {
            Uuid::new_v4().to_string()
        } else {
            self.string()
        }
    }

    fn literal(&mut self, depth: usize) -> String {
        match self.rng.random_range(0..10) {
            0 => self.rng.random_range(-5..200).to_string(),
            1 => [
                "2147483648",
                "-1",
                "0",
                "1e400",
                "3.5",
                "99999999999999999999",
            ]
            .choose(&mut self.rng)
            .unwrap()
            .to_string(),
            2 => format!("\"{}\"", self.string()),
            3 => format!("\"{}\"", self.uuid()),
            4 => [
                "true",
                "false",
                "null",
                "MONDAY",
                "REGISTERED",
                "WAITLISTED",
            ]
            .choose(&mut self.rng)
            .unwrap()
            .to_string(),
            5 | 6 if depth < 3 => {
                let n = self.rng.random_range(0..4);
                let items: Vec<String> = (0..n).map(|_| self.literal(depth + 1)).collect();
                format!("[{}]", items.join(", "))
            }
            7 | 8 if depth < 3 => {
                let n = self.rng.random_range(0..5);
                let fields: Vec<String> = (0..n)
                    .map(|_| {
                        format!(
                            "{}: {}",
                            INPUT_KEYS.choose(&mut self.rng).unwrap(),
                            self.literal(depth + 1)
                        )
                    })
                    .collect();
                format!("{{ {} }}", fields.join(", "))
            }
            _ => "$v".into(),
        }
    }

    fn selection(&mut self, depth: usize) -> String {
        let n = self.rng.random_range(1..5);
        let fields: Vec<String> = (0..n)
            .map(|_| {
                let field = *FIELDS.choose(&mut self.rng).unwrap();
                if depth < 4 && self.rng.random_bool(0.4) {
                    format!("{field} {{ {} }}", self.selection(depth + 1))
                } else {
                    field.to_owned()
                }
            })
            .collect();
        fields.join(" ")
    }

    fn document(&mut self) -> String {
        let kind = [
            "",
            "query ",
            "mutation ",
            "subscription ",
            "query Q($v: String) ",
            "mutation M($v: UUID) ",
        ]
        .choose(&mut self.rng)
        .unwrap()
        .to_string();
        let roots = self.rng.random_range(1..3);
        let mut body = Vec::new();
        for _ in 0..roots {
            let root = *ROOTS.choose(&mut self.rng).unwrap();
            let args = self.rng.random_range(0..4);
            let args: Vec<String> = (0..args)
                .map(|_| {
                    format!(
                        "{}: {}",
                        ARGS.choose(&mut self.rng).unwrap(),
                        self.literal(0)
                    )
                })
                .collect();
            let args = if args.is_empty() {
                String::new()
            } else {
                format!("({})", args.join(", "))
            };
            let selection = if self.rng.random_bool(0.8) {
                format!(" {{ {} }}", self.selection(0))
            } else {
                String::new()
            };
            body.push(format!("{root}{args}{selection}"));
        }
        let mut document = format!("{kind}{{ {} }}", body.join(" "));
        if self.rng.random_bool(0.15) {
            // Break the syntax somewhere.
            let bytes: Vec<char> = document.chars().collect();
            let at = self.rng.random_range(0..bytes.len());
            let junk = ["{", "}", "(", ")", "\"", "$", "@", ":", "...", "#", "\u{0}"]
                .choose(&mut self.rng)
                .unwrap();
            document = bytes[..at].iter().collect::<String>()
                + junk
                + &bytes[at + 1..].iter().collect::<String>();
        }
        document
    }

    /// A template with its holes filled, mostly with values of the right kind.
    fn templated(&mut self) -> String {
        let mut document = TEMPLATES.choose(&mut self.rng).unwrap().to_string();
        while let Some(at) = document.find('%') {
            let end = document[at + 1..]
                .find(|c: char| !c.is_ascii_uppercase())
                .map_or(document.len(), |i| at + 1 + i);
            let kind = document[at + 1..end].to_owned();
            let value = if self.rng.random_bool(0.15) {
                self.literal(0)
            } else {
                match kind.as_str() {
                    "INT" => self.rng.random_range(-3..120).to_string(),
                    "STR" => format!("\"{}\"", self.string()),
                    "BOOL" => self.rng.random_bool(0.5).to_string(),
                    "UUID" => format!("\"{}\"", self.uuid()),
                    "DAY" => ["MONDAY", "FRIDAY", "SUNDAY"]
                        .choose(&mut self.rng)
                        .unwrap()
                        .to_string(),
                    "STATUS" => ["REGISTERED", "WAITLISTED", "PENDING"]
                        .choose(&mut self.rng)
                        .unwrap()
                        .to_string(),
                    _ => self.literal(0),
                }
            };
            document.replace_range(at..end, &value);
        }
        document
    }

    fn variables(&mut self) -> Value {
        match self.rng.random_range(0..4) {
            0 => json!({}),
            1 => json!({ "v": self.uuid() }),
            2 => json!({ "v": self.rng.random_range(-10..10) }),
            _ => json!({ "v": { "nested": [self.string(), null, 1.5] } }),
        }
    }
}

async fn random_documents_never_panic_or_leak_internal_errors(app: TestApp) {
    let campus = app.campus("Org").await;
    let (course, section) = app
        .course_with_section(&campus, "Fuzz", Some(3), "MONDAY")
        .await;
    let (student_id, student) = app.student(&campus).await;
    let enrolled = app.enroll(&student, section).await.expect("enrolled");
    let ids = vec![course, section, student_id, campus.teacher.id, enrolled.id];
    let tokens = [
        None,
        Some(student.clone()),
        Some(campus.teacher_token.clone()),
    ];
    let mut fuzzer = Fuzzer {
        rng: StdRng::seed_from_u64(0xF022),
        ids,
    };
    let started = Instant::now();
    let mut sent = 0;
    let mut codes = std::collections::BTreeMap::<String, usize>::new();
    while sent < ITERATIONS && started.elapsed() < TIME_LIMIT {
        let document = if fuzzer.rng.random_bool(0.6) {
            fuzzer.templated()
        } else {
            fuzzer.document()
        };
        let variables = fuzzer.variables();
        let token = tokens.choose(&mut fuzzer.rng).unwrap().clone();
        let response = app
            .gql(token.as_deref(), &document, variables.clone())
            .await;
        for error in response["errors"].as_array().into_iter().flatten() {
            let code = error["extensions"]["code"].as_str().unwrap_or_else(|| {
                panic!("an error without a code for {document} {variables}: {error}")
            });
            assert_ne!(
                code, "INTERNAL",
                "[{:?}] {document} {variables}: {error}",
                app.backend
            );
            *codes.entry(code.to_owned()).or_default() += 1;
        }
        sent += 1;
    }
    app.assert_section_consistent(section).await;
    assert!(sent >= 200, "too few documents in the time: {sent}");
    assert!(
        codes.len() >= 4,
        "the documents hit too few kinds of error: {codes:?}"
    );
    eprintln!(
        "[{:?}] {sent} random documents in {:.1}s; error codes {codes:?}",
        app.backend,
        started.elapsed().as_secs_f64()
    );
}

both_backends!(random_documents_never_panic_or_leak_internal_errors);
