// The launcher with real processes: every rank gets torchrun's environment and a prefix on its lines;
// when one rank fails the others are stopped within the grace period and the failed rank is named.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { launch } from '../../src/dist/launch';
import { runCli } from '../helpers/cli';
import { tempDir } from '../helpers/temp_dir';

function collect(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  return { stream, text: () => Buffer.concat(chunks).toString('utf8') };
}

const node = (script: string) => [process.execPath, '-e', script];

test('each rank gets RANK, LOCAL_RANK, WORLD_SIZE, ... and its output is prefixed with its rank', async () => {
  const out = collect();
  const r = await launch({
    argv: node(
      'const e = process.env; console.log([e.RANK, e.LOCAL_RANK, e.WORLD_SIZE, e.LOCAL_WORLD_SIZE, e.MASTER_ADDR, e.MASTER_PORT].join(" "))',
    ),
    nprocPerNode: 2,
    nnodes: 2,
    nodeRank: 1,
    masterPort: 12345,
    stdout: out.stream,
    stderr: new PassThrough(),
  });
  assert.equal(r.exitCode, 0);
  assert.deepEqual(out.text().trim().split('\n').sort(), [
    '[rank 2] 2 0 4 2 127.0.0.1 12345',
    '[rank 3] 3 1 4 2 127.0.0.1 12345',
  ]);
});

test('a rank that fails stops the others (SIGTERM, then SIGKILL after the grace) and is named', async () => {
  const t0 = Date.now();
  // Rank 0 ignores SIGTERM and would wait a minute, so only SIGKILL ends it; rank 1 fails once rank 0
  // has its handler (a file says so): failing at once raced rank 0's start-up, which SIGTERM then ended.
  const ready = path.join(tempDir('launch'), 'rank0-ready');
  const r = await launch({
    argv: node(
      `const fs = require("fs"); const ready = ${JSON.stringify(ready)};` +
        'if (process.env.RANK === "1") setInterval(() => fs.existsSync(ready) && process.exit(7), 10);' +
        'else { process.on("SIGTERM", () => {}); fs.writeFileSync(ready, ""); setTimeout(() => {}, 60000); }',
    ),
    nprocPerNode: 2,
    graceMs: 500,
    stdout: new PassThrough(),
    stderr: new PassThrough(),
  });
  const seconds = (Date.now() - t0) / 1000;
  assert.equal(r.exitCode, 1);
  assert.deepEqual(r.failed, { rank: 1, code: 7, signal: null });
  assert.equal(r.exits[0].signal, 'SIGKILL');
  assert.ok(seconds < 20, `stopped within the grace, not after the minute (${seconds} s)`);
});

test('a rank killed by SIGKILL is reported as killed', async () => {
  const r = await launch({
    argv: node('if (process.env.RANK === "0") process.kill(process.pid, "SIGKILL"); else setTimeout(() => {}, 60000)'),
    nprocPerNode: 2,
    graceMs: 200,
    stdout: new PassThrough(),
    stderr: new PassThrough(),
  });
  assert.deepEqual(r.failed, { rank: 0, code: null, signal: 'SIGKILL' });
});

test('medgr2 launch: ranks of a medgr2 command; a failing command exits non-zero naming the rank', () => {
  const ok = runCli(['launch', '--nproc-per-node', '2', '--master-port', '23456', 'info', '--dist']);
  assert.equal(ok.status, 0, ok.stderr);
  const lines = ok.stdout.trim().split('\n').sort();
  assert.equal(lines.length, 2);
  for (const [i, line] of lines.entries()) {
    const m = /^\[rank (\d)\] (.*)$/.exec(line);
    assert.ok(m, line);
    assert.equal(Number(m[1]), i);
    const env = JSON.parse(m[2]);
    assert.deepEqual([env.rank, env.worldSize, env.masterPort], [i, 2, 23456]);
  }
  const bad = runCli(['launch', '--nproc-per-node', '2', 'inspect', '/no/such/file.rec']);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /\[rank \d\] medgr2: /);
  assert.match(bad.stderr, /medgr2: rank \d exited with code 1; the other ranks were stopped/);
});
