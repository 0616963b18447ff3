// MedSynth: same seed → same bytes; every rendered finding is in its pixels (present, in its
// quadrant, of its grade's size; white cells counted by connected components); answers among the
// options and balanced across A-D; modality cues strong enough for a trivial classifier.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { captionFacts, captionFactsOf, captionText } from '../../src/data/medsynth/captions';
import { renderImage } from '../../src/data/medsynth/render';
import { Prng } from '../../src/util/prng';
import type { ImageTruth } from '../../src/data/medsynth/truth';
import type { OmniRecord } from '../../src/data/medsynth/questions';
import { GRADE_RADIUS, GRADES, MODALITIES, MODALITY_SPECS, NORMAL, TASKS } from '../../src/data/medsynth/vocab';
import { synthesize } from '../../src/data/medsynth/world';
import { tempDir } from '../helpers/temp_dir';

const tmp = tempDir('medsynth');
const readJsonl = <T>(file: string): T[] =>
  fs
    .readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as T);

function listFiles(dir: string): string[] {
  return (fs.readdirSync(dir, { recursive: true }) as string[])
    .filter((f) => fs.statSync(path.join(dir, f)).isFile())
    .sort();
}

const worldDir = path.join(tmp, 'w1');
const world = synthesize({ out: worldDir, count: 160, seed: 11, unlabelled: 16 });

test('same seed, same bytes; another seed, other images', async () => {
  await world;
  await synthesize({ out: path.join(tmp, 'w2'), count: 160, seed: 11, unlabelled: 16 });
  await synthesize({ out: path.join(tmp, 'w3'), count: 160, seed: 12, unlabelled: 16 });
  const files = listFiles(worldDir);
  assert.deepEqual(listFiles(path.join(tmp, 'w2')), files);
  assert.ok(
    files.includes('medsynth.jsonl') &&
      files.includes('truth.jsonl') &&
      files.includes('pool.jsonl') &&
      files.includes('manifest.json'),
  );
  assert.equal(files.filter((f) => f.startsWith('images/')).length, 160);
  assert.equal(files.filter((f) => f.startsWith('pool/')).length, 16);
  for (const f of files)
    assert.ok(fs.readFileSync(path.join(worldDir, f)).equals(fs.readFileSync(path.join(tmp, 'w2', f))), f);
  let same = 0;
  for (const f of files.filter((x) => x.endsWith('.png')))
    if (fs.readFileSync(path.join(worldDir, f)).equals(fs.readFileSync(path.join(tmp, 'w3', f)))) same++;
  assert.equal(same, 0);
});

test('the PNGs hold the rendered pixels', async () => {
  await world;
  const truths = readJsonl<ImageTruth>(path.join(worldDir, 'truth.jsonl'));
  for (const t of truths.slice(0, 10)) {
    const { data, info } = await sharp(path.join(worldDir, t.image_path)).raw().toBuffer({ resolveWithObject: true });
    assert.equal(info.width, t.size);
    assert.equal(info.channels, 3);
    assert.ok(data.equals(Buffer.from(renderImage(t))), t.image_path);
  }
});

test('every lesion is in its pixels: present, in its quadrant, of its grade', async () => {
  await world;
  const truths = readJsonl<ImageTruth>(path.join(worldDir, 'truth.jsonl')).filter((t) => t.lesion);
  assert.ok(truths.length > 80, `${truths.length} lesions`);
  const seenGrades = new Set<number>();
  for (const t of truths) {
    const L = t.lesion!;
    seenGrades.add(L.grade);
    assert.equal(L.radius, Math.round(GRADE_RADIUS[L.grade - 1] * t.size * 10) / 10);
    const a = renderImage(t);
    const b = renderImage(t, { withLesion: false });
    const S = t.size;
    let inner = 0;
    let innerChanged = 0;
    let farthest = 0;
    let sx = 0;
    let sy = 0;
    let sw = 0;
    for (let y = 0; y < S; y++) {
      for (let x = 0; x < S; x++) {
        const o = 3 * (y * S + x);
        const d = Math.max(Math.abs(a[o] - b[o]), Math.abs(a[o + 1] - b[o + 1]), Math.abs(a[o + 2] - b[o + 2]));
        const r = Math.hypot(x + 0.5 - L.cx, y + 0.5 - L.cy);
        if (r < L.radius - 0.5) {
          inner++;
          if (d > 10) innerChanged++;
        }
        if (d > 0) {
          farthest = Math.max(farthest, r);
          sx += x * d;
          sy += y * d;
          sw += d;
        }
      }
    }
    const what = `${t.image_path} ${t.modality} ${t.disease} grade ${L.grade}`;
    // Present: most of the lesion's disc differs clearly from the same image without it.
    assert.ok(innerChanged / inner > 0.4, `${what}: only ${innerChanged}/${inner} disc pixels changed`);
    // Its size: nothing changes beyond its radius (+ the anti-aliased edge and a 1-pixel blur),
    // and the change reaches most of the way out, so grades (radii 2.8 px apart at 112) are told apart.
    assert.ok(farthest <= L.radius + 2.5, `${what}: changes reach ${farthest.toFixed(1)} px, radius ${L.radius}`);
    assert.ok(farthest >= 0.75 * L.radius, `${what}: changes reach only ${farthest.toFixed(1)} px, radius ${L.radius}`);
    // Its quadrant: the weighted centre of the change is on the right side of both midlines.
    const [cx, cy] = [sx / sw, sy / sw];
    assert.equal(cx < S / 2 ? 'left' : 'right', L.quadrant.endsWith('left') ? 'left' : 'right', what);
    assert.equal(cy < S / 2 ? 'Upper' : 'Lower', L.quadrant.split(' ')[0], what);
  }
  assert.equal(seenGrades.size, 4);
});

/** Connected components (4-neighbour) of a mask, returning their sizes. */
function components(mask: Uint8Array, S: number): number[] {
  const label = new Int32Array(S * S);
  const sizes: number[] = [];
  for (let i = 0; i < S * S; i++) {
    if (!mask[i] || label[i]) continue;
    const stack = [i];
    label[i] = sizes.length + 1;
    let n = 0;
    while (stack.length) {
      const p = stack.pop()!;
      n++;
      const x = p % S;
      const y = (p - x) / S;
      for (const [nx, ny] of [
        [x - 1, y],
        [x + 1, y],
        [x, y - 1],
        [x, y + 1],
      ]) {
        const q = ny * S + nx;
        if (nx >= 0 && ny >= 0 && nx < S && ny < S && mask[q] && !label[q]) {
          label[q] = sizes.length + 1;
          stack.push(q);
        }
      }
    }
    sizes.push(n);
  }
  return sizes;
}

test('microscopy: white cells counted from the pixels match the truth', async () => {
  await world;
  const truths = readJsonl<ImageTruth>(path.join(worldDir, 'truth.jsonl')).filter((t) => t.modality === 'Microscopy');
  assert.ok(truths.length >= 20);
  for (const t of truths) {
    const px = renderImage(t);
    const S = t.size;
    // Nucleus stain: dark purple (low green, blue above red).
    const mask = new Uint8Array(S * S);
    for (let i = 0; i < S * S; i++) mask[i] = px[3 * i + 1] < 70 && px[3 * i + 2] > px[3 * i] ? 1 : 0;
    const nuclei = components(mask, S).filter((n) => n >= 25);
    assert.equal(nuclei.length, t.wbc_count, `${t.image_path} (${t.disease})`);
  }
});

test('records: OmniMedVQA fields, answer among the options, answers balanced over A-D per task', async () => {
  await world;
  const records = readJsonl<OmniRecord>(path.join(worldDir, 'medsynth.jsonl'));
  const truths = new Map(readJsonl<ImageTruth>(path.join(worldDir, 'truth.jsonl')).map((t) => [t.image_path, t]));
  const slots = new Map<string, number[]>();
  const ids = new Set<string>();
  for (const r of records) {
    assert.deepEqual(Object.keys(r), [
      'question_id',
      'dataset',
      'question_type',
      'question',
      'gt_answer',
      'image_path',
      'modality_type',
      'option_A',
      'option_B',
      'option_C',
      'option_D',
    ]);
    assert.equal(r.dataset, 'MedSynth');
    assert.ok(!ids.has(r.question_id));
    ids.add(r.question_id);
    const options = [r.option_A, r.option_B, r.option_C, r.option_D];
    assert.equal(new Set(options).size, 4, `${r.question_id}: options not distinct`);
    const k = options.indexOf(r.gt_answer);
    assert.ok(k >= 0, `${r.question_id}: answer not among options`);
    const c = slots.get(r.question_type) ?? [0, 0, 0, 0];
    c[k]++;
    slots.set(r.question_type, c);
    const t = truths.get(r.image_path)!;
    assert.equal(r.modality_type, t.modality);
    if (r.question_type === 'Modality Recognition') assert.equal(r.gt_answer, t.modality);
    if (r.question_type === 'Anatomy Identification') assert.equal(r.gt_answer, t.anatomy);
    if (r.question_type === 'Disease Diagnosis') assert.equal(r.gt_answer, t.disease);
    if (r.question_type === 'Lesion Grading') assert.equal(r.gt_answer, `Grade ${t.lesion!.grade}`);
  }
  assert.deepEqual([...slots.keys()].sort(), [...TASKS].sort());
  for (const [task, c] of slots) assert.ok(Math.max(...c) - Math.min(...c) <= 1, `${task}: answer slots ${c}`);
  const pool = readJsonl<{ image_path: string; modality_hint: string }>(path.join(worldDir, 'pool.jsonl'));
  assert.equal(pool.length, 16);
  for (const p of pool) assert.equal(truths.get(p.image_path)!.modality, p.modality_hint);
});

test('modality cues are strong: nearest neighbour on 8×8 thumbnails gets > 90%', async () => {
  await world;
  const truths = readJsonl<ImageTruth>(path.join(worldDir, 'truth.jsonl')).filter((t) => t.split === 'labelled');
  const G = 8;
  const thumb = (t: ImageTruth): Float64Array => {
    const px = renderImage(t);
    const S = t.size;
    const f = new Float64Array(G * G * 3);
    for (let y = 0; y < S; y++)
      for (let x = 0; x < S; x++)
        for (let c = 0; c < 3; c++)
          f[(Math.floor((G * y) / S) * G + Math.floor((G * x) / S)) * 3 + c] += px[3 * (y * S + x) + c];
    return f;
  };
  const train = truths.slice(0, 80).map((t) => ({ m: t.modality, f: thumb(t) }));
  const held = truths.slice(80);
  let right = 0;
  for (const t of held) {
    const f = thumb(t);
    let best = '';
    let bestD = Infinity;
    for (const e of train) {
      let d = 0;
      for (let i = 0; i < f.length; i++) d += (e.f[i] - f[i]) ** 2;
      if (d < bestD) [best, bestD] = [e.m, d];
    }
    if (best === t.modality) right++;
  }
  assert.ok(right / held.length > 0.9, `${right}/${held.length}`);
});

test('captioned split: every modality, captions name the truth except at the noise rate, same seed same bytes', async () => {
  const dir = tempDir('medsynth-captions');
  try {
    const summary = await synthesize({ out: dir, count: 0, captioned: 400, captionNoise: 0.2, seed: 5, size: 56 });
    assert.equal(summary.captioned, 400);
    const captions = readJsonl<{ image_path: string; caption: string }>(path.join(dir, 'captions.jsonl'));
    const truths = new Map(readJsonl<ImageTruth>(path.join(dir, 'truth.jsonl')).map((t) => [t.image_path, t]));
    assert.equal(captions.length, 400);
    assert.deepEqual(new Set(captions.map((c) => truths.get(c.image_path)!.modality)), new Set(MODALITIES));
    let modalityRight = 0;
    for (const c of captions) {
      assert.ok(fs.existsSync(path.join(dir, c.image_path)), c.image_path);
      const t = truths.get(c.image_path)!;
      assert.equal(t.split, 'captioned');
      // the modality is named first, so the longest modality name at the start is the one stated
      const named = [...MODALITIES]
        .sort((a, b) => b.length - a.length)
        .find((m) => new RegExp(`^(An? |This )?${m.replace('-', '\\-')}\\b`).test(c.caption));
      assert.ok(named, `no modality at the start of '${c.caption}'`);
      if (named === t.modality) modalityRight++;
    }
    // each field is wrong with probability 0.2: 320 ± 3σ (σ = 8) right
    assert.ok(modalityRight > 296 && modalityRight < 344, `modality right in ${modalityRight} of 400 captions`);
    // a lesion's grade is named after its finding (the caption's finding may be a wrong one), wrong at
    // the noise rate too; an image without a lesion, or one the caption calls normal, has none named
    let graded = 0;
    let gradeRight = 0;
    for (const c of captions) {
      const t = truths.get(c.image_path)!;
      const stated = captionFactsOf(c.caption);
      assert.ok(stated, c.caption);
      if (!t.lesion || stated.disease === NORMAL) {
        assert.equal(stated.grade, undefined, c.caption);
        continue;
      }
      assert.ok(stated.grade, `no grade in '${c.caption}'`);
      graded++;
      if (stated.grade === `Grade ${t.lesion.grade}`) gradeRight++;
    }
    assert.ok(graded > 150, `${graded} captions name a grade`);
    assert.ok(Math.abs(gradeRight / graded - 0.8) < 0.1, `grade right in ${gradeRight} of ${graded}`);
    const again = tempDir('medsynth-captions-again');
    await synthesize({ out: again, count: 0, captioned: 400, captionNoise: 0.2, seed: 5, size: 56 });
    assert.equal(
      fs.readFileSync(path.join(again, 'captions.jsonl'), 'utf8'),
      fs.readFileSync(path.join(dir, 'captions.jsonl'), 'utf8'),
    );
    fs.rmSync(again, { recursive: true, force: true });
    const clean = captionFacts({ modality: 'OCT', anatomy: 'Macula', disease: 'Drusen' }, 0, new Prng('x'));
    assert.deepEqual(clean, { modality: 'OCT', anatomy: 'Macula', disease: 'Drusen' });
    await assert.rejects(synthesize({ out: dir, count: 0, captioned: 1, captionNoise: 2, seed: 5 }), /--caption-noise/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('captionFactsOf reads back every phrasing captionText writes; other texts give undefined', () => {
  const prng = new Prng('caption-roundtrip');
  const modalities = [...MODALITIES];
  for (let i = 0; i < 400; i++) {
    const spec = MODALITY_SPECS[modalities[i % modalities.length]];
    const disease = i % 7 === 0 ? '' : prng.pick([NORMAL, ...spec.findings.map((f) => f.name)]);
    const facts = {
      modality: i % 17 === 0 ? '' : modalities[i % modalities.length],
      anatomy: i % 5 === 0 ? '' : prng.pick(spec.anatomies),
      disease,
      ...(disease && disease !== NORMAL && i % 3 === 0 ? { grade: prng.pick(GRADES) } : {}),
    };
    const text = captionText(facts, prng);
    assert.deepEqual(captionFactsOf(text), facts, text);
  }
  assert.equal(captionFactsOf('Describe this image'), undefined, 'no final full stop');
  assert.equal(captionFactsOf('some three words.'), undefined, 'not a phrasing of the captions');
  assert.deepEqual(captionFactsOf('CT of the Liver with Tumor, Grade 3.'), {
    modality: 'CT',
    anatomy: 'Liver',
    disease: 'Tumor',
    grade: 'Grade 3',
  });
  assert.equal(captionFactsOf('CT of the Liver, normal, Grade 3.'), undefined, 'a grade needs a finding');
  assert.deepEqual(captionFactsOf('Fundus photography of the Retina.'), {
    modality: 'Fundus photography',
    anatomy: 'Retina',
    disease: '',
  });
});
