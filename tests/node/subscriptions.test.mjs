// Roster's subscriptions as a frontend sees them: the `graphql-ws` client from npm against a
// real `roster serve` on a fresh SQLite file. Run by `.ci/run` (`npm ci`, then `node --test`).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { startRoster } from './roster.mjs';

let roster;
let base;
const tokens = {};

const within = (ms, promise, what) =>
  Promise.race([
    promise,
    new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms)),
  ]);

async function gql(token, query, variables = {}) {
  const response = await fetch(`${base}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  assert.equal(body.errors, undefined, JSON.stringify(body.errors));
  return body.data;
}

before(async () => {
  roster = await startRoster();
  base = roster.base;
  for (const [who, role] of [['teacher', 'TEACHER'], ['first', 'STUDENT'], ['second', 'STUDENT']]) {
    roster.cli('user', 'add', '--email', `${who}@node.test`, '--name', who, '--role', role, '--org', 'Node');
    tokens[who] = roster.cli('token', '--email', `${who}@node.test`);
  }
});

after(() => roster?.stop());

const clientFor = (token) =>
  createClient({
    url: `${base.replace('http', 'ws')}/graphql/ws`,
    webSocketImpl: WebSocket,
    connectionParams: token ? { Authorization: `Bearer ${token}` } : {},
    retryAttempts: 0,
  });

test('graphql-ws receives seat counts and the promotion a withdrawal causes', async () => {
  const { createCourse } = await gql(tokens.teacher, 'mutation { createCourse(input: { name: "Node" }) { id } }');
  const { createSection } = await gql(
    tokens.teacher,
    'mutation($c: UUID!) { createSection(input: { courseId: $c, name: "A", capacity: 1 }) { id } }',
    { c: createCourse.id },
  );
  const section = createSection.id;
  const enroll = 'mutation($s: UUID!) { enroll(sectionId: $s) { id status } }';
  const first = (await gql(tokens.first, enroll, { s: section })).enroll;
  const second = (await gql(tokens.second, enroll, { s: section })).enroll;
  assert.equal(first.status, 'REGISTERED');
  assert.equal(second.status, 'WAITLISTED');

  const client = clientFor(tokens.second);
  try {
    const seats = client.iterate({
      query: 'subscription($s: UUID!) { sectionSeats(sectionId: $s) { sectionId registeredCount waitlistCount seatsAvailable isFull } }',
      variables: { s: section },
    });
    const promotions = client.iterate({
      query: 'subscription { waitlistPromotions { id status waitlistPosition section { id } } }',
    });
    const initial = await within(5000, seats.next(), 'the first seat update');
    assert.deepEqual(initial.value.data.sectionSeats, {
      sectionId: section, registeredCount: 1, waitlistCount: 1, seatsAvailable: 0, isFull: true,
    });
    const promoted = promotions.next();
    const changed = seats.next();
    await gql(tokens.first, 'mutation($e: UUID!) { withdraw(enrollmentId: $e) { status } }', { e: first.id });

    const promotion = await within(5000, promoted, 'the promotion');
    assert.deepEqual(promotion.value.data.waitlistPromotions, {
      id: second.id, status: 'REGISTERED', waitlistPosition: null, section: { id: section },
    });
    const update = await within(5000, changed, 'the seat update');
    assert.deepEqual(update.value.data.sectionSeats, {
      sectionId: section, registeredCount: 1, waitlistCount: 0, seatsAvailable: 0, isFull: true,
    });
    await seats.return();
    await promotions.return();
  } finally {
    await client.dispose();
  }
});

test('graphql-ws reports a refused token instead of a silent stream', async () => {
  const client = clientFor('not-a-token');
  try {
    const mine = client.iterate({ query: 'subscription { waitlistPromotions { id } }' });
    await assert.rejects(within(5000, mine.next(), 'the refusal'), (err) => {
      assert.equal(err.code, 1002, `close code ${err.code}`);
      assert.match(err.reason, /token/);
      return true;
    });
  } finally {
    await client.dispose();
  }
});

test('graphql-ws gets UNAUTHENTICATED for a personal subscription without a token', async () => {
  const client = clientFor(null);
  try {
    // A subscription that cannot start is the protocol's `error` message: the client's
    // iterator throws the GraphQL errors.
    const mine = client.iterate({ query: 'subscription { waitlistPromotions { id } }' });
    await assert.rejects(within(5000, mine.next(), 'the error'), (errors) => {
      assert.ok(Array.isArray(errors), `GraphQL errors, not ${errors}`);
      assert.equal(errors[0].extensions.code, 'UNAUTHENTICATED');
      return true;
    });
  } finally {
    await client.dispose();
  }
});

test('graphql-ws gets request errors as the protocol error message', async () => {
  const client = clientFor(null);
  try {
    const cases = [
      ['subscription {', 'GRAPHQL_VALIDATION_FAILED'],
      ['subscription { noSuchField }', 'GRAPHQL_VALIDATION_FAILED'],
      ['subscription($s: UUID!) { sectionSeats(sectionId: $s) { isFull } }', 'BAD_USER_INPUT'],
    ];
    for (const [query, code] of cases) {
      const operation = client.iterate({ query, variables: {} });
      await assert.rejects(within(5000, operation.next(), query), (errors) => {
        assert.ok(Array.isArray(errors), `GraphQL errors for ${query}, not ${errors}`);
        assert.equal(errors[0].extensions.code, code, query);
        return true;
      });
    }
  } finally {
    await client.dispose();
  }
});
