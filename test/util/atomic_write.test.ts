// Atomic writes: the target is the old content or the whole new one, and no temp file is left behind,
// also when writing fails half-way.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import {
  replaceDirAtomic,
  writeFileAtomic,
  writeFileAtomicSync,
  writeJsonAtomicSync,
  writeViaTempSync,
} from '../../src/util/atomic_write';
import { tempDir } from '../helpers/temp_dir';

const listing = (dir: string) => fs.readdirSync(dir).sort();

test('files: written, replaced, and a failed fill leaves the old content and no temp file', async () => {
  const dir = tempDir('atomic');
  const f = path.join(dir, 'sub', 'a.json');
  writeJsonAtomicSync(f, { a: 1 });
  assert.equal(fs.readFileSync(f, 'utf8'), '{\n  "a": 1\n}\n');
  await writeFileAtomic(f, 'new');
  assert.equal(fs.readFileSync(f, 'utf8'), 'new');
  assert.throws(
    () =>
      writeViaTempSync(f, (tmp) => {
        fs.writeFileSync(tmp, 'half');
        throw new Error('disk full');
      }),
    /disk full/,
  );
  assert.equal(fs.readFileSync(f, 'utf8'), 'new');
  assert.deepEqual(listing(path.dirname(f)), ['a.json']);
  writeFileAtomicSync(f, new Uint8Array([1, 2, 3]));
  assert.deepEqual([...fs.readFileSync(f)], [1, 2, 3]);
});

test('folders: put in place whole, an older one replaced whole, a failed fill changes nothing', async () => {
  const dir = tempDir('atomic-dir');
  const target = path.join(dir, 'model');
  await replaceDirAtomic(target, async (tmp) => {
    fs.mkdirSync(tmp);
    fs.writeFileSync(path.join(tmp, 'old.txt'), '1');
  });
  assert.deepEqual(listing(target), ['old.txt']);
  await replaceDirAtomic(target, async (tmp) => {
    fs.mkdirSync(tmp);
    fs.writeFileSync(path.join(tmp, 'new.txt'), '2');
  });
  assert.deepEqual(listing(target), ['new.txt'], 'no file of the older folder survives');
  await assert.rejects(
    replaceDirAtomic(target, async (tmp) => {
      fs.mkdirSync(tmp);
      fs.writeFileSync(path.join(tmp, 'partial.txt'), '3');
      throw new Error('killed');
    }),
    /killed/,
  );
  assert.deepEqual(listing(target), ['new.txt']);
  assert.deepEqual(listing(dir), ['model'], 'no temp folder left');
});
