// `medgr2 data synth` and `medgr2 data preview` as a user runs them (built CLI, child process).
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { runCli } from '../helpers/cli';
import { greyImage, SYNTAX, writeDicom } from '../helpers/dicom';
import { tempDir } from '../helpers/temp_dir';

const tmp = tempDir('datacli');

test('data synth writes a world and prints a summary; progress goes to stderr', () => {
  const out = path.join(tmp, 'world');
  const r = runCli([
    'data',
    'synth',
    '--out',
    out,
    '--count',
    '24',
    '--seed',
    '5',
    '--unlabelled',
    '8',
    '--modalities',
    'CT,OCT',
  ]);
  assert.equal(r.status, 0, r.stderr);
  const summary = JSON.parse(r.stdout);
  assert.equal(summary.images, 24);
  assert.equal(summary.pool, 8);
  assert.match(r.stderr, /medsynth: 32\/32 images/);
  const records = fs
    .readFileSync(path.join(out, 'medsynth.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.equal(records.length, summary.records);
  assert.ok(records.every((x) => ['CT', 'OCT'].includes(x.modality_type)));
  assert.ok(fs.existsSync(path.join(out, records[0].image_path)));
  const bad = runCli(['data', 'synth', '--out', out, '--count', '2', '--seed', '1', '--modalities', 'PET']);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /--modalities: unknown PET/);
});

test('data preview: a 512×512 16-bit DICOM as the model sees it, with its grid', async () => {
  const pixels = Array.from({ length: 512 * 512 }, (_, i) => (i % 512) * 8);
  const file = path.join(tmp, 'scan.dcm');
  fs.writeFileSync(
    file,
    writeDicom({ syntax: SYNTAX.explicitLE, elements: greyImage({ rows: 512, cols: 512, bits: 16, pixels }) }),
  );
  const out = path.join(tmp, 'scan.png');
  const r = runCli(['data', 'preview', file, '--out', out]);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), {
    width: 504,
    height: 504,
    grid: [1, 36, 36],
    numPatches: 1296,
    imageTokens: 324,
  });
  const meta = await sharp(out).metadata();
  assert.equal(meta.width, 504);
  assert.equal(meta.height, 504);
  // Smaller budget: at most 112·112 pixels → 112×112, grid [1, 8, 8].
  const small = runCli(['data', 'preview', file, '--out', out, '--max-pixels', String(112 * 112)]);
  assert.deepEqual(JSON.parse(small.stdout), {
    width: 112,
    height: 112,
    grid: [1, 8, 8],
    numPatches: 64,
    imageTokens: 16,
  });
});

test('data preview: an unreadable image is one line naming the file, exit 1', () => {
  const file = path.join(tmp, 'cut.dcm');
  fs.writeFileSync(
    file,
    writeDicom({
      syntax: SYNTAX.explicitLE,
      elements: greyImage({ rows: 64, cols: 64, bits: 16, pixels: new Array(4096).fill(1) }),
    }).subarray(0, 2000),
  );
  const r = runCli(['data', 'preview', file, '--out', path.join(tmp, 'x.png')]);
  assert.equal(r.status, 1);
  assert.equal(r.stderr.trim().split('\n').length, 1);
  assert.ok(r.stderr.includes(file) && r.stderr.includes('truncated'), r.stderr);
});
