// `medgr2 cycle` without --out never collides with an earlier run.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { freshRunFolder } from '../../src/cycle/paths';
import { tempDir } from '../helpers/temp_dir';

test('the default run folder moves past folders that hold earlier runs', () => {
  const dir = tempDir('fresh');
  try {
    const base = path.join(dir, 'medgr2-cycle');
    assert.equal(freshRunFolder(base), base);
    fs.mkdirSync(path.join(base, 'manifests'), { recursive: true });
    assert.equal(freshRunFolder(base), `${base}-2`);
    fs.mkdirSync(path.join(`${base}-2`, 'manifests'), { recursive: true });
    fs.mkdirSync(`${base}-3`); // an empty folder is not a run: it may be used
    assert.equal(freshRunFolder(base), `${base}-3`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
