-- Fixtures for the replay of Roster's enroll transaction (enroll.sql), in a database that
-- `roster migrate` made (enroll-bench's): fresh students, numbered, and a function that makes a
-- course with 1,000 sections of ample capacity, like enroll-bench's, numbered too. Each figure
-- gets a new course, as each of enroll-bench's figures does; the students are used once each,
-- in number order, so none holds a seat or an enrollment in the course already.
CREATE TABLE replay_students (n bigint PRIMARY KEY, id uuid NOT NULL);
CREATE SEQUENCE replay_next_student;
CREATE TABLE replay_sections (n int PRIMARY KEY, id uuid NOT NULL, course uuid NOT NULL);

WITH org AS (
  INSERT INTO organizations (id, name, created_at)
  VALUES (gen_random_uuid(), 'Replay ' || gen_random_uuid(), now())
  RETURNING id
), teacher AS (
  INSERT INTO users (id, email, name, role, organization_id, created_at, updated_at)
  SELECT gen_random_uuid(), gen_random_uuid() || '@replay.roster.dev', 'Replay teacher',
         'TEACHER', org.id, now(), now() FROM org
  RETURNING id, organization_id
), students AS (
  INSERT INTO users (id, email, name, role, organization_id, created_at, updated_at)
  SELECT gen_random_uuid(), gen_random_uuid() || '@replay.roster.dev', 'Replay student',
         'STUDENT', org.id, now(), now() FROM org, generate_series(1, 400000)
  RETURNING id
)
INSERT INTO replay_students SELECT row_number() OVER (), id FROM students;

CREATE FUNCTION replay_course() RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE
  new_course uuid := gen_random_uuid();
BEGIN
  INSERT INTO courses (id, organization_id, teacher_id, name, is_active, created_at, updated_at)
  SELECT new_course, organization_id, id, 'Replay course', true, now(), now()
  FROM users WHERE email LIKE '%@replay.roster.dev' AND role = 'TEACHER' LIMIT 1;
  TRUNCATE replay_sections;
  INSERT INTO replay_sections SELECT n, gen_random_uuid(), new_course FROM generate_series(1, 1000) n;
  INSERT INTO sections (id, course_id, name, schedule, weekdays, capacity, created_at, updated_at)
  SELECT id, course, 'Section ' || n, '[]', 0, 1000000, now(), now() FROM replay_sections;
  RETURN new_course;
END $$;
