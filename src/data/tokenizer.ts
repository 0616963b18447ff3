// Hugging Face tokenizer.json (+ tokenizer_config.json) through @huggingface/tokenizers, with the
// Qwen2-VL special tokens looked up by name. Works with the real Qwen2-VL / Qwen2.5-VL tokenizer and
// with the small one shipped for the tiny models (configs/tokenizer/).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { loadChatTemplate, type ChatTemplate } from './jinja_template';

export const SPECIAL_TOKENS = {
  endOfText: '<|endoftext|>',
  imStart: '<|im_start|>',
  imEnd: '<|im_end|>',
  visionStart: '<|vision_start|>',
  visionEnd: '<|vision_end|>',
  imagePad: '<|image_pad|>',
  videoPad: '<|video_pad|>',
} as const;

export type SpecialTokenName = keyof typeof SPECIAL_TOKENS;

/** The shipped tokenizer for the tiny models (and MedSynth). */
export const DEFAULT_TOKENIZER_DIR = path.resolve(__dirname, '..', '..', '..', 'configs', 'tokenizer');

interface TokenizerJson {
  added_tokens?: { id: number; content: string; special?: boolean }[];
  model?: { vocab?: Record<string, number> };
}

export class TextTokenizer {
  /** Ids of the Qwen special tokens. */
  readonly special: Record<SpecialTokenName, number>;
  /** One more than the largest id (the embedding table needs at least this many rows). */
  readonly vocabSize: number;
  /** The folder's own chat template; null: the built-in Qwen2-VL template (ChatML). */
  chatTemplate: ChatTemplate | null = null;

  private constructor(
    private readonly tok: Tokenizer,
    json: TokenizerJson,
    readonly source: string,
  ) {
    let maxId = -1;
    for (const id of Object.values(json.model?.vocab ?? {})) maxId = Math.max(maxId, id);
    for (const t of json.added_tokens ?? []) maxId = Math.max(maxId, t.id);
    this.vocabSize = maxId + 1;
    const special = {} as Record<SpecialTokenName, number>;
    for (const [key, content] of Object.entries(SPECIAL_TOKENS) as [SpecialTokenName, string][]) {
      const id = tok.token_to_id(content);
      if (id === undefined)
        throw new Error(`${source}: tokenizer has no ${content} token (a Qwen2-VL tokenizer is needed)`);
      special[key] = id;
    }
    this.special = special;
  }

  /** From a folder holding tokenizer.json (and optionally tokenizer_config.json), or the file itself. */
  static load(dirOrFile: string = DEFAULT_TOKENIZER_DIR): TextTokenizer {
    const isFile = dirOrFile.endsWith('.json');
    const file = isFile ? dirOrFile : path.join(dirOrFile, 'tokenizer.json');
    const configFile = path.join(path.dirname(file), 'tokenizer_config.json');
    const read = (f: string): unknown => {
      try {
        return JSON.parse(fs.readFileSync(f, 'utf8'));
      } catch (e) {
        const why = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
        throw new Error(`${f}: cannot read tokenizer (${why})`);
      }
    };
    const json = read(file) as TokenizerJson;
    const config = fs.existsSync(configFile) ? read(configFile) : {};
    const tok = TextTokenizer.fromJson(json, config as object, file);
    tok.chatTemplate = loadChatTemplate(path.dirname(file));
    return tok;
  }

  static fromJson(json: object, config: object = {}, source = '<tokenizer.json>'): TextTokenizer {
    let tok: Tokenizer;
    try {
      tok = new Tokenizer(json, config);
    } catch (e) {
      throw new Error(`${source}: not a usable tokenizer.json (${(e as Error).message})`);
    }
    return new TextTokenizer(tok, json as TokenizerJson, source);
  }

  /** Token ids of `text`; special and added tokens written in the text map to their single ids. */
  encode(text: string): Int32Array {
    return Int32Array.from(this.tok.encode(text, { add_special_tokens: false }).ids);
  }

  decode(ids: ArrayLike<number>, { skipSpecial = false }: { skipSpecial?: boolean } = {}): string {
    if (ids.length === 0) return ''; // the library refuses an empty list
    return this.tok.decode(Array.from(ids), { skip_special_tokens: skipSpecial, clean_up_tokenization_spaces: false });
  }

  /** The id of a token; an error naming it when the vocabulary lacks it. */
  tokenId(token: string): number {
    const id = this.tok.token_to_id(token);
    if (id === undefined) throw new Error(`${this.source}: no token ${JSON.stringify(token)}`);
    return id;
  }

  idToToken(id: number): string | undefined {
    return this.tok.id_to_token(id);
  }
}
