// The published Qwen2-VL / Qwen2.5-VL configs under configs/models/ against the size of each published
// checkpoint: the parameter list medgr2 derives from a config (expectedParameters, shapes only: no tensor
// is allocated) must add up to the checkpoint's bf16 tensors, i.e. total_size / 2 of its
// model.safetensors.index.json. A tied lm_head is not stored in the checkpoint, and expectedParameters
// leaves it out as well. configs/models/README.md says where every key of every file comes from.
// Pure TypeScript: no addon needed.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { loadModelConfig } from '../../src/model/config';
import { canonicalName, expectedParameters, parameterCount } from '../../src/model/parameters';
import { repoRoot } from '../helpers/cli';

interface Published {
  /** Hub name; the file is configs/models/<name>.json. */
  name: string;
  modelType: 'qwen2_vl' | 'qwen2_5_vl';
  /** Structural facts, so that a wrong file fails before its count is compared. */
  layers: number;
  hidden: number;
  heads: number;
  kvHeads: number;
  intermediate: number;
  vocab: number;
  tied: boolean;
  visionMlp: number;
  /**
   * Parameters of the published checkpoint: the hub's count of the tensors in its safetensors files
   * (HfApi().model_info(repo).safetensors.total), as recorded in mm-evaluation/simple-mmeval
   * mmeval/model_metadata.json @7f0faed3 (scripts/update_model_metadata.py fetches it).
   */
  parameters: number;
  /** total_size (bytes) of the checkpoint's model.safetensors.index.json, where a copy was found. */
  totalSize: number | null;
}

const PUBLISHED: Published[] = [
  {
    name: 'Qwen2-VL-2B-Instruct',
    modelType: 'qwen2_vl',
    layers: 28,
    hidden: 1536,
    heads: 12,
    kvHeads: 2,
    intermediate: 8960,
    vocab: 151936,
    tied: true,
    visionMlp: 5120, // int(embed_dim 1280 * mlp_ratio 4)
    parameters: 2_208_985_600, // simple-mmeval model_metadata.json "Qwen2-VL-2B-Instruct"
    // whalefal1/ASR-LLM-TTS-Pipeline-with-live2d models/qwen_vl/qwen/Qwen2-VL-2B/model.safetensors.index.json
    // @4437c435: the base Qwen2-VL-2B (same architecture as the Instruct), ModelScope copy; no lm_head.weight.
    totalSize: 4_417_971_200,
  },
  {
    name: 'Qwen2-VL-7B-Instruct',
    modelType: 'qwen2_vl',
    layers: 28,
    hidden: 3584,
    heads: 28,
    kvHeads: 4,
    intermediate: 18944,
    vocab: 152064,
    tied: false,
    visionMlp: 5120,
    parameters: 8_291_375_616, // simple-mmeval model_metadata.json "Qwen2-VL-7B-Instruct"
    // A PaddlePaddle script rewriting the Qwen2-VL-7B-Instruct shards keeps
    // metadata = {"total_size": "16582751232"} (public GitHub file; the code index did not name its repository).
    totalSize: 16_582_751_232,
  },
  {
    name: 'Qwen2.5-VL-3B-Instruct',
    modelType: 'qwen2_5_vl',
    layers: 36,
    hidden: 2048,
    heads: 16,
    kvHeads: 2,
    intermediate: 11008,
    vocab: 151936,
    tied: true,
    visionMlp: 3420,
    parameters: 3_754_622_976, // simple-mmeval model_metadata.json "Qwen2.5-VL-3B-Instruct"
    totalSize: null, // no copy of the index found
  },
  {
    name: 'Qwen2.5-VL-7B-Instruct',
    modelType: 'qwen2_5_vl',
    layers: 28,
    hidden: 3584,
    heads: 28,
    kvHeads: 4,
    intermediate: 18944,
    vocab: 152064,
    tied: false,
    visionMlp: 3420,
    parameters: 8_292_166_656, // simple-mmeval model_metadata.json "Qwen2.5-VL-7B-Instruct"
    // exo's model cards (as in exo-explore/exo src/exo/shared/models/model_cards.py; the code index did not
    // name the repository of the copies found): Qwen/Qwen-Image's text_encoder, a Qwen2.5-VL-7B,
    // storage_size=Memory.from_bytes(16584333312); merge-check scripts in other public repositories
    // assert a merged Qwen2.5-VL-7B index's total_size == 16584333312 too.
    totalSize: 16_584_333_312,
  },
  {
    name: 'Qwen2.5-VL-32B-Instruct',
    modelType: 'qwen2_5_vl',
    layers: 64,
    hidden: 5120,
    heads: 40,
    kvHeads: 8,
    intermediate: 27648,
    vocab: 152064,
    tied: false,
    visionMlp: 3456, // pytorch/torchtune qwen2_5_vision/_model_builders.py @49698b24, qwen2_5_vl_32b
    parameters: 33_452_718_336, // simple-mmeval model_metadata.json "Qwen2.5-VL-32B-Instruct"
    totalSize: null, // only a fine-tune's (Lingshu-32B: 66,905,436,672 bytes) was found
  },
  {
    name: 'Qwen2.5-VL-72B-Instruct',
    modelType: 'qwen2_5_vl',
    layers: 80,
    hidden: 8192,
    heads: 64,
    kvHeads: 8,
    intermediate: 29568,
    vocab: 152064,
    tied: false,
    visionMlp: 3456, // pytorch/torchtune qwen2_5_vision/_model_builders.py @49698b24, qwen2_5_vl_72b
    parameters: 73_410_777_344, // simple-mmeval model_metadata.json "Qwen2.5-VL-72B-Instruct"
    totalSize: null, // no copy of the index found
  },
];

const BF16_BYTES = 2;
const configFile = (name: string) => path.join(repoRoot, 'configs', 'models', `${name}.json`);

describe('published configs: medgr2 counts what the hub stores', () => {
  for (const p of PUBLISHED) {
    test(`${p.name}: structure, and ${p.parameters} parameters`, async () => {
      const c = await loadModelConfig(configFile(p.name));
      assert.equal(c.modelType, p.modelType);
      const t = c.text;
      assert.deepEqual(
        [t.numLayers, t.hiddenSize, t.numHeads, t.numKvHeads, t.headDim, t.intermediateSize, t.vocabSize],
        [p.layers, p.hidden, p.heads, p.kvHeads, 128, p.intermediate, p.vocab],
      );
      assert.equal(t.tieWordEmbeddings, p.tied);
      assert.deepEqual(t.mropeSection, [16, 24, 24]);
      assert.equal(c.torchDtype, 'bfloat16');
      const v = c.vision;
      assert.ok(v, 'a vision tower');
      assert.equal(v.kind, p.modelType);
      assert.deepEqual(
        [v.depth, v.embedDim, v.numHeads, v.mlpHiddenDim, v.outHiddenSize, v.patchSize, v.temporalPatchSize],
        [32, 1280, 16, p.visionMlp, p.hidden, 14, 2],
      );

      const specs = expectedParameters(c);
      const names = specs.map((s) => s.name);
      assert.equal(new Set(names).size, names.length, 'no tensor listed twice');
      assert.ok(
        names.every((n) => canonicalName(n) === n),
        'every name is a hub name',
      );
      // A tied head is model.embed_tokens.weight: not stored, so not counted in total_size either.
      assert.equal(names.includes('lm_head.weight'), !p.tied);

      const n = parameterCount(specs);
      assert.equal(n, p.parameters, `${p.name}: medgr2 counts ${n}, the hub's checkpoint holds ${p.parameters}`);
      if (p.totalSize !== null) {
        assert.equal(p.totalSize / BF16_BYTES, p.parameters, 'the two published figures agree');
        assert.equal(n * BF16_BYTES, p.totalSize);
      }
    });
  }

  test('the 32B/72B vision MLP (3456) is what tells them from a 3420-wide tower', async () => {
    const c = await loadModelConfig(configFile('Qwen2.5-VL-32B-Instruct'));
    assert.ok(c.vision);
    const narrow = { ...c, vision: { ...c.vision, mlpHiddenDim: 3420 } };
    const diff = parameterCount(expectedParameters(c)) - parameterCount(expectedParameters(narrow));
    // Per block: gate/up/down weights 3 * 1280 * 36 plus gate/up biases 2 * 36; 32 blocks.
    assert.equal(diff, 32 * (3 * 1280 * 36 + 2 * 36));
  });
});
