// Starts a real `roster serve` on a fresh SQLite file for the client tests.
//
// ROSTER_BIN names the binary (default: target/debug/roster, built by `cargo test`).

import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const binary = process.env.ROSTER_BIN ?? new URL('../../target/debug/roster', import.meta.url).pathname;

const freePort = () =>
  new Promise((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });

/**
 * A server on its own database, with `env` added to its environment. `cli(...args)` runs other `roster` commands on that database
 * and returns their output; `stop()` ends the server and deletes the database.
 */
export async function startRoster({ demoData = 'never', env: extra = {} } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'roster-node-'));
  const env = {
    ...process.env,
    ROSTER_DATABASE_URL: `sqlite://${join(dir, 'roster.db')}`,
    ROSTER_JWT_SECRET: 'node-client-test-secret-node-client-test',
    ROSTER_DEMO_DATA: demoData,
    ROSTER_LOG: 'warn',
    ...extra,
  };
  const cli = (...args) => execFileSync(binary, args, { env, encoding: 'utf8' }).trim();
  // Migrate (and seed) before serving, so the server starts at once.
  cli('migrate');
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const server = spawn(binary, ['serve'], { env: { ...env, ROSTER_LISTEN: `127.0.0.1:${port}` }, stdio: 'ignore' });
  const stop = () => {
    server.kill();
    rmSync(dir, { recursive: true, force: true });
  };
  for (let i = 0; i < 300; i++) {
    try {
      if ((await fetch(`${base}/healthz`)).ok) return { base, cli, stop };
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  stop();
  throw new Error('roster serve did not start');
}
