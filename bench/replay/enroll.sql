-- Roster's enroll transaction on PostgreSQL, statement for statement as `roster serve` sends
-- it for a plain enrollment (a student without prerequisites, seats or waiters in the way:
-- every transaction here takes a seat), replayed by pgbench without the server, HTTP or
-- GraphQL: what PostgreSQL alone does for one `enroll`, in the schema Roster's migrations
-- made, the database's ceiling for Roster's enroll on this machine. `bench/run.sh enroll` runs
-- it beside the raw-SQL anchor (bench/anchor/spread.sql, hot.sql) with `-M prepared`, as
-- Roster prepares its statements, and `-D sections=1` (one hot section) or `-D sections=1000`.
--
-- The statements, in order (src/service/enroll.rs, docs/architecture.md "The write path"):
-- the viewer's lookup (src/auth.rs); `BEGIN`; the section with its course and the user locked
-- (`read`); the checks' rows (`eligibility::standing`); the seat, on the section as the checks
-- saw it (`seats::take_as_seen`); the enrollment holding it; the audit event with its change
-- row (`Tx::record`); `COMMIT`. After the commit the server wakes the other replicas with a
-- `NOTIFY` on a connection of its own, at most one in flight per replica, whatever the rate
-- of commits: not part of the transaction, and not replayed here. Values Roster binds as
-- parameters are pgbench variables or literals here. Two lookups that Roster does not make
-- come first, to pick a fresh student and a section from setup.sql's tables: the replay does
-- slightly more than Roster's database work, not less. When the statements in src/ change,
-- change them here.
\set s random(1, :sections)
SELECT id AS uid FROM replay_students WHERE n = (SELECT nextval('replay_next_student')) \gset
SELECT id AS sid, course AS cid FROM replay_sections WHERE n = :s \gset
SELECT "users"."id", "users"."email", "users"."name", "users"."picture", "users"."role", "users"."organization_id", "users"."created_at", "users"."updated_at" FROM "users" WHERE "users"."id" = :uid LIMIT 1;
BEGIN;
SELECT "sections"."id" AS "A_id", "sections"."course_id" AS "A_course_id", "sections"."name" AS "A_name", "sections"."schedule" AS "A_schedule", "sections"."weekdays" AS "A_weekdays", "sections"."capacity" AS "A_capacity", "sections"."registered_count" AS "A_registered_count", "sections"."pending_count" AS "A_pending_count", "sections"."waitlist_count" AS "A_waitlist_count", "sections"."finished_count" AS "A_finished_count", "sections"."waitlist_seq" AS "A_waitlist_seq", "sections"."is_active" AS "A_is_active", "sections"."assistant_id" AS "A_assistant_id", "sections"."requires_approval" AS "A_requires_approval", "sections"."waitlist_enabled" AS "A_waitlist_enabled", "sections"."promotion_mode" AS "A_promotion_mode", "sections"."offer_hours" AS "A_offer_hours", "sections"."offered_count" AS "A_offered_count", "sections"."created_at" AS "A_created_at", "sections"."updated_at" AS "A_updated_at", "courses"."id" AS "B_id", "courses"."organization_id" AS "B_organization_id", "courses"."teacher_id" AS "B_teacher_id", "courses"."name" AS "B_name", "courses"."description" AS "B_description", "courses"."code" AS "B_code", "courses"."is_active" AS "B_is_active", "courses"."certificate_validity_months" AS "B_certificate_validity_months", "courses"."created_at" AS "B_created_at", "courses"."updated_at" AS "B_updated_at", "users"."id" AS "C_id", "users"."email" AS "C_email", "users"."name" AS "C_name", "users"."picture" AS "C_picture", "users"."role" AS "C_role", "users"."organization_id" AS "C_organization_id", "users"."created_at" AS "C_created_at", "users"."updated_at" AS "C_updated_at" FROM "sections" LEFT JOIN "courses" ON "sections"."course_id" = "courses"."id" INNER JOIN "users" ON "users"."id" = :uid WHERE "sections"."id" = :sid FOR UPDATE OF "users";
SELECT 1 AS kind, c.id AS id, c.name AS name, CAST(NULL AS TEXT) AS schedule FROM course_prerequisites p JOIN courses c ON c.id = p.prerequisite_id WHERE p.course_id = :cid AND NOT EXISTS (SELECT 1 FROM certifications x WHERE x.user_id = :uid AND x.course_id = p.prerequisite_id AND (x.expires_at IS NULL OR x.expires_at > now())) UNION ALL SELECT 2, e.id, CAST(NULL AS TEXT), CAST(NULL AS TEXT) FROM enrollments e WHERE e.user_id = :uid AND e.course_id = :cid AND e.status IN ('PENDING', 'REGISTERED', 'WAITLISTED', 'OFFERED');
UPDATE "sections" SET "registered_count" = "registered_count" + 1 WHERE "sections"."id" = :sid AND "sections"."is_active" = true AND "sections"."waitlist_count" = 0 AND ("sections"."capacity" IS NULL OR "sections"."registered_count" + "sections"."pending_count" + "sections"."offered_count" + "sections"."finished_count" < "sections"."capacity") AND "sections"."schedule" = '[]'::jsonb AND "sections"."requires_approval" = false;
INSERT INTO "enrollments" ("id", "user_id", "course_id", "section_id", "status", "visibility", "enrolled_at", "enrolled_by", "prerequisite_check_passed", "prerequisite_check_at", "seat_reserved_at", "waitlist_ticket", "completed_at", "completed_by", "completion_evidence", "cancelled_at", "withdrawn_at", "reason", "notes", "notes_updated_at", "notes_updated_by", "skip_reason", "skipped_at", "offer_expires_at", "offer_remind_at", "created_at", "updated_at") VALUES (gen_random_uuid(), :uid, :cid, :sid, 'REGISTERED', true, now(), NULL, true, now(), now(), NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, now(), now()) RETURNING * \gset e_
WITH ev AS (INSERT INTO "enrollment_events" ("enrollment_id", "from_status", "to_status", "actor_id", "reason", "details", "at") VALUES (:e_id, NULL, 'REGISTERED', :uid, NULL, NULL, now()) RETURNING "id") INSERT INTO changes (notice) SELECT '{"sections":["' || :sid || '"],"course_id":"' || :cid || '","event":{"id":' || ev.id || ',"enrollment_id":"' || :e_id || '","user_id":"' || :uid || '","from": null,"to":"REGISTERED"}}' FROM ev;
COMMIT;
