// What the trainers do differently with LoRA: the base weights frozen, a fresh PEFT-initialized
// adapter when the model has none (one the model carries, e.g. loaded from an adapter folder,
// continues training), and GRPO's reference as the base with the adapter switched off.
import { LoraError, loraModules, loraScale, type LoraSpec } from '../model/lora';
import type { Model } from '../model/model';

/**
 * Makes `model` train an adapter only when `spec` is given or the model already carries one: adds a
 * fresh adapter (A from `seed`, B zero) if it has none, freezes every base weight. Returns whether
 * the model trains an adapter (false: nothing changed, the caller sets what trains).
 */
export function useLoraAdapter(model: Model, spec: LoraSpec | undefined, seed: number): boolean {
  if (spec && !model.hasLora) {
    const modules = loraModules(model.config, spec);
    if (modules.length === 0) throw new LoraError('lora: the targets select no module of this model');
    model.addLora({ modules, rank: spec.rank, seed });
    model.setLora({ scale: loraScale(spec), dropout: spec.dropout, enabled: true });
    model.loraSpec = spec;
  }
  if (!model.hasLora) return false;
  model.setTrainable({ vision: false, merger: false, languageModel: false });
  model.setLora({ enabled: true });
  return true;
}

/** The part of a model GRPO asks its reference for. */
export interface ReferenceLogprobs {
  tokenLogprobs: Model['tokenLogprobs'];
}

/**
 * GRPO's reference for a LoRA policy, as TRL does with PEFT (`disable_adapter()`): the same base
 * with the adapter switched off for the call, so no second copy of the weights exists. Calls are
 * awaited one at a time by the trainer, so the switch never overlaps a policy forward.
 */
export function adapterOffReference(policy: Model): ReferenceLogprobs {
  return {
    tokenLogprobs: async (batch, opts) => {
      policy.setLora({ enabled: false });
      try {
        return await policy.tokenLogprobs(batch, opts);
      } finally {
        policy.setLora({ enabled: true });
      }
    },
  };
}
