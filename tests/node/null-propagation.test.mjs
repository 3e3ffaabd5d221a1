// Null propagation as the GraphQL specification has it, checked against graphql-js, the
// reference implementation, on the same schema and documents. For each document, Roster's
// answer is replayed through graphql-js: a resolver that throws where Roster reported an
// error, returns Roster's values elsewhere, and stands in placeholders wherever Roster's answer
// has nothing (a key left out, or a parent nulled). graphql-js then decides which positions an
// error nulls; Roster's `data` must be exactly that, every key present, no non-null position
// null, and the error paths the same.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  buildSchema,
  graphql,
  isEnumType,
  isLeafType,
  isListType,
  isNonNullType,
  responsePathAsArray,
} from 'graphql';
import { startRoster } from './roster.mjs';

const schema = buildSchema(readFileSync(new URL('../../schema.graphql', import.meta.url), 'utf8'));

let roster;
const tokens = {};
let ids = {};

async function post(token, query, variables = {}) {
  const headers = { 'content-type': 'application/json', accept: 'application/graphql-response+json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(`${roster.base}/graphql`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ query, variables }),
  });
  return response.json();
}

/** What graphql-js answers for `query` given the errors and values of Roster's `actual`. */
async function reference(query, variables, actual) {
  const errorPaths = new Set((actual.errors ?? []).filter((e) => e.path).map((e) => e.path.join('.')));
  const below = (path) => {
    const prefix = `${path.join('.')}.`;
    return [...errorPaths].some((p) => p.startsWith(prefix));
  };
  const at = (path) => path.reduce((v, k) => (v == null ? undefined : v[k]), actual.data);
  // A stand-in of `type` at `path`: objects whose fields resolve on, lists as long as the
  // errors below need, leaves of the right type (seen only if propagation stops too early).
  const placeholder = (type, path) => {
    if (isNonNullType(type)) return placeholder(type.ofType, path);
    if (isListType(type)) {
      const prefix = `${path.join('.')}.`;
      let length = 0;
      for (const p of errorPaths) {
        if (p.startsWith(prefix)) length = Math.max(length, Number(p.slice(prefix.length).split('.')[0]) + 1);
      }
      return Array.from({ length }, (_, i) => placeholder(type.ofType, [...path, i]));
    }
    if (isEnumType(type)) return type.getValues()[0].value;
    if (isLeafType(type)) return { Int: 0, Float: 0, Boolean: false }[type.name] ?? 'x';
    return {};
  };
  // Roster's value at `path`, shaped for graphql-js to resolve the fields below it again.
  const shape = (value, type, path) => {
    if (isNonNullType(type)) return shape(value, type.ofType, path);
    if (value === undefined) return placeholder(type, path);
    if (value === null) return below(path) ? placeholder(type, path) : null;
    if (isListType(type)) return value.map((v, i) => shape(v, type.ofType, [...path, i]));
    if (isLeafType(type)) return value;
    return {};
  };
  const fieldResolver = (_source, _args, _context, info) => {
    const path = responsePathAsArray(info.path);
    if (errorPaths.has(path.join('.'))) throw new Error('as Roster answered');
    return shape(at(path), info.returnType, path);
  };
  return graphql({ schema, source: query, variableValues: variables, fieldResolver });
}

async function check(who, query, variables = {}) {
  const actual = await post(who && tokens[who], query, variables);
  assert.ok('data' in actual, `data is present once execution started: ${JSON.stringify(actual)}`);
  // graphql-js builds its objects without a prototype: compare them as JSON.
  const expected = JSON.parse(JSON.stringify(await reference(query, variables, actual)));
  assert.deepStrictEqual(actual.data, expected.data, `${who ?? 'anonymous'}: ${query}\n${JSON.stringify(actual)}`);
  const paths = (r) => (r.errors ?? []).map((e) => JSON.stringify(e.path)).sort();
  assert.deepStrictEqual(paths(actual), paths(expected), `error paths: ${query}`);
  assert.ok(actual.errors?.length > 0, `the document exercises an error: ${query}`);
  return actual;
}

before(async () => {
  roster = await startRoster();
  for (const [who, role] of [['teacher', 'TEACHER'], ['student', 'STUDENT']]) {
    roster.cli('user', 'add', '--email', `${who}@nulls.test`, '--name', who, '--role', role, '--org', 'Nulls');
    tokens[who] = roster.cli('token', '--email', `${who}@nulls.test`);
  }
  const made = await post(
    tokens.teacher,
    `mutation { createCourse(input: { name: "Propagation" }) { id } }`,
  );
  ids.course = made.data.createCourse.id;
  const section = await post(
    tokens.teacher,
    `mutation($c: UUID!) { createSection(input: { courseId: $c, name: "A", capacity: 3 }) { id } }`,
    { c: ids.course },
  );
  ids.section = section.data.createSection.id;
  const enrolled = await post(tokens.student, `mutation($s: UUID!) { enroll(sectionId: $s) { id } }`, {
    s: ids.section,
  });
  assert.equal(enrolled.errors, undefined, JSON.stringify(enrolled));
});

after(() => roster?.stop());

test('an error in a non-null root field nulls data, every other key present', async () => {
  const answer = await check(null, '{ me { id } myEnrollments { id } }');
  assert.equal(answer.data, null);
});

test('an error in a nullable root field nulls that field alone', async () => {
  let answer = await check(null, '{ courses(first: 1) { totalCount } team(name: "x") { id } }');
  assert.equal(answer.data.team, null);
  assert.equal(typeof answer.data.courses.totalCount, 'number');
  answer = await check(null, '{ courses(first: 1) { totalCount } user(id: "00000000-0000-0000-0000-000000000000") { id } }');
  assert.equal(answer.data.user, null);
  assert.notEqual(answer.data.courses, null);
});

test('an error in a non-null list nulls its nullable parent, siblings kept', async () => {
  const answer = await check('student', '{ myEnrollments { id status section { id name waitlist { id } } } }');
  assert.equal(answer.data.myEnrollments[0].section, null);
  assert.equal(answer.data.myEnrollments[0].status, 'REGISTERED');
});

test('errors deep in a connection null the nearest nullable ancestor of each', async () => {
  await check(null, '{ courses(first: 5) { totalCount edges { node { name sections { name pendingApprovals { id } } } } } }');
});

test('errors beside fields that succeed, under aliases', async () => {
  await check(
    'student',
    `query($c: UUID!) { a: course(id: $c) { name pendingApprovals { id } } b: course(id: $c) { name }
      me { name } mine: myEnrollments { notes course { name } } }`,
    { c: ids.course },
  );
});
