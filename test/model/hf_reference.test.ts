// The native model against Hugging Face transformers: fixtures written by scripts/hf_reference.py
// (a tiny random Qwen2-VL / Qwen2.5-VL saved with save_pretrained, and its logits on fixed inputs).
// The fixtures need transformers to make; until a machine with it has run the script, this skips.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { Model } from '../../src/index';
import { readSafetensorsHeader } from '../../src/model/safetensors';
import { addon, assertClose, repoRoot } from '../helpers/addon';

async function readReference(file: string): Promise<Record<string, ArrayLike<number>>> {
  const header = await readSafetensorsHeader(file);
  const native = (
    addon as unknown as {
      safetensors: {
        readTensors: (
          p: string,
          d: unknown[],
          o?: unknown,
        ) => Promise<Record<string, { toArray(): ArrayLike<number> }>>;
      };
    }
  ).safetensors;
  const tensors = await native.readTensors(file, header.tensors, {});
  return Object.fromEntries(Object.entries(tensors).map(([k, t]) => [k, t.toArray()]));
}

for (const name of ['hf-tiny-qwen2-vl', 'hf-tiny-qwen2.5-vl']) {
  const dir = path.join(repoRoot, 'test', 'fixtures', name);
  const present = fs.existsSync(path.join(dir, 'reference.safetensors'));
  test(
    `${name}: logits equal transformers' on text and on an image prompt`,
    { skip: present ? false : 'fixture not made yet (run scripts/hf_reference.py where transformers is installed)' },
    async () => {
      const ref = await readReference(path.join(dir, 'reference.safetensors'));
      const model = await Model.load(dir);
      const img = Int32Array.from(ref['image.input_ids']);
      const got = (
        await model.logits({
          inputIds: img,
          cuSeqlens: Int32Array.from([0, img.length]),
          pixelValues: Float32Array.from(ref['image.pixel_values']),
          imageGrids: Int32Array.from(ref['image.grid']),
        })
      ).toArray() as Float32Array;
      assertClose(got, Float32Array.from(ref['image.logits']), {
        rtol: 1e-4,
        atol: 1e-4,
        what: `${name} image logits`,
      });
      const txt = Int32Array.from(ref['text.input_ids']);
      const gotText = (
        await model.logits({ inputIds: txt, cuSeqlens: Int32Array.from([0, txt.length]) })
      ).toArray() as Float32Array;
      assertClose(gotText, Float32Array.from(ref['text.logits']), {
        rtol: 1e-4,
        atol: 1e-4,
        what: `${name} text logits`,
      });
      await model.dispose();
    },
  );
}
