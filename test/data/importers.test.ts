// Importers: the real fixture without loss, each format from a small file, normalization tables,
// option parsing, bad records with their line numbers, duplicates, --strict, and the CLI.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { importFiles } from '../../src/data/import';
import { MODALITIES, normalizeModality, normalizeTask, TASKS } from '../../src/data/importers/normalize';
import { parseChooseSuffix, parseLetteredOptions } from '../../src/data/importers/options';
import { matchOption } from '../../src/data/answer_grammar';
import { readSamples } from '../../src/data/record_files';
import { OMNIMEDVQA_FIXTURES, runCli } from '../helpers/cli';
import { tempDir } from '../helpers/temp_dir';

const FIXTURES = OMNIMEDVQA_FIXTURES;
const AUTHORS_TEST = path.join(FIXTURES, 'medgr2-formatted-test.jsonl');

function withDir(fn: (dir: string) => void): void {
  const dir = tempDir('import');
  try {
    fn(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test("the fixture's 759 records import without loss: answer among options, modality and task set", () => {
  const raw = fs
    .readFileSync(AUTHORS_TEST, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  const r = importFiles([AUTHORS_TEST]);
  assert.equal(r.summary.files[0].format, 'medgr2-authors');
  assert.deepEqual([r.summary.records, r.summary.imported, r.summary.bad, r.summary.duplicates], [759, 759, 0, 0]);
  assert.equal(r.samples.length, raw.length);
  r.samples.forEach((s, i) => {
    const src = raw[i];
    assert.equal(s.id, src.question_id);
    assert.equal(s.dataset, src.dataset);
    assert.deepEqual(s.images, [src.image_path]);
    assert.equal(s.question, src.question);
    assert.deepEqual(s.options, src.options);
    assert.equal(s.answer, src.gt_answer);
    assert.ok(s.options.includes(s.answer));
    assert.ok((MODALITIES as readonly string[]).includes(s.modality), `${s.id}: modality ${s.modality}`);
    assert.ok((TASKS as readonly string[]).includes(s.task), `${s.id}: task ${s.task}`);
    assert.equal(s.modalityOriginal, src.modality_type ?? '');
    assert.equal(s.taskOriginal, src.question_type);
    assert.ok(!s.questionStem.includes('Please choose'), s.questionStem);
    assert.deepEqual(s.provenance, {
      kind: 'IMPORTED',
      round: 0,
      sourceFile: AUTHORS_TEST,
      sourceLine: i + 1,
      sourceFormat: 'medgr2-authors',
    });
  });
  // The one record with modality_type null sits among CT records of its dataset.
  assert.equal(r.summary.modalityInferred, 1);
  assert.equal(r.samples.find((s) => s.id === 'Chest CT Scan_0000')!.modality, 'CT');
});

test('modality and task spellings normalize to the eight and the five; unknown is Other', () => {
  const modalities: Array<[string, string]> = [
    ['CT(Computed Tomography)', 'CT'],
    ['MR (Mag-netic Resonance Imaging)', 'MRI'],
    ['MRI', 'MRI'],
    ['X-Ray', 'X-Ray'],
    ['x-ray', 'X-Ray'],
    ['Ultrasound', 'Ultrasound'],
    ['Dermoscopy', 'Dermoscopy'],
    ['Fundus Photography', 'Fundus photography'],
    ['OCT (Optical Coherence Tomography', 'OCT'],
    ['Microscopy Images', 'Microscopy'],
    ['Optical Coherence Tomography', 'OCT'],
    ['Computed Tomography', 'CT'],
    ['Endoscopy', 'Other'],
    ['', 'Other'],
  ];
  for (const [input, want] of modalities) assert.equal(normalizeModality(input), want, input);
  const tasks: Array<[string, string]> = [
    ['Modality Recognition', 'Modality Recognition'],
    ['Anatomy Identification', 'Anatomy Identification'],
    ['Disease Diagnosis', 'Disease Diagnosis'],
    ['Lesion Grading', 'Lesion Grading'],
    ['Other Biological Attributes', 'Other Biological Attributes'],
    ['disease_diagnosis', 'Disease Diagnosis'],
    ['Counting', 'Other'],
  ];
  for (const [input, want] of tasks) assert.equal(normalizeTask(input), want, input);
});

test('options are found in question text in the formats people write them', () => {
  assert.deepEqual(
    parseLetteredOptions(
      'What imaging technique is employed? A)Mammogram, B)Positron emission tomography (PET), C)CT, D)Fluoroscopy',
    ),
    {
      stem: 'What imaging technique is employed?',
      options: ['Mammogram', 'Positron emission tomography (PET)', 'CT', 'Fluoroscopy'],
    },
  );
  assert.deepEqual(
    parseLetteredOptions('Which organ?\nA. Liver\nB. Lung, left\nC. Heart\nAnswer with the option letter.'),
    {
      stem: 'Which organ?',
      options: ['Liver', 'Lung, left', 'Heart'],
    },
  );
  assert.deepEqual(parseLetteredOptions('Grade? (A) I (B) II (C) III'), {
    stem: 'Grade?',
    options: ['I', 'II', 'III'],
  });
  assert.equal(parseLetteredOptions('Is this type A. influenza?'), undefined);
  assert.deepEqual(
    parseChooseSuffix('Q? Please choose one of the following: x or y z or w. You must pick only one answer.'),
    {
      stem: 'Q?',
      options: ['x', 'y z', 'w'],
    },
  );
  const opts = ['CT', 'MRI', 'X-Ray', 'Ultrasound'];
  for (const [a, want] of [
    ['X-Ray', 2],
    ['x ray', undefined],
    ['xray', 2],
    ['C', 2],
    ['c', 2],
    ['(C)', 2],
    ['C)', 2],
    ['C. X-Ray', 2],
    ['E', undefined],
    ['C. CT', undefined],
  ] as const) {
    assert.equal(matchOption(a, opts), want, a);
  }
});

test('each format imports from a small file (JSON array and JSONL), with its fields in place', () => {
  withDir((dir) => {
    const omni = path.join(dir, 'omni.json');
    fs.writeFileSync(
      omni,
      JSON.stringify(
        [
          {
            question_id: 'q1',
            dataset: 'Derm7',
            question_type: 'Disease Diagnosis',
            question: 'What is it?',
            gt_answer: 'Nevus',
            image_path: 'Images/Derm7/1.jpg',
            option_A: 'Melanoma',
            option_B: 'Nevus',
            option_C: 'Wart',
            option_D: 'Mole',
            modality_type: 'Dermoscopy',
          },
          {
            question_id: 'q2',
            dataset: 'Chest CT Scan',
            question_type: 'Modality Recognition',
            question: 'Which?',
            gt_answer: 'CT',
            image_path: 'Images/Chest CT Scan/2.png',
            option_A: 'CT',
            option_B: 'MRI',
            modality: 'CT(Computed Tomography)',
          },
        ],
        null,
        2,
      ),
    );
    const r1v = path.join(dir, 'medr1.json');
    fs.writeFileSync(
      r1v,
      JSON.stringify([
        {
          image: 'Images/Chest CT Scan/test/1.png',
          problem: 'What imaging technique? A)Mammogram, B)PET, C)CT, D)Fluoroscopy',
          solution: '<answer> C </answer>',
        },
      ]),
    );
    const llava = path.join(dir, 'llava.json');
    fs.writeFileSync(
      llava,
      JSON.stringify([
        {
          id: 'l1',
          image: 'fundus/3.jpg',
          modality: 'Fundus Photography',
          conversations: [
            {
              from: 'human',
              value: '<image>\nWhat stage is the retinopathy?\nA. None\nB. Mild\nC. Severe\nAnswer with the letter.',
            },
            { from: 'gpt', value: 'B' },
          ],
        },
        {
          id: 'l2',
          images: ['us/1.png'],
          messages: [
            { role: 'user', content: '<image> Which organ? (A) Liver (B) Kidney' },
            { role: 'assistant', content: 'Kidney' },
          ],
        },
      ]),
    );
    const authors = path.join(dir, 'authors.jsonl');
    fs.writeFileSync(
      authors,
      JSON.stringify({
        question_id: 'a1',
        dataset: 'X',
        question_type: 'Anatomy Identification',
        question: 'Where? Please choose one of the following: Chest or Knee. You must pick only one answer.',
        gt_answer: 'Knee',
        image_path: 'Images/X/1.png',
        modality_type: 'X-Ray',
      }) + '\n',
    );

    const r = importFiles([omni, r1v, llava, authors], { imagesRoot: '/data/omni' });
    assert.equal(r.summary.bad, 0, JSON.stringify(r.bad));
    assert.deepEqual(
      r.summary.files.map((f) => f.format),
      ['omnimedvqa', 'r1v', 'llava', 'medgr2-authors'],
    );
    const [q1, q2, m1, l1, l2, a1] = r.samples;
    assert.deepEqual(
      [q1.answer, q1.options, q1.modality, q1.task, q1.images],
      [
        'Nevus',
        ['Melanoma', 'Nevus', 'Wart', 'Mole'],
        'Dermoscopy',
        'Disease Diagnosis',
        ['/data/omni/Images/Derm7/1.jpg'],
      ],
    );
    assert.deepEqual([q2.options, q2.modality, q2.modalityOriginal], [['CT', 'MRI'], 'CT', 'CT(Computed Tomography)']);
    assert.deepEqual(
      [m1.answer, m1.options, m1.questionStem, m1.dataset, m1.id],
      ['CT', ['Mammogram', 'PET', 'CT', 'Fluoroscopy'], 'What imaging technique?', 'Chest CT Scan', 'medr1.json:1'],
    );
    // Med-R1 records carry no modality: this one takes CT from q2, the other record of its dataset.
    assert.deepEqual([m1.modality, m1.modalityOriginal, m1.task], ['CT', '', 'Other']);
    assert.equal(r.summary.modalityInferred, 1);
    assert.deepEqual(
      [l1.answer, l1.options, l1.modality, l1.question.includes('<image>')],
      ['Mild', ['None', 'Mild', 'Severe'], 'Fundus photography', false],
    );
    assert.deepEqual([l2.answer, l2.options, l2.images], ['Kidney', ['Liver', 'Kidney'], ['/data/omni/us/1.png']]);
    assert.deepEqual(
      [a1.options, a1.answer, a1.modality, a1.task, a1.questionStem],
      [['Chest', 'Knee'], 'Knee', 'X-Ray', 'Anatomy Identification', 'Where?'],
    );
  });
});

test('bad records are reported with file, line and reason; the good ones are imported', () => {
  withDir((dir) => {
    const jsonl = path.join(dir, 'mixed.jsonl');
    const good = (id: string, extra: object = {}) =>
      JSON.stringify({
        question_id: id,
        question: 'Q?',
        gt_answer: 'B',
        image_path: `${id}.png`,
        options: ['A', 'B'],
        ...extra,
      });
    fs.writeFileSync(
      jsonl,
      [
        good('1'),
        good('2'),
        '{"question_id": "3", "question": ',
        '',
        good('5', { gt_answer: 'Zebra' }),
        good('6', { options: ['only'] }),
        good('7', { image_path: undefined }),
        good('2', { question: 'Other?' }),
        good('9'),
      ].join('\n') + '\n',
    );
    const arr = path.join(dir, 'arr.json');
    fs.writeFileSync(
      arr,
      '[\n  {"question_id": "x1", "question": "Q?", "gt_answer": "CT", "image_path": "a.png", "option_A": "CT", "option_B": "MR"},\n' +
        '  {"question_id": "x2", "gt_answer": "CT", "image_path": "b.png", "option_A": "CT", "option_B": "MR"},\n' +
        '  {"question_id": "x3", "question": "Q?", "gt_answer": "CT", "image_path": "c.png", "option_A": "CT", "option_B": "MR"}\n]\n',
    );
    const r = importFiles([jsonl, arr]);
    assert.deepEqual(
      r.bad.map((b) => [path.basename(b.file), b.line]),
      [
        ['mixed.jsonl', 3],
        ['mixed.jsonl', 5],
        ['mixed.jsonl', 6],
        ['mixed.jsonl', 7],
        ['mixed.jsonl', 8],
        ['arr.json', 3],
      ],
    );
    assert.match(r.bad[0].reason, /not valid JSON/);
    assert.match(r.bad[1].reason, /answer 'Zebra' is not one of the options \(A\) A, B\) B\)/);
    assert.match(r.bad[2].reason, /at least two options/);
    assert.match(r.bad[3].reason, /'image_path' is missing/);
    assert.match(r.bad[4].reason, /id '2' is already used by a different record at .*mixed.jsonl:2/);
    assert.match(r.bad[5].reason, /'question' is missing/);
    assert.deepEqual(
      r.samples.map((s) => s.id),
      ['1', '2', '9', 'x1', 'x3'],
    );
    assert.deepEqual([r.summary.imported, r.summary.bad, r.summary.records], [5, 6, 11]);
    assert.throws(() => importFiles([jsonl], { strict: true }), /mixed\.jsonl:3: not valid JSON.*--strict/);
  });
});

test('duplicates (same image and question) are counted, and dropped with dedupe', () => {
  withDir((dir) => {
    const f = path.join(dir, 'dup.jsonl');
    const rec = (id: string, q: string, img: string) =>
      JSON.stringify({ question_id: id, question: q, gt_answer: 'a', image_path: img, options: ['a', 'b'] });
    fs.writeFileSync(
      f,
      [rec('1', 'What is  it?', 'i.png'), rec('2', 'what is it', 'i.png'), rec('3', 'What is it?', 'j.png')].join('\n'),
    );
    const kept = importFiles([f]);
    assert.deepEqual([kept.summary.duplicates, kept.summary.dropped, kept.samples.length], [1, 0, 3]);
    const deduped = importFiles([f], { dedupe: true });
    assert.deepEqual([deduped.summary.duplicates, deduped.summary.dropped], [1, 1]);
    assert.deepEqual(
      deduped.samples.map((s) => s.id),
      ['1', '3'],
    );
  });
});

test('medgr2 data import: record file or JSONL out, bad lines on stderr, --strict exits non-zero', () => {
  withDir((dir) => {
    const out = path.join(dir, 'bench.rec');
    const ok = runCli(['data', 'import', AUTHORS_TEST, '--out', out, '--json']);
    assert.equal(ok.status, 0, ok.stderr);
    const summary = JSON.parse(ok.stdout);
    assert.deepEqual([summary.imported, summary.bad, summary.duplicates], [759, 0, 0]);
    assert.equal(readSamples(out).messages.length, 759);

    // Canonical JSONL out, then imported again: the same samples (but for provenance).
    const jsonl = path.join(dir, 'bench.jsonl');
    assert.equal(runCli(['data', 'import', AUTHORS_TEST, '--out', jsonl]).status, 0);
    const again = importFiles([jsonl]);
    assert.equal(again.summary.files[0].format, 'medgr2-jsonl');
    const strip = (s: { provenance: unknown }) => ({ ...s, provenance: null });
    assert.deepEqual(again.samples.map(strip), readSamples(out).messages.map(strip));

    const broken = path.join(dir, 'broken.jsonl');
    const lines = fs.readFileSync(AUTHORS_TEST, 'utf8').split('\n').slice(0, 5);
    lines[2] = lines[2].slice(0, 40);
    fs.writeFileSync(broken, lines.join('\n'));
    const soft = runCli(['data', 'import', broken, '--out', path.join(dir, 'b.rec')]);
    assert.equal(soft.status, 0, soft.stderr);
    assert.match(soft.stderr, /bad record: .*broken\.jsonl:3: not valid JSON/);
    assert.match(soft.stdout, /imported 4 of 5 records: 1 bad/);
    const strict = runCli(['data', 'import', broken, '--out', path.join(dir, 'c.rec'), '--strict']);
    assert.equal(strict.status, 1);
    assert.match(strict.stderr, /^medgr2: .*broken\.jsonl:3: not valid JSON/);
    assert.ok(!fs.existsSync(path.join(dir, 'c.rec')));
  });
});

test('medgr2 inspect: Sample fields as JSON lines; torn tail warns and exits 0; corruption exits 1', () => {
  withDir((dir) => {
    const out = path.join(dir, 's.rec');
    assert.equal(runCli(['data', 'import', AUTHORS_TEST, '--out', out]).status, 0);
    const r = runCli(['inspect', out]);
    assert.equal(r.status, 0, r.stderr);
    const rows = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.equal(rows.length, 759);
    for (const key of ['id', 'dataset', 'image', 'question', 'options', 'answer', 'modality', 'task'])
      assert.ok(key in rows[0], key);
    assert.equal(rows[0].image, rows[0].images[0]);

    const bytes = fs.readFileSync(out);
    fs.writeFileSync(out, bytes.subarray(0, bytes.length - 20));
    const torn = runCli(['inspect', out]);
    assert.equal(torn.status, 0);
    assert.equal(torn.stdout.trim().split('\n').length, 758);
    assert.match(torn.stderr, /warning: .*torn tail: ignored \d+ byte/);

    const damaged = Buffer.from(bytes);
    damaged[Math.floor(bytes.length / 2)] ^= 0xff;
    fs.writeFileSync(out, damaged);
    const bad = runCli(['inspect', out]);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /^medgr2: .*s\.rec: corrupt record at byte offset \d+/);
  });
});
