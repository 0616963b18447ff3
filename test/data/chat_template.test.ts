// The Qwen2-VL chat template: text as HF's Jinja template writes it, image pads expanded to the
// grid's token count, and a target mask on exactly the assistant reply and its <|im_end|>.
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { encodeChat, encodeVqa, renderChat, type ChatMessage } from '../../src/data/chat_template';
import type { Grid } from '../../src/data/images/patchify';
import { TextTokenizer } from '../../src/data/tokenizer';

const tok = TextTokenizer.load();

test('renderChat writes the Qwen2-VL template text (default system turn, one pad per image)', () => {
  const messages: ChatMessage[] = [{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'Q?' }] }];
  assert.equal(
    renderChat(messages, { addGenerationPrompt: true }),
    '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' +
      '<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Q?<|im_end|>\n' +
      '<|im_start|>assistant\n',
  );
});

test('image pads: t·h·w/4 per image, between vision start and end', () => {
  const grids: Grid[] = [
    [1, 8, 8],
    [1, 4, 6],
  ];
  const e = encodeChat(
    tok,
    [{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'Compare' }, { type: 'image' }] }],
    grids,
    { addGenerationPrompt: true },
  );
  assert.deepEqual(e.imageTokens, [16, 6]);
  const ids = Array.from(e.ids);
  assert.equal(ids.filter((id) => id === tok.special.imagePad).length, 22);
  const first = ids.indexOf(tok.special.visionStart);
  assert.deepEqual(ids.slice(first + 1, first + 17), new Array(16).fill(tok.special.imagePad));
  assert.equal(ids[first + 17], tok.special.visionEnd);
  const second = ids.indexOf(tok.special.visionStart, first + 1);
  assert.deepEqual(ids.slice(second + 1, second + 8), [
    ...new Array(6).fill(tok.special.imagePad),
    tok.special.visionEnd,
  ]);
  // The prompt is exactly the whole rendered text tokenized at once, pads expanded.
  const whole = Array.from(
    tok.encode(
      renderChat(
        [{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'Compare' }, { type: 'image' }] }],
        { addGenerationPrompt: true },
      ),
    ),
  );
  const expanded: number[] = [];
  let k = 0;
  for (const id of whole) {
    if (id === tok.special.imagePad) expanded.push(...new Array(e.imageTokens[k++]).fill(id));
    else expanded.push(id);
  }
  assert.deepEqual(ids, expanded);
  assert.deepEqual(Array.from(e.targetMask), new Array(ids.length).fill(0));
  assert.throws(
    () => encodeChat(tok, [{ role: 'user', content: [{ type: 'image' }] }], [], {}),
    /1 <\|image_pad\|> placeholders but 0 image grids/,
  );
});

test('target mask covers exactly the reply and its <|im_end|>', () => {
  const reply = '<think> Bright round spot. </think> <answer> B </answer>';
  const e = encodeVqa(tok, { grids: [[1, 8, 8]], prompt: 'What is the most likely diagnosis?', reply });
  const ids = Array.from(e.ids);
  const on = ids.map((_, i) => i).filter((i) => e.targetMask[i] === 1);
  // Contiguous, ending on <|im_end|>, followed by the unmasked "\n".
  assert.equal(on[on.length - 1] - on[0] + 1, on.length);
  assert.equal(ids[on[on.length - 1]], tok.special.imEnd);
  assert.equal(on[on.length - 1], ids.length - 2);
  assert.equal(tok.decode(ids.slice(-1)), '\n');
  assert.equal(e.targetMask[ids.length - 1], 0);
  assert.equal(tok.decode(on.map((i) => ids[i])), `${reply}<|im_end|>`);
  // Everything before is the generation prompt, as used for sampling.
  const prompt = encodeVqa(tok, { grids: [[1, 8, 8]], prompt: 'What is the most likely diagnosis?' });
  assert.deepEqual(ids.slice(0, on[0]), Array.from(prompt.ids));
});

test('multi-turn: every assistant turn is a target, nothing else', () => {
  const messages: ChatMessage[] = [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'Modality?' }] },
    { role: 'assistant', content: 'CT' },
    { role: 'user', content: 'Anatomy?' },
    { role: 'assistant', content: 'Brain' },
  ];
  const e = encodeChat(tok, messages, [[1, 2, 2]]);
  const ids = Array.from(e.ids);
  const targets = ids.filter((_, i) => e.targetMask[i]);
  assert.equal(tok.decode(targets), 'CT<|im_end|>Brain<|im_end|>');
  assert.equal(tok.decode(ids), renderChat(messages));
});
