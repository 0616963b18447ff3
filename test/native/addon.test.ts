// The addon loads, reports what it runs on, and the CLI exposes it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { addon, runCli } from '../helpers/addon';
import * as medgr2 from '../../src/index';

test('the addon loads and reports libtorch', () => {
  const i = addon.info();
  assert.match(i.torchVersion, /^\d+\.\d+/);
  assert.equal(typeof i.cudaAvailable, 'boolean');
  assert.ok(i.threads.intraOp >= 1);
  assert.equal(i.napiVersion, 8);
});

test('require("medgr2") returns the library', () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const lib = require('../../..') as typeof medgr2;
  assert.equal(typeof lib.info, 'function');
  assert.equal(typeof lib.tensor, 'function');
  assert.equal(lib.version, medgr2.version);
  const t = new lib.Tensor(new Float32Array([1, 2]));
  assert.ok(t instanceof lib.Tensor);
});

test('medgr2 info --json reports the libtorch version', () => {
  const r = runCli(['info', '--json']);
  assert.equal(r.status, 0, r.stderr);
  const info = JSON.parse(r.stdout) as medgr2.Info;
  assert.equal(info.torchVersion, addon.info().torchVersion);
  assert.equal(info.version, medgr2.version);
  assert.ok(Array.isArray(info.cudaDevices));
  assert.equal(typeof info.cudaKernelsCompiled, 'boolean');
  assert.equal(typeof info.nvtxCompiled, 'boolean');
});

test('medgr2 info prints a readable table; --version and --help work', () => {
  const r = runCli(['info']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /libtorch\s+\d+\.\d+/);
  assert.match(r.stdout, /CUDA available\s+(yes|no)/);
  const v = runCli(['--version']);
  assert.equal(v.stdout.trim(), medgr2.version);
  const h = runCli(['--help']);
  assert.equal(h.status, 0);
  assert.match(h.stdout, /info/);
});

test('an unknown command fails with a non-zero exit', () => {
  const r = runCli(['no-such-command']);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /unknown command/);
});
