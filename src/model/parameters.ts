// Every tensor of a model, named as the hub's checkpoints name it, with its shape.
//
// Names and shapes follow transformers' modeling_qwen2 / modeling_qwen2_vl / modeling_qwen2_5_vl:
// - decoder (Qwen2Attention / Qwen2VLAttention): q/k/v projections carry a bias, o_proj does not;
//   the MLP is SwiGLU without biases; RMSNorm has a weight only; lm_head has no bias and is absent
//   from the checkpoint when tie_word_embeddings (it is model.embed_tokens.weight then).
// - vision patch embedding: Conv3d(in_channels, embed, kernel=(Tp, P, P), bias=False).
// - qwen2_vl blocks: LayerNorm norm1/norm2 (weight + bias), attn.qkv / attn.proj (biased),
//   QuickGELU MLP fc1/fc2 (biased); merger ln_q is a LayerNorm (weight + bias).
// - qwen2_5_vl blocks: RMSNorm norm1/norm2 (weight only), the same attention, SwiGLU MLP
//   gate/up/down_proj *with* biases; merger ln_q is an RMSNorm (weight only).
// - merger: mlp.0 Linear(embed*m^2 -> embed*m^2), GELU (mlp.1, no weights), mlp.2 Linear(-> out).
// - score head (*ForSequenceClassification, config.scoreLabels > 0): score.weight, bias-free.
//
// The newer layout (transformers >= 4.52 saves Qwen2VLForConditionalGeneration with a Qwen2VLModel
// inside) prefixes the decoder with model.language_model. and the vision tower with model.visual.;
// canonicalName() maps it back, as transformers' _checkpoint_conversion_mapping does the other way.
import type { ModelConfig, ParameterSpec } from '../native/model_config';

/** The model's tensors in a fixed order (decoder, heads, vision tower), with hub names. */
export function expectedParameters(cfg: ModelConfig): ParameterSpec[] {
  const t = cfg.text;
  const out: ParameterSpec[] = [];
  const add = (name: string, shape: number[]) => out.push({ name, shape });
  const qDim = t.numHeads * t.headDim;
  const kvDim = t.numKvHeads * t.headDim;

  add('model.embed_tokens.weight', [t.vocabSize, t.hiddenSize]);
  for (let i = 0; i < t.numLayers; i++) {
    const p = `model.layers.${i}.`;
    add(`${p}self_attn.q_proj.weight`, [qDim, t.hiddenSize]);
    add(`${p}self_attn.q_proj.bias`, [qDim]);
    add(`${p}self_attn.k_proj.weight`, [kvDim, t.hiddenSize]);
    add(`${p}self_attn.k_proj.bias`, [kvDim]);
    add(`${p}self_attn.v_proj.weight`, [kvDim, t.hiddenSize]);
    add(`${p}self_attn.v_proj.bias`, [kvDim]);
    add(`${p}self_attn.o_proj.weight`, [t.hiddenSize, qDim]);
    add(`${p}mlp.gate_proj.weight`, [t.intermediateSize, t.hiddenSize]);
    add(`${p}mlp.up_proj.weight`, [t.intermediateSize, t.hiddenSize]);
    add(`${p}mlp.down_proj.weight`, [t.hiddenSize, t.intermediateSize]);
    add(`${p}input_layernorm.weight`, [t.hiddenSize]);
    add(`${p}post_attention_layernorm.weight`, [t.hiddenSize]);
  }
  add('model.norm.weight', [t.hiddenSize]);
  if (!t.tieWordEmbeddings) add('lm_head.weight', [t.vocabSize, t.hiddenSize]);
  // The sequence-classification head (the native ParameterSpecs order: after the LM head).
  if (cfg.scoreLabels > 0) add('score.weight', [cfg.scoreLabels, t.hiddenSize]);

  const v = cfg.vision;
  if (!v) return out;
  const e = v.embedDim;
  add('visual.patch_embed.proj.weight', [e, v.inChannels, v.temporalPatchSize, v.patchSize, v.patchSize]);
  const layerNorm = v.kind === 'qwen2_vl';
  for (let i = 0; i < v.depth; i++) {
    const p = `visual.blocks.${i}.`;
    add(`${p}norm1.weight`, [e]);
    if (layerNorm) add(`${p}norm1.bias`, [e]);
    add(`${p}norm2.weight`, [e]);
    if (layerNorm) add(`${p}norm2.bias`, [e]);
    add(`${p}attn.qkv.weight`, [3 * e, e]);
    add(`${p}attn.qkv.bias`, [3 * e]);
    add(`${p}attn.proj.weight`, [e, e]);
    add(`${p}attn.proj.bias`, [e]);
    if (v.kind === 'qwen2_vl') {
      add(`${p}mlp.fc1.weight`, [v.mlpHiddenDim, e]);
      add(`${p}mlp.fc1.bias`, [v.mlpHiddenDim]);
      add(`${p}mlp.fc2.weight`, [e, v.mlpHiddenDim]);
      add(`${p}mlp.fc2.bias`, [e]);
    } else {
      add(`${p}mlp.gate_proj.weight`, [v.mlpHiddenDim, e]);
      add(`${p}mlp.gate_proj.bias`, [v.mlpHiddenDim]);
      add(`${p}mlp.up_proj.weight`, [v.mlpHiddenDim, e]);
      add(`${p}mlp.up_proj.bias`, [v.mlpHiddenDim]);
      add(`${p}mlp.down_proj.weight`, [e, v.mlpHiddenDim]);
      add(`${p}mlp.down_proj.bias`, [e]);
    }
  }
  const merged = e * v.spatialMergeSize * v.spatialMergeSize;
  add('visual.merger.ln_q.weight', [e]);
  if (layerNorm) add('visual.merger.ln_q.bias', [e]);
  add('visual.merger.mlp.0.weight', [merged, merged]);
  add('visual.merger.mlp.0.bias', [merged]);
  add('visual.merger.mlp.2.weight', [v.outHiddenSize, merged]);
  add('visual.merger.mlp.2.bias', [v.outHiddenSize]);
  return out;
}

/** The number of scalars in `specs` (the model's parameter count). */
export function parameterCount(specs: ParameterSpec[]): number {
  let n = 0;
  for (const s of specs) n += s.shape.reduce((a, b) => a * b, 1);
  return n;
}

// Every name family any of our models has (canonical form), whatever the config's sizes.
const KNOWN = new RegExp(
  '^(?:' +
    [
      'model\\.embed_tokens\\.weight',
      'model\\.norm\\.weight',
      'lm_head\\.weight',
      'score\\.weight',
      'model\\.layers\\.\\d+\\.self_attn\\.[qkv]_proj\\.(?:weight|bias)',
      'model\\.layers\\.\\d+\\.self_attn\\.o_proj\\.weight',
      'model\\.layers\\.\\d+\\.mlp\\.(?:gate|up|down)_proj\\.weight',
      'model\\.layers\\.\\d+\\.(?:input|post_attention)_layernorm\\.weight',
      'visual\\.patch_embed\\.proj\\.weight',
      'visual\\.blocks\\.\\d+\\.norm[12]\\.(?:weight|bias)',
      'visual\\.blocks\\.\\d+\\.attn\\.(?:qkv|proj)\\.(?:weight|bias)',
      'visual\\.blocks\\.\\d+\\.mlp\\.(?:fc1|fc2|gate_proj|up_proj|down_proj)\\.(?:weight|bias)',
      'visual\\.merger\\.ln_q\\.(?:weight|bias)',
      'visual\\.merger\\.mlp\\.[02]\\.(?:weight|bias)',
    ].join('|') +
    ')$',
);

/**
 * The canonical (hub, old-layout) name of a checkpoint tensor name in either layout:
 * `model.language_model.X` -> `model.X`, `model.visual.X` -> `visual.X`, others unchanged.
 * null when the name is not one of ours (a foreign or unsupported checkpoint).
 */
export function canonicalName(name: string): string | null {
  let n = name;
  if (n.startsWith('model.language_model.')) n = 'model.' + n.slice('model.language_model.'.length);
  else if (n.startsWith('model.visual.')) n = 'visual.' + n.slice('model.visual.'.length);
  return KNOWN.test(n) ? n : null;
}
