// Images into model inputs with a model's processor settings (src/model/encode.ts): DecodedImages
// resizes with the options it is given, and each image takes t·h·w / merge² <|image_pad|> tokens with
// the merge size it was patched with.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { QWEN2VL_PATCH_RULE } from '../../src/data/images/patchify';
import { TextTokenizer } from '../../src/data/tokenizer';
import { DecodedImages, encodeConversation, loadImages, type LoadedImage } from '../../src/model/encode';
import { readProcessorSettings } from '../../src/model/folder_settings';
import { realProcessorConfigJson } from '../helpers/real_vocab_model';
import { tempDir } from '../helpers/temp_dir';

const dir = tempDir('encode');
const image = path.join(dir, 'scan.png');

async function writeImage(): Promise<void> {
  if (fs.existsSync(image)) return;
  const data = Buffer.alloc(224 * 224 * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7) % 256;
  await sharp(data, { raw: { width: 224, height: 224, channels: 3 } })
    .png()
    .toFile(image);
}

const pads = (ids: Int32Array, tok: TextTokenizer) => ids.filter((id) => id === tok.special.imagePad).length;

test("DecodedImages resizes with the processor options it is given (a folder's max_pixels), relative paths too", async () => {
  await writeImage();
  fs.writeFileSync(path.join(dir, 'preprocessor_config.json'), JSON.stringify(realProcessorConfigJson()));
  const folder = readProcessorSettings(dir); // max_pixels 12544: 224×224 → 112×112
  const [small] = await new DecodedImages(dir, folder).get(['scan.png']);
  assert.deepEqual(small.grid, [1, 8, 8]);
  assert.equal(small.pixelValues.length, 64 * 1176);
  const [full] = await new DecodedImages().get([image]); // the defaults keep 224×224
  assert.deepEqual(full.grid, [1, 16, 16]);
  const cached = new DecodedImages(undefined, folder);
  const [a] = await cached.get([image]);
  const [b] = await cached.get([image]);
  assert.equal(a, b, 'decoded once');
});

test("encodeConversation expands each image to t·h·w / merge² pads with the image's own merge size", async () => {
  await writeImage();
  const tok = TextTokenizer.load();
  const merge2 = await loadImages([image], { maxPixels: 12544 });
  assert.equal(merge2[0].mergeSize, 2);
  assert.equal(pads(encodeConversation(tok, merge2, 'What is shown?').ids, tok), 16);
  // merge size 1 (every patch its own LM token): the same 8×8 patches take 64 pads
  const merge1 = await loadImages([image], { maxPixels: 12544, patch: { ...QWEN2VL_PATCH_RULE, mergeSize: 1 } });
  assert.deepEqual(merge1[0].grid, [1, 8, 8]);
  assert.equal(merge1[0].mergeSize, 1);
  assert.equal(pads(encodeConversation(tok, merge1, 'What is shown?').ids, tok), 64);
  // an image made without a merge size counts with Qwen2-VL's 2
  const bare: LoadedImage = { pixelValues: merge2[0].pixelValues, grid: merge2[0].grid };
  assert.equal(pads(encodeConversation(tok, [bare], 'q', { reply: 'a' }).ids, tok), 16);
  assert.throws(() => encodeConversation(tok, [merge1[0], merge2[0]], 'q'), /different merge sizes \(1, 2\)/);
});
