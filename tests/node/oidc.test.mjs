// Sign-in through an OpenID provider: a real one (the `oidc-provider` package, certified by the
// OpenID Foundation) on loopback issues ID tokens and JWT access tokens (RFC 9068) through the
// authorization code flow, and `roster serve` accepts them over HTTP and WebSocket, creates the
// user on first sign-in, follows a key rotation, and refuses what it must. Run by `.ci/run`.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import Provider from 'oidc-provider';
import { SignJWT, UnsecuredJWT, exportJWK, exportSPKI, generateKeyPair } from 'jose';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { startRoster } from './roster.mjs';

const CLIENT = 'roster-app';
const SECRET = 'roster-app-client-secret-for-tests';
const REDIRECT = 'http://127.0.0.1/callback';

let roster;
let issuer;
let http;
let port;
const keys = {};

async function privateJwk(alg, kid) {
  const pair = await generateKeyPair(alg, { extractable: true });
  const jwk = { ...(await exportJWK(pair.privateKey)), kid, alg, use: 'sig' };
  return { jwk, ...pair };
}

/** The provider on `port`, signing with `jwks` (the first key of each algorithm signs). */
function provider(jwks) {
  const oidc = new Provider(issuer, {
    clients: [
      {
        client_id: CLIENT,
        client_secret: SECRET,
        redirect_uris: [REDIRECT],
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_post',
      },
    ],
    jwks: { keys: jwks },
    pkce: { required: () => false },
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'picture'] },
    conformIdTokenClaims: false,
    findAccount: async (ctx, sub) => ({
      accountId: sub,
      claims: async () => ({
        sub,
        email: `${sub}@idp.test`,
        email_verified: true,
        name: `Ada ${sub}`,
        picture: `https://img.idp.test/${sub}.png`,
      }),
    }),
    features: {
      devInteractions: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => 'urn:roster:api',
        useGrantedResource: () => true,
        getResourceServerInfo: () => ({
          scope: 'openid email profile',
          audience: CLIENT,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'ES256' } },
        }),
      },
    },
  });
  oidc.proxy = false;
  return oidc;
}

async function listen(jwks) {
  http = createServer(provider(jwks).callback());
  await new Promise((resolve) => http.listen(port, '127.0.0.1', resolve));
}

async function restart(jwks) {
  await new Promise((resolve) => {
    http.close(resolve);
    http.closeAllConnections();
  });
  await listen(jwks);
}

/** The authorization code flow as a browser walks it; the provider's tokens for `login`. */
async function signIn(login) {
  const jar = new Map();
  const go = async (url, init = {}) => {
    const response = await fetch(url, {
      ...init,
      redirect: 'manual',
      headers: { ...(init.headers ?? {}), cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; ') },
    });
    for (const line of response.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const at = pair.indexOf('=');
      jar.set(pair.slice(0, at), pair.slice(at + 1));
    }
    const location = response.headers.get('location');
    return { response, location: location && new URL(location, issuer).href };
  };
  const form = (body) => ({
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(body).toString(),
  });
  const auth = new URL(`${issuer}/auth`);
  auth.search = new URLSearchParams({
    client_id: CLIENT,
    response_type: 'code',
    scope: 'openid email profile',
    redirect_uri: REDIRECT,
    nonce: 'n-0S6_WzA2Mj',
    state: 'state',
  }).toString();
  let { location } = await go(auth.href);
  for (let step = 0; step < 10 && !location.startsWith(REDIRECT); step++) {
    if (location.includes('/interaction/')) {
      const page = await go(location);
      assert.equal(page.response.status, 200);
      const html = await page.response.text();
      const prompt = html.includes('name="login"') ? 'login' : 'consent';
      ({ location } = await go(location, form(prompt === 'login' ? { prompt, login, password: 'x' } : { prompt })));
    } else {
      ({ location } = await go(location));
    }
  }
  const code = new URL(location).searchParams.get('code');
  assert.ok(code, `no code in ${location}`);
  const tokens = await (
    await fetch(`${issuer}/token`, form({
      grant_type: 'authorization_code',
      code,
      redirect_uri: REDIRECT,
      client_id: CLIENT,
      client_secret: SECRET,
    }))
  ).json();
  assert.ok(tokens.id_token && tokens.access_token, JSON.stringify(tokens));
  return tokens;
}

async function ask(token, query = '{ me { id email name picture role } }') {
  const response = await fetch(`${roster.base}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query }),
  });
  return response.json();
}

const header = (token) => JSON.parse(Buffer.from(token.split('.')[0], 'base64url').toString());

/** A token signed with one of the provider's keys, with `claims` over sensible defaults. */
function forge(key, claims = {}, protectedHeader = {}) {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ email: 'forged@idp.test', email_verified: true, ...claims })
    .setProtectedHeader({ alg: key.jwk.alg, kid: key.jwk.kid, ...protectedHeader })
    .setIssuer(claims.iss ?? issuer)
    .setAudience(claims.aud ?? CLIENT)
    .setSubject(claims.sub ?? 'forged')
    .setIssuedAt(now)
    .setExpirationTime(claims.exp ?? now + 300)
    .sign(key.privateKey);
}

before(async () => {
  const probe = createServer();
  await new Promise((resolve) => probe.listen(0, '127.0.0.1', resolve));
  port = probe.address().port;
  await new Promise((resolve) => probe.close(resolve));
  issuer = `http://127.0.0.1:${port}`;
  keys.rsa = await privateJwk('RS256', 'rsa-1');
  keys.ec = await privateJwk('ES256', 'ec-1');
  keys.next = await privateJwk('RS256', 'rsa-2');
  await listen([keys.rsa.jwk, keys.ec.jwk]);
  roster = await startRoster({
    env: {
      ROSTER_OIDC_ISSUER: issuer,
      ROSTER_OIDC_AUDIENCE: CLIENT,
      ROSTER_OIDC_ALLOW_HTTP: 'true',
      ROSTER_OIDC_ORGANIZATION: 'Provider campus',
      ROSTER_OIDC_ROLE_CLAIM: 'roles',
    },
  });
  roster.cli('user', 'add', '--email', 'existing@idp.test', '--name', 'Existing', '--role', 'TEACHER', '--org', 'Home');
});

after(async () => {
  roster?.stop();
  http?.closeAllConnections();
  await new Promise((resolve) => (http ? http.close(resolve) : resolve()));
});

test('an ID token and a JWT access token sign in, creating the user once', async () => {
  const tokens = await signIn('ada');
  assert.equal(header(tokens.id_token).alg, 'RS256');
  assert.equal(header(tokens.access_token).typ, 'at+jwt');
  const first = await ask(tokens.id_token);
  assert.equal(first.errors, undefined, JSON.stringify(first));
  assert.deepEqual(
    { ...first.data.me, id: undefined },
    { id: undefined, email: 'ada@idp.test', name: 'Ada ada', picture: 'https://img.idp.test/ada.png', role: 'STUDENT' },
  );
  // The access token (ES256, RFC 9068) finds the same user by issuer and subject.
  const again = await ask(tokens.access_token);
  assert.equal(again.errors, undefined, JSON.stringify(again));
  assert.equal(again.data.me.id, first.data.me.id);
  const later = await ask((await signIn('ada')).id_token);
  assert.equal(later.data.me.id, first.data.me.id, 'a second sign-in finds the same user');
  // Roster's own tokens keep working beside the provider's.
  const own = roster.cli('token', '--email', 'existing@idp.test');
  assert.equal((await ask(own)).data.me.role, 'TEACHER');
});

test('a verified e-mail links an existing user; a role claim counts on creation only', async () => {
  const linked = await ask(
    await forge(keys.rsa, { sub: 'existing-at-idp', email: 'existing@idp.test', roles: ['admin'] }),
  );
  assert.equal(linked.errors, undefined, JSON.stringify(linked));
  assert.equal(linked.data.me.email, 'existing@idp.test');
  assert.equal(linked.data.me.role, 'TEACHER', 'an existing user is never elevated');
  const created = await ask(await forge(keys.rsa, { sub: 'new-teacher', email: 'grace@idp.test', roles: ['teacher'] }));
  assert.equal(created.data.me.role, 'TEACHER', JSON.stringify(created));
  const again = await ask(await forge(keys.rsa, { sub: 'new-teacher', email: 'grace@idp.test', roles: ['admin'] }));
  assert.equal(again.data.me.role, 'TEACHER', 'not on a later sign-in either');
});

test('subscriptions accept provider tokens and close when the token expires', async () => {
  const short = await forge(keys.ec, { sub: 'short-lived', exp: Math.floor(Date.now() / 1000) + 3 });
  const closed = new Promise((resolve) => {
    const socket = new WebSocket(`${roster.base.replace('http', 'ws')}/graphql/ws`, 'graphql-transport-ws');
    socket.on('open', () =>
      socket.send(JSON.stringify({ type: 'connection_init', payload: { Authorization: `Bearer ${short}` } })),
    );
    const seen = [];
    socket.on('message', (data) => seen.push(JSON.parse(data.toString()).type));
    socket.on('close', (code, reason) => resolve({ code, reason: reason.toString(), seen }));
  });
  const outcome = await closed;
  assert.deepEqual(outcome.seen, ['connection_ack'], 'the token was accepted at connect');
  assert.equal(outcome.code, 4401);
  assert.match(outcome.reason, /expired/);

  // First sign-in with the ID token (an access token carries no e-mail to create the user by);
  // the socket then signs in with the access token.
  const tokens = await signIn('ws');
  assert.equal((await ask(tokens.id_token)).errors, undefined);
  const access = tokens.access_token;
  const client = createClient({
    url: `${roster.base.replace('http', 'ws')}/graphql/ws`,
    webSocketImpl: WebSocket,
    connectionParams: { Authorization: `Bearer ${access}` },
    retryAttempts: 0,
  });
  const me = await new Promise((resolve, reject) => {
    let data;
    client.subscribe(
      { query: '{ me { email } }' },
      { next: (result) => (data = result), error: reject, complete: () => resolve(data) },
    );
  });
  assert.deepEqual(me, { data: { me: { email: 'ws@idp.test' } } }, 'the socket acts as the provider user');
  await client.dispose();
});

test('a rotated key verifies after one refresh, and the old key until its tokens expire', async () => {
  const old = (await signIn('rotating')).id_token;
  assert.equal(header(old).kid, 'rsa-1');
  assert.equal((await ask(old)).errors, undefined);
  await restart([keys.next.jwk, keys.rsa.jwk, keys.ec.jwk]);
  // Past the refresh floor, so that the unknown key is fetched.
  await new Promise((resolve) => setTimeout(resolve, 5500));
  const fresh = (await signIn('rotating')).id_token;
  assert.equal(header(fresh).kid, 'rsa-2');
  const answer = await ask(fresh);
  assert.equal(answer.errors, undefined, JSON.stringify(answer));
  assert.equal((await ask(old)).errors, undefined, 'the old key is still published');
});

test('refused: wrong audience, issuer, expired, alg none, HS256 with the public key, unknown kid, unverified e-mail', async () => {
  const now = Math.floor(Date.now() / 1000);
  const pem = await exportSPKI(keys.rsa.publicKey);
  const cases = {
    audience: [await forge(keys.rsa, { aud: 'another-app' }), /wrong audience/],
    issuer: [await forge(keys.rsa, { iss: 'https://evil.example' }), /unknown issuer|invalid token/],
    expired: [await forge(keys.rsa, { exp: now - 600 }), /expired/],
    none: [new UnsecuredJWT({ sub: 'x', email: 'x@idp.test' }).setIssuer(issuer).setAudience(CLIENT).setExpirationTime(now + 300).encode(), /unsupported algorithm|invalid token/],
    confusion: [
      await new SignJWT({ email: 'existing@idp.test', email_verified: true })
        .setProtectedHeader({ alg: 'HS256', kid: 'rsa-1' })
        .setIssuer(issuer)
        .setAudience(CLIENT)
        .setSubject('confused')
        .setExpirationTime(now + 300)
        .sign(new TextEncoder().encode(pem)),
      /HS256 is not accepted/,
    ],
    kid: [await forge(keys.rsa, {}, { kid: 'never-published' }), /unknown key/],
    unverified: [await forge(keys.rsa, { sub: 'impostor', email: 'existing@idp.test', email_verified: false }), /not verified/],
  };
  for (const [name, [token, reason]] of Object.entries(cases)) {
    const answer = await ask(token);
    assert.equal(answer.data ?? null, null, name);
    assert.equal(answer.errors?.[0]?.extensions?.code, 'UNAUTHENTICATED', `${name}: ${JSON.stringify(answer)}`);
    assert.match(answer.errors[0].message, reason, name);
  }
  // Over a WebSocket the refusal closes the connection with a frame clients can read.
  const refused = await new Promise((resolve) => {
    const socket = new WebSocket(`${roster.base.replace('http', 'ws')}/graphql/ws`, 'graphql-transport-ws');
    socket.on('open', () =>
      socket.send(JSON.stringify({ type: 'connection_init', payload: { Authorization: `Bearer ${cases.unverified[0]}` } })),
    );
    socket.on('error', (error) => resolve({ error: error.message }));
    socket.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
  });
  assert.equal(refused.error, undefined, refused.error);
  assert.equal(refused.code, 1002);
  assert.match(refused.reason, /not verified/);
  // A first sign-in with an access token alone cannot create the user: it carries no e-mail.
  const lone = (await signIn('lonely')).access_token;
  assert.match((await ask(lone)).errors[0].message, /no e-mail/);
});

test('a provider out of reach: cached keys keep verifying, an unknown key is UNAVAILABLE', async () => {
  const token = await forge(keys.ec, { sub: 'steady', email: 'steady@idp.test' });
  assert.equal((await ask(token)).errors, undefined);
  http.closeAllConnections();
  await new Promise((resolve) => http.close(resolve));
  http = undefined;
  assert.equal((await ask(token)).errors, undefined, 'the cached key still verifies');
  // Past the refresh floor, an unknown key needs the provider, which does not answer.
  await new Promise((resolve) => setTimeout(resolve, 5500));
  const unknown = await ask(await forge(keys.ec, { sub: 'steady' }, { kid: 'ec-9' }));
  assert.equal(unknown.errors?.[0]?.extensions?.code, 'UNAVAILABLE', JSON.stringify(unknown));
});
