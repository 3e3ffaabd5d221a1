//! `schema.graphql` is the exported SDL; it must match what the code builds.

#[test]
fn schema_graphql_matches_the_code() {
    let sdl = roster::graphql::build_schema().sdl();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");
    let committed = std::fs::read_to_string(path).expect("schema.graphql exists");
    assert!(
        committed == sdl,
        "schema.graphql is out of date: run `cargo run -- schema > schema.graphql`"
    );
}

/// The SDL without descriptions or whitespace, so signatures compare as written in DESIGN.md.
fn bare(sdl: &str) -> String {
    let mut out = String::new();
    for (i, part) in sdl.split("\"\"\"").enumerate() {
        if i % 2 == 0 {
            out.extend(part.chars().filter(|c| !c.is_whitespace()));
        }
    }
    out
}

#[test]
fn schema_has_the_fixed_names_of_the_contract() {
    let sdl = bare(&roster::graphql::build_schema().sdl());
    for name in [
        "type Query",
        "type Mutation",
        "courses(first: Int = 20, after: String, filter: CourseFilter): CourseConnection!",
        "course(id: UUID!): Course",
        "section(id: UUID!): Section",
        "myEnrollments(status: [EnrollmentStatus!]): [Enrollment!]!",
        "myCertifications: [Certification!]!",
        "me: User",
        "createCourse(input: CreateCourseInput!): Course!",
        "updateCourse(id: UUID!, input: UpdateCourseInput!): Course!",
        "createSection(input: CreateSectionInput!): Section!",
        "updateSection(id: UUID!, input: UpdateSectionInput!): Section!",
        "viewerEnrollment: Enrollment",
        "totalCount: Int!",
        "seatsAvailable: Int",
        "enum EnrollmentStatus",
        "enum Role",
        "enum Weekday",
    ] {
        assert!(sdl.contains(&bare(name)), "the SDL lacks `{name}`");
    }
}
