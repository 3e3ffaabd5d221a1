// Argument values as the GraphQL specification's CoerceArgumentValues has them, with graphql-js
// on the same schema as the reference: an explicit `null` (a literal, or a variable sent as
// null) reaches the resolver as null, and only an argument or variable left out takes the
// argument's default. Roster's resolvers cannot tell null from left out, so Roster refuses the
// null with BAD_USER_INPUT rather than quietly serving the default.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { buildSchema, graphql } from 'graphql';
import { startRoster } from './roster.mjs';

const schema = buildSchema(readFileSync(new URL('../../schema.graphql', import.meta.url), 'utf8'));
const query = 'query($v: Int) { courses(first: $v) { totalCount } }';

let roster;
before(async () => {
  roster = await startRoster();
});
after(() => roster?.stop());

/** The `first` graphql-js hands the `courses` resolver for `variables`. */
async function firstSeenByGraphqlJs(source, variables) {
  let seen = 'not called';
  const rootValue = {
    courses: (args) => {
      seen = args.first;
      return { totalCount: 0 };
    },
  };
  const result = await graphql({ schema, source, rootValue, variableValues: variables });
  assert.equal(result.errors, undefined, JSON.stringify(result.errors));
  return seen;
}

async function roster_(source, variables) {
  const response = await fetch(`${roster.base}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json' },
    body: JSON.stringify({ query: source, variables }),
  });
  return response.json();
}

test('an explicit null is null, and only a value left out takes the default', async () => {
  assert.equal(await firstSeenByGraphqlJs(query, {}), 20);
  assert.equal(await firstSeenByGraphqlJs('{ courses { totalCount } }', {}), 20);
  assert.equal(await firstSeenByGraphqlJs(query, { v: null }), null);
  assert.equal(await firstSeenByGraphqlJs('{ courses(first: null) { totalCount } }', {}), null);

  // Roster: left out, the default page; null, not the default.
  const leftOut = await roster_(query, {});
  assert.equal(leftOut.errors, undefined, JSON.stringify(leftOut));
  assert.equal(typeof leftOut.data.courses.totalCount, 'number');
  for (const [source, variables] of [
    [query, { v: null }],
    ['{ courses(first: null) { totalCount } }', {}],
  ]) {
    const refused = await roster_(source, variables);
    assert.equal(refused.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT', JSON.stringify(refused));
    assert.equal(refused.errors[0].extensions.field, 'first');
  }
});
