// The library's tokenizer of a model folder (`require('medgr2').Tokenizer`): the folder's
// tokenizer.json, its chat template (or the built-in Qwen2-VL one) and the merge size of its image
// processor, so that `applyChatTemplate` gives exactly the ids HF's processor gives for a
// conversation with images: the template's text, tokenized, each <|image_pad|> expanded to
// t·h·w / merge² copies.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readProcessorSettings } from '../model/folder_settings';
import { encodeChat, renderWith, type ChatMessage, type EncodedChat } from './chat_template';
import type { Grid } from './images/patchify';
import { TextTokenizer, type SpecialTokenName } from './tokenizer';

/** A message as HF writes it: content is text, or parts ({type: 'image'} / {type: 'text', text}). */
export type Message = ChatMessage;

export interface ApplyChatTemplateOptions {
  /** End with the assistant's header, ready for generation. */
  addGenerationPrompt?: boolean;
  /** Each image's [t, h, w] patch grid, in order of appearance (from the image processor). */
  imageGrids?: Grid[];
}

function checkedMessages(messages: unknown): ChatMessage[] {
  if (!Array.isArray(messages)) throw new TypeError('applyChatTemplate: messages must be an array');
  return messages.map((m, i) => {
    const where = `applyChatTemplate: messages[${i}]`;
    if (!m || typeof m !== 'object') throw new TypeError(`${where} must be an object {role, content}`);
    const { role, content } = m as { role?: unknown; content?: unknown };
    if (typeof role !== 'string' || role === '') throw new TypeError(`${where}.role must be a non-empty string`);
    if (typeof content === 'string') return m as ChatMessage;
    if (!Array.isArray(content)) throw new TypeError(`${where}.content must be a string or an array of parts`);
    content.forEach((p, k) => {
      const type = (p as { type?: unknown })?.type;
      if (type === 'image') return;
      if (type === 'text' && typeof (p as { text?: unknown }).text === 'string') return;
      throw new TypeError(`${where}.content[${k}] must be {type: 'image'} or {type: 'text', text: string}`);
    });
    return m as ChatMessage;
  });
}

export class Tokenizer {
  private constructor(
    /** The underlying text tokenizer (encode / decode / special ids). */
    readonly text: TextTokenizer,
    /** Patches merged per side into one LM token (the image processor's merge_size). */
    readonly mergeSize: number,
  ) {}

  /** The tokenizer of a model folder: tokenizer.json, tokenizer_config.json, the chat template,
   *  preprocessor_config.json's merge_size. */
  static async fromModel(dir: string): Promise<Tokenizer> {
    if (!fs.existsSync(path.join(dir, 'tokenizer.json')))
      throw new Error(`${dir}: no tokenizer.json (a model folder as Hugging Face ships it is needed)`);
    return new Tokenizer(TextTokenizer.load(dir), readProcessorSettings(dir).patch.mergeSize);
  }

  get vocabSize(): number {
    return this.text.vocabSize;
  }
  get special(): Record<SpecialTokenName, number> {
    return this.text.special;
  }
  /** The folder's Jinja template text, or null when the built-in Qwen2-VL template is used. */
  get chatTemplate(): string | null {
    return this.text.chatTemplate?.source ?? null;
  }

  encode(text: string): Int32Array {
    return this.text.encode(text);
  }
  decode(ids: ArrayLike<number>, opts: { skipSpecialTokens?: boolean } = {}): string {
    return this.text.decode(ids, { skipSpecial: opts.skipSpecialTokens });
  }

  /** The template's text, one <|image_pad|> per image (HF's apply_chat_template(tokenize=False)). */
  renderChatTemplate(messages: Message[], opts: { addGenerationPrompt?: boolean } = {}): string {
    return renderWith(this.text, checkedMessages(messages), opts);
  }

  /** Token ids of the conversation, image pads expanded by `imageGrids` (one grid per image). */
  applyChatTemplate(messages: Message[], opts: ApplyChatTemplateOptions = {}): Int32Array {
    return this.encodeChat(messages, opts).ids;
  }

  /** Ids plus the assistant-target mask (1 on each reply and the end-of-turn after it). */
  encodeChat(messages: Message[], opts: ApplyChatTemplateOptions = {}): EncodedChat {
    return encodeChat(this.text, checkedMessages(messages), opts.imageGrids ?? [], {
      addGenerationPrompt: opts.addGenerationPrompt,
      mergeSize: this.mergeSize,
    });
  }
}
