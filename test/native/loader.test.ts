// When the addon is missing or cannot load, one clear message names the fixing command.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { test } from 'node:test';
import { explainLoadFailure } from '../../src/native/loader';
import { runCli } from '../helpers/addon';
import { tempDir } from '../helpers/temp_dir';

test('a missing addon prints the command that builds it, and exits non-zero', () => {
  const empty = tempDir('noaddon');
  try {
    const r = runCli(['info'], { MEDGR2_ADDON_DIR: empty });
    assert.equal(r.status, 3);
    assert.match(r.stderr, /native addon is not built/);
    assert.match(r.stderr, /npm run build:native/);
    assert.doesNotMatch(r.stderr, /at .*\.js:\d+/, 'no stack trace');
  } finally {
    fs.rmSync(empty, { recursive: true, force: true });
  }
});

test('a libtorch that cannot be loaded is explained with the fix', () => {
  const msg = explainLoadFailure(
    new Error('libtorch_cpu.so: cannot open shared object file: No such file or directory'),
    '/repo',
  );
  assert.match(msg, /libtorch cannot be loaded \(libtorch_cpu\.so not found\)/);
  assert.match(msg, /apt-get install libtorch-dev/);
  assert.match(msg, /MEDGR2_LIBTORCH/);
  const abi = explainLoadFailure(new Error('undefined symbol: _ZN3c105Error'), '/repo');
  assert.match(abi, /npm run build:native/);
});
