// preprocessor_config.json and generation_config.json read as transformers reads them
// (src/model/folder_settings.ts): precedence of min_pixels/max_pixels over size, eos as a number or a
// list, the defaults without the files, and every bad field an error naming the file and the field;
// and the processor file saveCheckpoint writes for a tower transformers' defaults would mis-patch.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { CLIP_MEAN, CLIP_STD } from '../../src/data/images/patchify';
import {
  readGenerationSettings,
  readModelSettings,
  readProcessorSettings,
  settingsWithoutFolder,
  stopTokensOf,
  withPixelBounds,
} from '../../src/model/folder_settings';
import { saveCheckpoint } from '../../src/model/hf_folder';
import { tinyConfig } from '../../src/model/tiny';
import { randomTensors } from '../helpers/checkpoints';
import { QWEN_IDS, realGenerationConfigJson, realProcessorConfigJson } from '../helpers/real_vocab_model';
import { tempDir } from '../helpers/temp_dir';

/** A folder holding only the given files (objects are written as JSON, strings as they are). */
const root = tempDir('settings');
let made = 0;
function folder(files: Record<string, unknown>): string {
  const dir = path.join(root, String(made++));
  fs.mkdirSync(dir);
  for (const [name, v] of Object.entries(files))
    fs.writeFileSync(path.join(dir, name), typeof v === 'string' ? v : JSON.stringify(v));
  return dir;
}
const processorOf = (doc: unknown) => readProcessorSettings(folder({ 'preprocessor_config.json': doc }));
const generationOf = (doc: unknown) => readGenerationSettings(folder({ 'generation_config.json': doc }));

test('without the files: Qwen2VLImageProcessor defaults, no stop ids (the chat template decides)', () => {
  const dir = folder({});
  assert.deepEqual(readProcessorSettings(dir), {
    minPixels: 56 * 56,
    maxPixels: 28 * 28 * 1280,
    patch: { patchSize: 14, mergeSize: 2, temporalPatchSize: 2, mean: CLIP_MEAN, std: CLIP_STD },
  });
  assert.deepEqual(readGenerationSettings(dir), { eosTokenIds: [] });
  assert.deepEqual(stopTokensOf(readGenerationSettings(dir), [7, 8]), [7, 8]);
});

test("Qwen2.5-VL's published files (the real-vocabulary fixture's values)", () => {
  const dir = folder({
    'preprocessor_config.json': realProcessorConfigJson(),
    'generation_config.json': realGenerationConfigJson(),
  });
  const p = readProcessorSettings(dir);
  assert.equal(p.minPixels, 3136);
  assert.equal(p.maxPixels, 12544);
  assert.deepEqual(p.patch, {
    patchSize: 14,
    mergeSize: 2,
    temporalPatchSize: 2,
    mean: [0.48145466, 0.4578275, 0.40821073],
    std: [0.26862954, 0.26130258, 0.27577711],
  });
  assert.equal(p.source, path.join(dir, 'preprocessor_config.json'));
  assert.deepEqual(readGenerationSettings(dir), {
    eosTokenIds: [QWEN_IDS.imEnd, QWEN_IDS.endOfText],
    padTokenId: QWEN_IDS.endOfText,
    doSample: true,
    temperature: 0.1,
    topP: 0.001,
    topK: 1,
    repetitionPenalty: 1.05,
    source: path.join(dir, 'generation_config.json'),
  });
});

test('size: shortest_edge / longest_edge are the bounds; min_pixels / max_pixels win over them, each alone', () => {
  const size = { shortest_edge: 1000, longest_edge: 20000 };
  const bounds = (doc: object) => {
    const s = processorOf(doc);
    return [s.minPixels, s.maxPixels];
  };
  assert.deepEqual(bounds({ size }), [1000, 20000]);
  assert.deepEqual(bounds({ size, min_pixels: 2000 }), [2000, 20000]);
  assert.deepEqual(bounds({ size, max_pixels: 30000 }), [1000, 30000]);
  assert.deepEqual(bounds({ size, min_pixels: 2000, max_pixels: 30000 }), [2000, 30000]);
  assert.deepEqual(bounds({ min_pixels: 2000 }), [2000, 28 * 28 * 1280]);
  assert.deepEqual(bounds({ size: null, max_pixels: 5000 }), [3136, 5000], 'null is absent, as in transformers');
  // a single mean / std applies to the three channels
  assert.deepEqual(processorOf({ image_mean: 0.5, image_std: 0.25 }).patch.mean, [0.5, 0.5, 0.5]);
});

test('eos_token_id as a number or a list; stop tokens are its ids, once each', () => {
  assert.deepEqual(generationOf({ eos_token_id: 151645 }).eosTokenIds, [151645]);
  assert.deepEqual(generationOf({ eos_token_id: [151645, 151643] }).eosTokenIds, [151645, 151643]);
  assert.deepEqual(stopTokensOf(generationOf({ eos_token_id: 151645 }), [1, 2]), [151645]);
  assert.deepEqual(stopTokensOf(generationOf({ eos_token_id: [5, 6, 5] }), [1, 2]), [5, 6]);
  assert.deepEqual(stopTokensOf(generationOf({ eos_token_id: [] }), [1, 2]), [1, 2]);
  // fields the file does not set stay unset (the command's own defaults apply)
  const { source, ...rest } = generationOf({ do_sample: false, max_new_tokens: 64, temperature: null });
  assert.deepEqual(rest, { eosTokenIds: [], doSample: false, maxNewTokens: 64 });
  assert.match(source ?? '', /generation_config\.json$/);
});

test('each bad field of preprocessor_config.json is an error naming the file and the field', () => {
  const cases: [object, RegExp][] = [
    [{ min_pixels: 'big' }, /field "min_pixels" must be an integer >= 1, got "big"/],
    [{ max_pixels: -5 }, /field "max_pixels" must be an integer >= 1, got -5/],
    [{ max_pixels: 2.5 }, /field "max_pixels" must be an integer >= 1/],
    [{ size: { shortest_edge: 'x', longest_edge: 10 } }, /field "size" must be an object with integer/],
    [{ size: 224 }, /field "size" must be an object/],
    [{ min_pixels: 5000, max_pixels: 4000 }, /max_pixels \(4000\) is smaller than min_pixels \(5000\)/],
    [{ patch_size: 0 }, /field "patch_size" must be an integer >= 1, got 0/],
    [{ merge_size: 1.5 }, /field "merge_size" must be an integer >= 1, got 1.5/],
    [{ temporal_patch_size: '2' }, /field "temporal_patch_size" must be an integer >= 1, got "2"/],
    [{ image_mean: [0.5, 0.5] }, /field "image_mean" must be a number or a list of 3 numbers/],
    [{ image_std: [0.5, 0, 0.5] }, /field "image_std" must be positive/],
    [{ do_resize: false }, /field "do_resize" must be true/],
    [{ do_normalize: 'yes' }, /field "do_normalize" must be true or false, got "yes"/],
    [{ rescale_factor: 0.5 }, /field "rescale_factor" must be 1\/255/],
  ];
  for (const [doc, message] of cases) {
    assert.throws(
      () => processorOf(doc),
      (e: Error) => {
        assert.match(e.message, /preprocessor_config\.json: /, JSON.stringify(doc));
        assert.match(e.message, message, JSON.stringify(doc));
        return true;
      },
    );
  }
  assert.throws(
    () => readProcessorSettings(folder({ 'preprocessor_config.json': '{"min_pixels": ' })),
    /preprocessor_config\.json: not valid JSON/,
  );
  assert.throws(() => processorOf([1, 2]), /preprocessor_config\.json: expected a JSON object/);
});

test('each bad field of generation_config.json is an error naming the file and the field', () => {
  const cases: [object, RegExp][] = [
    [{ eos_token_id: 'end' }, /field "eos_token_id" must be a token id or a list of token ids, got "end"/],
    [{ eos_token_id: [151645, -1] }, /field "eos_token_id" must be a token id or a list of token ids/],
    [{ eos_token_id: [151645, 'x'] }, /field "eos_token_id" must be a token id or a list/],
    [{ pad_token_id: 1.5 }, /field "pad_token_id" must be an integer >= 0, got 1.5/],
    [{ do_sample: 'true' }, /field "do_sample" must be true or false, got "true"/],
    [{ temperature: -0.5 }, /field "temperature" must be a number >= 0, got -0.5/],
    [{ top_p: 2 }, /field "top_p" must be in \(0, 1\], got 2/],
    [{ top_p: 0 }, /field "top_p" must be in \(0, 1\], got 0/],
    [{ top_k: 2.5 }, /field "top_k" must be an integer >= 0, got 2.5/],
    [{ repetition_penalty: 0 }, /field "repetition_penalty" must be a number > 0, got 0/],
    [{ max_new_tokens: 0 }, /field "max_new_tokens" must be an integer >= 1, got 0/],
  ];
  for (const [doc, message] of cases) {
    assert.throws(
      () => generationOf(doc),
      (e: Error) => {
        assert.match(e.message, /generation_config\.json: /, JSON.stringify(doc));
        assert.match(e.message, message, JSON.stringify(doc));
        return true;
      },
    );
  }
});

test('withPixelBounds: flags override either bound; crossed bounds are an error naming the flags', () => {
  const s = processorOf(realProcessorConfigJson());
  assert.deepEqual([withPixelBounds(s, {}).minPixels, withPixelBounds(s, {}).maxPixels], [3136, 12544]);
  const o = withPixelBounds(s, { maxPixels: 50176 });
  assert.deepEqual([o.minPixels, o.maxPixels, o.patch, o.source], [3136, 50176, s.patch, s.source]);
  assert.equal(withPixelBounds(s, { minPixels: 784, maxPixels: undefined }).minPixels, 784);
  assert.throws(() => withPixelBounds(s, { minPixels: 20000 }), /--min-pixels\/--max-pixels: .*min 20000, max 12544/);
  assert.throws(() => withPixelBounds(s, { maxPixels: 0 }), /min 3136, max 0/);
});

test("a model folder's processor must patch as its vision tower does; models without a folder follow the tower", () => {
  const tower = { patchSize: 14, spatialMergeSize: 2, temporalPatchSize: 2 };
  const ok = folder({ 'preprocessor_config.json': realProcessorConfigJson() });
  assert.equal(readModelSettings(ok, tower).processor.maxPixels, 12544);
  assert.deepEqual(readModelSettings(ok, tower).generation, { eosTokenIds: [] });
  assert.equal(readModelSettings(ok, null).processor.patch.patchSize, 14, 'a text-only model: nothing to check');
  const bad = folder({ 'preprocessor_config.json': { ...realProcessorConfigJson(), patch_size: 16 } });
  assert.throws(
    () => readModelSettings(bad, tower),
    (e: Error) =>
      e.message.includes(path.join(bad, 'preprocessor_config.json')) &&
      /patch_size is 16 but .*config\.json has vision_config\.patch_size 14/.test(e.message),
  );
  assert.throws(
    () => readModelSettings(ok, { ...tower, spatialMergeSize: 1 }),
    /merge_size is 2 but .*config\.json has vision_config\.spatial_merge_size 1/,
  );
  const none = settingsWithoutFolder({ patchSize: 16, spatialMergeSize: 2, temporalPatchSize: 2 });
  assert.equal(none.processor.patch.patchSize, 16);
  assert.deepEqual([none.processor.minPixels, none.processor.maxPixels], [3136, 28 * 28 * 1280]);
  assert.deepEqual(none.generation, { eosTokenIds: [] });
});

test('a folder saved from a tower with other patch sizes gets a preprocessor_config.json that patches as it does', async () => {
  const seven = tinyConfig('qwen2_vl');
  seven.vision = { ...(seven.vision as NonNullable<typeof seven.vision>), patchSize: 7 };
  const dir = path.join(tempDir('patch7'), 'model');
  await saveCheckpoint(dir, seven, randomTensors(seven));
  const written = JSON.parse(fs.readFileSync(path.join(dir, 'preprocessor_config.json'), 'utf8'));
  assert.deepEqual([written.patch_size, written.merge_size, written.temporal_patch_size], [7, 2, 2]);
  const { processor } = readModelSettings(dir, seven.vision);
  assert.deepEqual(processor.patch, {
    patchSize: 7,
    mergeSize: 2,
    temporalPatchSize: 2,
    mean: [...CLIP_MEAN],
    std: [...CLIP_STD],
  });
  assert.deepEqual([processor.minPixels, processor.maxPixels], [3136, 28 * 28 * 1280]);
  // transformers' defaults need no file: a default tower's folder stays as it was.
  const fourteen = path.join(tempDir('patch14'), 'model');
  await saveCheckpoint(fourteen, tinyConfig('qwen2_vl'), randomTensors(tinyConfig('qwen2_vl')));
  assert.equal(fs.existsSync(path.join(fourteen, 'preprocessor_config.json')), false);
});
