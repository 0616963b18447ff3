// The shipped tokenizer and the loader: round trips, special tokens as single ids, the Qwen2-VL
// structure with Qwen's real ids, and the generator script reproducing the committed file.
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { DEFAULT_TOKENIZER_DIR, TextTokenizer } from '../../src/data/tokenizer';
import { repoRoot } from '../helpers/cli';
import { tempDir } from '../helpers/temp_dir';

const tok = TextTokenizer.load();

test('shipped tokenizer: vocab size and special token ids as documented', () => {
  assert.equal(tok.vocabSize, 768);
  assert.deepEqual(tok.special, {
    endOfText: 757,
    imStart: 758,
    imEnd: 759,
    visionStart: 760,
    visionEnd: 761,
    imagePad: 762,
    videoPad: 763,
  });
  assert.deepEqual(
    ['<think>', '</think>', '<answer>', '</answer>'].map((t) => tok.tokenId(t)),
    [764, 765, 766, 767],
  );
  assert.throws(() => tok.tokenId('<|no_such|>'), /no token "<\|no_such\|>"/);
});

test('special and added tokens map to single ids, also inside text', () => {
  for (const t of [
    '<|endoftext|>',
    '<|im_start|>',
    '<|im_end|>',
    '<|vision_start|>',
    '<|vision_end|>',
    '<|image_pad|>',
    '<|video_pad|>',
    '<think>',
    '</answer>',
  ]) {
    assert.deepEqual(Array.from(tok.encode(t)), [tok.tokenId(t)], t);
  }
  const ids = Array.from(tok.encode('A<|im_end|>B<think>C'));
  assert.deepEqual(
    ids.filter((id) => id >= 757),
    [759, 764],
  );
});

test('text round-trips, including bytes no merge covers', () => {
  for (const s of [
    'What is the most likely diagnosis?',
    'A) CT\nB) MRI\nC) OCT\nD) X-Ray',
    '<think> The image is a CT image. </think> <answer> C </answer>',
    '{"question": "Where is the lesion?", "options": ["Upper left"], "answer": "Upper left"}',
    'Ünïcødé 日本語 🧠\ttabs  and   spaces\r\n',
    '',
  ]) {
    assert.equal(tok.decode(tok.encode(s)), s, JSON.stringify(s));
  }
  // The merges were learned on MedSynth text: its questions are short.
  assert.ok(tok.encode('Which part of the body is shown in this image?').length <= 12);
  assert.equal(tok.decode(tok.encode('<|im_start|>x<|im_end|>'), { skipSpecial: true }), 'x');
});

test('a tokenizer.json with the real Qwen2-VL ids loads the same way', () => {
  const json = JSON.parse(fs.readFileSync(path.join(DEFAULT_TOKENIZER_DIR, 'tokenizer.json'), 'utf8'));
  const qwenIds: Record<string, number> = {
    '<|endoftext|>': 151643,
    '<|im_start|>': 151644,
    '<|im_end|>': 151645,
    '<|vision_start|>': 151652,
    '<|vision_end|>': 151653,
    '<|image_pad|>': 151655,
    '<|video_pad|>': 151656,
  };
  json.added_tokens = json.added_tokens
    .filter((t: { content: string }) => t.content in qwenIds)
    .map((t: { content: string }) => ({ ...t, id: qwenIds[t.content] }));
  const q = TextTokenizer.fromJson(json, {}, 'qwen-like');
  assert.equal(q.vocabSize, 151657);
  assert.equal(q.special.imagePad, 151655);
  assert.deepEqual(Array.from(q.encode('<|im_start|>user')).slice(0, 1), [151644]);
  delete json.added_tokens[2];
  json.added_tokens = json.added_tokens.filter(Boolean);
  assert.throws(
    () => TextTokenizer.fromJson(json, {}, 'broken.json'),
    /broken\.json: tokenizer has no <\|im_end\|> token/,
  );
});

test('missing tokenizer file errors by name', () => {
  assert.throws(
    () => TextTokenizer.load('/nonexistent/dir'),
    /\/nonexistent\/dir\/tokenizer\.json: cannot read tokenizer \(ENOENT\)/,
  );
});

test('scripts/make_tokenizer reproduces the committed tokenizer byte for byte', () => {
  const out = tempDir('make-tokenizer');
  const r = spawnSync(process.execPath, [path.join(repoRoot, 'dist', 'scripts', 'make_tokenizer.js'), '--out', out], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) {
    assert.ok(
      fs.readFileSync(path.join(out, f)).equals(fs.readFileSync(path.join(DEFAULT_TOKENIZER_DIR, f))),
      `${f} differs: rerun the script`,
    );
  }
});
