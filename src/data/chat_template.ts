// Conversations to token ids, an assistant-target mask, and the image placeholders expanded to their
// real length. The text is the model folder's own Jinja chat template when it has one
// (./jinja_template.ts), else the built-in Qwen2-VL template (ChatML), which writes:
//
//   <|im_start|>system\nYou are a helpful assistant.<|im_end|>\n
//   <|im_start|>user\n<|vision_start|><|image_pad|>×N<|vision_end|>QUESTION<|im_end|>\n
//   <|im_start|>assistant\nREPLY<|im_end|>\n
//
// N = t·h·w / merge² for the image's patch grid (HF's processor expands the one <|image_pad|> the
// Jinja template writes into N copies the same way). The default system turn is added when the
// first message is not a system message, as the template does.
//
// Target mask: 1 on every token of an assistant reply and on the <|im_end|> that closes it (the
// model must learn to stop), 0 elsewhere, including the "<|im_start|>assistant\n" header and the
// "\n" after <|im_end|>. The reply is tokenized on its own, after the header, exactly as a generated
// reply is produced after the generation prompt, so training and sampling see the same tokens.
import type { Grid } from './images/patchify';
import type { TextTokenizer } from './tokenizer';

export const DEFAULT_SYSTEM = 'You are a helpful assistant.';

export type ContentPart = { type: 'image' } | { type: 'text'; text: string };

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string | ContentPart[];
}

export interface EncodedChat {
  ids: Int32Array;
  /** 1 on assistant reply tokens (and their <|im_end|>), else 0. */
  targetMask: Uint8Array;
  /** <|image_pad|> tokens per image, in order. */
  imageTokens: number[];
}

export interface ChatOptions {
  /** End with "<|im_start|>assistant\n" (a prompt for generation). */
  addGenerationPrompt?: boolean;
  mergeSize?: number;
}

/** The template's text with one <|image_pad|> per image (what HF's apply_chat_template returns). */
export function renderChat(messages: ChatMessage[], { addGenerationPrompt = false }: ChatOptions = {}): string {
  let s = '';
  messages.forEach((m, i) => {
    if (i === 0 && m.role !== 'system') s += `<|im_start|>system\n${DEFAULT_SYSTEM}<|im_end|>\n`;
    s += `<|im_start|>${m.role}\n${contentText(m.content)}<|im_end|>\n`;
  });
  if (addGenerationPrompt) s += '<|im_start|>assistant\n';
  return s;
}

function contentText(content: ChatMessage['content']): string {
  if (typeof content === 'string') return content;
  return content.map((p) => (p.type === 'image' ? '<|vision_start|><|image_pad|><|vision_end|>' : p.text)).join('');
}

// Replies are located in the rendered text by markers put in their place: a template may write
// anything around a reply (headers, an end-of-turn), but must copy the reply itself through.
const REPLY_MARK = /\uE000medgr2-reply-(\d+)\uE000/g;
const replyMark = (k: number) => `\uE000medgr2-reply-${k}\uE000`;

/** The conversation as text: the tokenizer's own chat template when it has one, else ChatML. */
export function renderWith(tok: TextTokenizer, messages: ChatMessage[], opts: ChatOptions = {}): string {
  return tok.chatTemplate ? tok.chatTemplate.render(messages, opts) : renderChat(messages, opts);
}

/**
 * Tokenizes a conversation; `grids` gives each image's patch grid, in order of appearance. The text
 * comes from the tokenizer's chat template (or the built-in ChatML); each assistant reply is
 * tokenized on its own (as generation produces it) and is a target, with the end-of-turn token the
 * template writes right after it.
 */
export function encodeChat(
  tok: TextTokenizer,
  messages: ChatMessage[],
  grids: Grid[],
  opts: ChatOptions = {},
): EncodedChat {
  const merge = opts.mergeSize ?? 2;
  const replies: string[] = [];
  const marked = messages.map((m) => {
    if (m.role !== 'assistant') return m;
    replies.push(contentText(m.content));
    return { ...m, content: replyMark(replies.length - 1) };
  });
  const text = renderWith(tok, marked, opts);
  const pieces: { ids: Int32Array; target: boolean }[] = [];
  const endOfTurn = new Set([tok.special.imEnd, tok.special.endOfText]);
  let at = 0;
  let afterReply = false;
  const seen: number[] = [];
  const pushText = (t: string) => {
    const ids = t ? tok.encode(t) : new Int32Array(0);
    if (afterReply && ids.length > 0 && endOfTurn.has(ids[0])) {
      pieces.push({ ids: ids.subarray(0, 1), target: true });
      pieces.push({ ids: ids.subarray(1), target: false });
    } else {
      pieces.push({ ids, target: false });
    }
  };
  for (const m of text.matchAll(REPLY_MARK)) {
    pushText(text.slice(at, m.index));
    const k = Number(m[1]);
    seen.push(k);
    pieces.push({ ids: tok.encode(replies[k]), target: true });
    afterReply = true;
    at = (m.index as number) + m[0].length;
  }
  pushText(text.slice(at));
  if (seen.length !== replies.length || seen.some((k, i) => k !== i)) {
    const where = tok.chatTemplate?.where ?? 'the built-in chat template';
    throw new Error(
      `${where}: the template does not write each assistant reply once and in order (it dropped or changed ${replies.length - new Set(seen).size} of ${replies.length}); medgr2 cannot tell which tokens to train on`,
    );
  }

  const pad = tok.special.imagePad;
  const imageTokens = grids.map((g, k) => {
    const n = (g[0] * g[1] * g[2]) / (merge * merge);
    if (!Number.isInteger(n) || n <= 0)
      throw new Error(`image ${k}: grid [${g.join(', ')}] is not divisible into ${merge}x${merge} merge blocks`);
    return n;
  });
  const padsSeen = pieces.reduce((s, p) => s + p.ids.filter((id) => id === pad).length, 0);
  if (padsSeen !== grids.length) {
    throw new Error(`chat has ${padsSeen} <|image_pad|> placeholders but ${grids.length} image grids were given`);
  }
  const total = pieces.reduce((s, p) => s + p.ids.length, 0) + imageTokens.reduce((s, n) => s + n - 1, 0);
  const ids = new Int32Array(total);
  const targetMask = new Uint8Array(total);
  let o = 0;
  let img = 0;
  for (const p of pieces) {
    for (const id of p.ids) {
      if (id === pad) {
        ids.fill(pad, o, o + imageTokens[img]);
        o += imageTokens[img++];
      } else {
        if (p.target) targetMask[o] = 1;
        ids[o++] = id;
      }
    }
  }
  return { ids, targetMask, imageTokens };
}

/** One VQA turn: images then the question from the user, optionally the reply (training). */
export function encodeVqa(
  tok: TextTokenizer,
  { system, grids, prompt, reply }: { system?: string; grids: Grid[]; prompt: string; reply?: string },
  opts: Omit<ChatOptions, 'addGenerationPrompt'> = {},
): EncodedChat {
  const messages: ChatMessage[] = [];
  if (system !== undefined) messages.push({ role: 'system', content: system });
  messages.push({
    role: 'user',
    content: [...grids.map(() => ({ type: 'image' as const })), { type: 'text', text: prompt }],
  });
  if (reply !== undefined) messages.push({ role: 'assistant', content: reply });
  return encodeChat(tok, messages, grids, { ...opts, addGenerationPrompt: reply === undefined });
}
