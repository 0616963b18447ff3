// The smallest cycle that still runs every stage: a MedSynth world of a few images, one round, a
// handful of steps per stage (seconds on a CPU). Tests override what they look at.
import { defaultCycleConfig, type CycleConfig } from '../../src/cycle/config';

export function tinyRun(out: string, over: Partial<CycleConfig> = {}): CycleConfig {
  const d = defaultCycleConfig(out);
  return {
    ...d,
    rounds: 1,
    world: { ...d.world, seedImages: 6, poolImages: 4, testImages: 8, seedModalities: ['CT', 'MRI'] },
    generate: { ...d.generate, perImage: 2, batchSize: 8, maxNewTokens: 24 },
    select: { topK: 4, balance: true },
    pretrain: { ...d.pretrain, images: 8, steps: 2 },
    warmup: { ...d.warmup, generatorSteps: 2, judgeSteps: 2 },
    coDevelop: { ...d.coDevelop, generatorSteps: 1, judgeSteps: 1 },
    policySft: { ...d.policySft, steps: 2 },
    grpo: { ...d.grpo, steps: 1, promptsPerStep: 2, groupSize: 2 },
    eval: { maxNewTokens: 4 },
    ...over,
  };
}
