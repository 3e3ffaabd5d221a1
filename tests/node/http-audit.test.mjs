// The GraphQL-over-HTTP audit of the `graphql-http` package against a live `roster serve`:
// every MUST and every SHOULD passes (README.md lists the MAYs Roster does not take).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { auditServer } from 'graphql-http';
import { startRoster } from './roster.mjs';

let roster;
before(async () => {
  roster = await startRoster({ demoData: 'always' });
});
after(() => roster?.stop());

test('graphql-http audit: every MUST and SHOULD passes', async () => {
  const results = await auditServer({ url: `${roster.base}/graphql` });
  assert.ok(results.length > 50, `only ${results.length} audits ran`);
  const failed = results.filter((r) => r.status === 'error' || r.status === 'warn');
  assert.deepEqual(
    failed.map((r) => `${r.status} ${r.id} ${r.name}: ${r.reason}`),
    [],
  );
  const mays = results.filter((r) => r.status === 'notice').map((r) => r.id).sort();
  assert.deepEqual(mays, ['3E3A', '8764'], 'the MAYs not taken are the ones README.md names');
});

test('the standard introspection query fits the default limits', async () => {
  const { getIntrospectionQuery } = await import('graphql');
  const query = getIntrospectionQuery({
    descriptions: true, inputValueDeprecation: true, specifiedByUrl: true, schemaDescription: true, directiveIsRepeatable: true,
  });
  const response = await fetch(`${roster.base}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query }),
  });
  const body = await response.json();
  assert.equal(body.errors, undefined, JSON.stringify(body.errors));
  assert.ok(body.data.__schema.types.some((t) => t.name === 'Course'));
});
