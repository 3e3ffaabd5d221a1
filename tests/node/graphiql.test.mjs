// GraphiQL in a real browser: Debian's Chromium, driven by playwright-core, opens Roster's own
// GraphiQL (no CDN), runs a discovery query with a token in the headers pane, and runs a
// subscription that receives a seat update when this test makes a mutation.
//
// CHROMIUM names the browser (default /usr/bin/chromium, which .ci/run installs).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { startRoster } from './roster.mjs';

let roster;
let browser;

before(async () => {
  roster = await startRoster({ demoData: 'always' });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    // No sandbox (root in CI); no background traffic, which a machine without internet refuses.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  roster?.stop();
});

async function gql(token, query, variables = {}) {
  const response = await fetch(`${roster.base}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  assert.equal(body.errors, undefined, JSON.stringify(body.errors));
  return body.data;
}

/** Sets the text of the shown CodeMirror editor inside `selector` (GraphiQL keeps the
 * editors of the other tabs with a `hidden` class). */
async function setEditor(page, selector, text) {
  const shown = (sel) =>
    [...document.querySelectorAll(`${sel} .CodeMirror`)].filter((e) => !e.closest('.graphiql-editor.hidden'));
  await page.waitForFunction((sel) => shown(sel).length > 0, selector).catch(() => {});
  await page.evaluate(
    ([sel, value]) => {
      const editors = [...document.querySelectorAll(`${sel} .CodeMirror`)].filter(
        (e) => !e.closest('.graphiql-editor.hidden'),
      );
      editors[0].CodeMirror.setValue(value);
    },
    [selector, text],
  );
  // GraphiQL re-parses the document a moment after a change; it decides from that parse
  // whether an operation is a subscription (WebSocket) or not (HTTP).
  await page.waitForTimeout(600);
}

const responseText = (page) =>
  page.evaluate(() => document.querySelector('.graphiql-response .CodeMirror')?.CodeMirror.getValue() ?? '');

async function waitForResponse(page, predicate, what) {
  const deadline = Date.now() + 15000;
  let text = '';
  while (Date.now() < deadline) {
    text = await responseText(page);
    if (predicate(text)) return text;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}; the response pane shows: ${text}`);
}

test('GraphiQL runs a query with a token from the headers pane, and a live subscription', async () => {
  const token = roster.cli('token', '--email', 'student1@demo.roster.dev');
  const page = await browser.newPage();
  const offsite = [];
  page.on('request', (request) => {
    if (!request.url().startsWith(roster.base) && !request.url().startsWith('data:')) offsite.push(request.url());
  });
  await page.goto(`${roster.base}/graphql`, { waitUntil: 'networkidle' });
  await page.waitForSelector('.graphiql-container');

  // The token goes into the headers pane, as a person would put it there.
  await page.getByRole('button', { name: 'Headers' }).click();
  await setEditor(page, '.graphiql-editor-tool', JSON.stringify({ Authorization: `Bearer ${token}` }));
  await setEditor(page, '.graphiql-query-editor', '{ me { email } courses(first: 3) { totalCount edges { node { name } } } }');
  await page.locator('.graphiql-execute-button').click();
  const answer = JSON.parse(await waitForResponse(page, (t) => t.includes('totalCount'), 'the discovery answer'));
  assert.equal(answer.data.me.email, 'student1@demo.roster.dev', 'the headers pane carried the token');
  assert.ok(answer.data.courses.totalCount > 0);
  assert.equal(answer.data.courses.edges.length, 3);

  // A section with a free seat, and a fresh student to take it.
  const { courses } = await gql(null, `{ courses(first: 50, filter: { hasOpenSeats: true }) {
    edges { node { prerequisites { id } sections { id seatsAvailable registeredCount enrollmentOpensAt
      schedule { weekday } } } } } }`);
  // Open now: the demo's next-term sections open for enrollment in two weeks.
  const section = courses.edges
    .filter((e) => e.node.prerequisites.length === 0)
    .flatMap((e) => e.node.sections)
    .find((s) => s.seatsAvailable > 0
      && (s.enrollmentOpensAt === null || new Date(s.enrollmentOpensAt) <= new Date()));
  assert.ok(section, 'the demo data has an open section');
  roster.cli('user', 'add', '--email', 'browser@node.test', '--name', 'Browser', '--role', 'STUDENT');
  const newcomer = roster.cli('token', '--email', 'browser@node.test');

  await setEditor(page, '.graphiql-query-editor',
    `subscription { sectionSeats(sectionId: "${section.id}") { sectionId registeredCount } }`);
  await page.locator('.graphiql-execute-button').click();
  await waitForResponse(page, (t) => t.includes(`"registeredCount": ${section.registeredCount}`), 'the first seat update');
  await gql(newcomer, 'mutation($s: UUID!) { enroll(sectionId: $s) { status } }', { s: section.id });
  await waitForResponse(page, (t) => t.includes(`"registeredCount": ${section.registeredCount + 1}`), 'the seat update after enrolling');

  assert.deepEqual(offsite, [], 'GraphiQL loaded nothing from outside the server');
  await page.close();
});
