// The shared run infrastructure: flat configs (file + flags), progress lines, metrics files, and
// atomic training checkpoints (run state).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { Command, CommanderError } from 'commander';
import {
  addConfigOptions,
  readConfigFile,
  resolveConfig,
  saveResolvedConfig,
  type ConfigSchema,
} from '../../src/cli/config';
import {
  listCheckpoints,
  loadRunCheckpoint,
  resolveCheckpoint,
  saveRunCheckpoint,
  TRAINER_STATE_VERSION,
  type TrainerState,
} from '../../src/train/run_state';
import { readTensors, writeTensors } from '../../src/model/tensor_files';
import { trainSft, type SftExample } from '../../src/train/sft';
import { Model, packSequences, nextTokenLabels, tinyConfig, Tensor } from '../../src/index';
import { readMetrics, MetricsLogger } from '../../src/report/metrics';
import { formatDuration, Progress } from '../../src/report/progress';
import { tempDir } from '../helpers/temp_dir';

const textExamples: SftExample[] = Array.from({ length: 12 }, (_, i) => ({
  images: [],
  user: `Which option is number ${i % 4}?`,
  reply: `<answer> ${'ABCD'[i % 4]} </answer>`,
}));

test('trainSft steps follow the schedule; a resume with other batching options is refused by name', async () => {
  const m = await Model.create(tinyConfig('qwen2_vl'), { seed: 1 });
  const out = tempDir('sft-schedule');
  const r = await trainSft(m, textExamples, {
    lr: 1e-3,
    maxSteps: 4,
    warmupSteps: 2,
    minLrRatio: 0,
    tokenBudget: 200,
    out,
    progress: false,
  });
  assert.deepEqual(
    r.history.map((h) => h.lr),
    [5e-4, 1e-3, 1e-3, 0],
  );
  assert.ok(r.history.every((h) => Number.isFinite(h.loss) && h.loss > 0));
  await assert.rejects(
    trainSft(m, textExamples, { lr: 1e-3, maxSteps: 4, tokenBudget: 200, seed: 9, out, resume: true, progress: false }),
    /resume: .*step-4 belongs to a different run \(seed: checkpoint 0, now 9\)/,
  );
  await m.dispose();
});

const schema: ConfigSchema = [
  { key: 'name', type: 'string', required: true, help: 'a name' },
  { key: 'lr', type: 'number', default: 0.1, min: 0, help: 'learning rate' },
  { key: 'epochs', type: 'int', default: 1, min: 0, help: 'epochs' },
  { key: 'freezeVision', type: 'boolean', default: false, help: 'freeze' },
  { key: 'style', type: 'string', default: 'answer', choices: ['answer', 'think'], help: 'style' },
];

function parse(args: string[]): Record<string, unknown> {
  const cmd = addConfigOptions(new Command('t').exitOverride().configureOutput({ writeErr: () => {} }), schema);
  cmd.parse(args, { from: 'user' });
  return resolveConfig(cmd, schema);
}

test('config: defaults < config file (JSON or YAML, any key spelling) < flags; unknown keys and bad values name the file and key', async () => {
  const dir = tempDir('run-config');
  const json = path.join(dir, 'run.json');
  fs.writeFileSync(json, JSON.stringify({ name: 'a', lr: 0.2, freezeVision: true }));
  const yaml = path.join(dir, 'run.yaml');
  fs.writeFileSync(yaml, '# comment\nname: b\nfreeze-vision: true\nepochs: 3\nstyle: think\n');

  assert.deepEqual(parse(['--name', 'x']), { name: 'x', lr: 0.1, epochs: 1, freezeVision: false, style: 'answer' });
  assert.deepEqual(parse(['--config', json]), { name: 'a', lr: 0.2, epochs: 1, freezeVision: true, style: 'answer' });
  assert.deepEqual(parse(['--config', json, '--lr', '0.5', '--no-freeze-vision', '--name', 'c']), {
    name: 'c',
    lr: 0.5,
    epochs: 1,
    freezeVision: false,
    style: 'answer',
  });
  assert.deepEqual(parse(['--config', yaml, '--epochs', '7']), {
    name: 'b',
    lr: 0.1,
    epochs: 7,
    freezeVision: true,
    style: 'think',
  });

  const unknown = path.join(dir, 'bad.yaml');
  fs.writeFileSync(unknown, 'name: a\nlearning_rate: 0.1\n');
  assert.throws(
    () => parse(['--config', unknown]),
    new RegExp(
      `^Error: ${unknown.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: unknown key "learning_rate" \\(known keys: name, lr, epochs, freezeVision, style\\)$`,
    ),
  );
  const badType = path.join(dir, 'type.json');
  fs.writeFileSync(badType, JSON.stringify({ name: 'a', epochs: 1.5 }));
  assert.throws(() => parse(['--config', badType]), /type\.json: key "epochs" expects a whole number, got 1\.5/);
  fs.writeFileSync(badType, JSON.stringify({ name: 'a', style: 'long' }));
  assert.throws(() => parse(['--config', badType]), /type\.json: key "style" must be one of answer, think, got "long"/);
  fs.writeFileSync(badType, '[1, 2]');
  assert.throws(() => parse(['--config', badType]), /type\.json: a config file must hold one mapping/);
  fs.writeFileSync(badType, '{"name": ');
  assert.throws(() => parse(['--config', badType]), /type\.json: not valid JSON/);
  assert.throws(
    () => parse(['--config', path.join(dir, 'missing.yaml')]),
    /missing\.yaml: cannot read the config file \(ENOENT\)/,
  );
  assert.throws(() => parse([]), /missing --name \(or "name" in a --config file\)/);
  assert.throws(
    () => parse(['--name', 'a', '--lr', 'fast']),
    (e: unknown) => e instanceof CommanderError && /--lr expects a number, got "fast"/.test(e.message),
  );
  assert.throws(
    () => parse(['--name', 'a', '--lr', '-1']),
    (e: unknown) => e instanceof CommanderError && /--lr must be >= 0/.test(e.message),
  );

  // The saved resolved config reads back as a config file and reproduces the run's options.
  const resolved = parse(['--config', yaml, '--lr', '0.3']);
  const saved = await saveResolvedConfig(path.join(dir, 'out'), resolved);
  assert.deepEqual(readConfigFile(saved, schema), resolved);
  assert.deepEqual(parse(['--config', saved]), resolved);
});

function capture(tty: boolean) {
  const writes: string[] = [];
  return {
    writes,
    stream: Object.assign(
      { write: (s: string) => (writes.push(s), true) },
      tty ? { isTTY: true, columns: 200 } : {},
    ) as unknown as NodeJS.WriteStream,
  };
}

test('progress: plain lines at most every interval (first and last always), rate and ETA; a bar on a terminal', () => {
  let now = 0;
  const plain = capture(false);
  const p = new Progress({ label: 'sft', total: 10, unit: 'step', stream: plain.stream, now: () => now });
  assert.equal(p.tty, false);
  const at = (t: number, n: number, info?: Record<string, number>) => {
    now = t;
    p.update(n, info);
  };
  at(0, 0);
  at(1000, 1, { loss: 2.5 });
  at(4999, 4);
  at(5000, 5, { loss: 1.25 });
  at(6000, 6);
  at(9000, 10, { loss: 0.5 });
  p.done({ loss: 0.5 });
  assert.deepEqual(plain.writes, [
    'sft 0/10   0% 0.00 step/s elapsed 0:00 ETA ?\n',
    'sft 5/10  50% 1.00 step/s elapsed 0:05 ETA 0:05 loss=1.25\n',
    'sft 10/10 100% 1.11 step/s elapsed 0:09 ETA 0:00 loss=0.5\n',
  ]);

  now = 0;
  const term = capture(true);
  const q = new Progress({ label: 'eval', total: 4, stream: term.stream, now: () => now });
  now = 2000;
  q.update(2);
  now = 4000;
  q.update(4);
  q.done();
  assert.ok(term.writes.every((w) => w === '\n' || w.startsWith('\r')));
  // The line ends with the terminal's erase-line sequence (ESC [K).
  const bar = '#'.repeat(20);
  assert.equal(term.writes[term.writes.length - 2], `\reval [${bar}] 4/4 100% 1.00 it/s elapsed 0:04 ETA 0:00\u001b[K`);
  assert.equal(term.writes[term.writes.length - 1], '\n');

  const slow = capture(false);
  now = 0;
  const s = new Progress({ label: 'gen', stream: slow.stream, now: () => now });
  now = 8000;
  s.update(2);
  s.done();
  assert.deepEqual(slow.writes, ['gen 2 4.00 s/it elapsed 0:08\n']);
  assert.equal(formatDuration(3725), '1:02:05');
  assert.equal(formatDuration(59.6), '1:00');
});

test("metrics: JSONL + TensorBoard under the run folder; a resume drops the dead run's lines past its checkpoint", () => {
  const dir = tempDir('run-metrics');
  let t = 100;
  const m = new MetricsLogger(dir, { now: () => t++ });
  m.log(1, { 'train/loss': 2, 'train/lr': 1e-3 });
  m.log(2, { 'train/loss': 1.5 });
  m.log(2, { 'eval/loss': NaN });
  m.log(3, { 'train/loss': 1 });
  m.flush();
  assert.deepEqual(readMetrics(path.join(dir, 'metrics.jsonl')), [
    { step: 1, time: 100, 'train/loss': 2, 'train/lr': 1e-3 },
    { step: 2, time: 101, 'train/loss': 1.5 },
    { step: 2, time: 102, 'eval/loss': null },
    { step: 3, time: 103, 'train/loss': 1 },
  ] as unknown as ReturnType<typeof readMetrics>);
  m.close();
  const events = fs.readdirSync(path.join(dir, 'tensorboard'));
  assert.equal(events.length, 1);
  assert.match(events[0], /^events\.out\.tfevents\./);
  assert.ok(fs.statSync(path.join(dir, 'tensorboard', events[0])).size > 100);

  fs.appendFileSync(path.join(dir, 'metrics.jsonl'), '{"step": 4, "train/lo'); // torn by a crash
  const again = new MetricsLogger(dir, { resumeStep: 2, tensorboard: false, now: () => 200 });
  again.log(3, { 'train/loss': 0.9 });
  again.close();
  assert.deepEqual(
    readMetrics(path.join(dir, 'metrics.jsonl')).map((r) => [r.step, r['train/loss'] ?? r['eval/loss']]),
    [
      [1, 2],
      [2, 1.5],
      [2, null],
      [3, 0.9],
    ],
  );
  fs.writeFileSync(path.join(dir, 'bad.jsonl'), '{"step": 1}\nnot json\n{"step": 2}\n');
  assert.throws(() => readMetrics(path.join(dir, 'bad.jsonl')), /bad\.jsonl:2: not a JSON object/);
});

function state(step: number): TrainerState {
  return {
    version: TRAINER_STATE_VERSION,
    trainer: 'test',
    step,
    epoch: 0,
    batchIndex: step,
    seed: 3,
    scheduler: { step, totalSteps: 10, warmupSteps: 1, lr: 1e-3, minLrRatio: 0 },
    tokensSeen: 0,
    samplesSeen: 0,
    fingerprint: { data: 1 },
    savedAt: new Date(0).toISOString(),
  };
}

const bytesOf = (t: Tensor) => {
  const a = t.toArray();
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
};

test('run checkpoints: weights + optimizer + trainer state round-trip bit-exactly; keep last K; latest skips incomplete folders', async () => {
  const dir = tempDir('run-checkpoints');
  const m = await Model.create(tinyConfig('qwen2_vl'), { seed: 5 });
  const batch = packSequences([Int32Array.from([1, 2, 3, 4, 5]), Int32Array.from([9, 8, 7])]);
  const labels = nextTokenLabels(batch.inputIds, batch.cuSeqlens);
  for (let step = 1; step <= 3; step++) {
    await m.backwardSft(batch, { labels });
    await m.optimizerStep({ lr: 1e-2 });
    await saveRunCheckpoint(dir, m, state(step), { keepLast: 2 });
  }
  assert.deepEqual(
    listCheckpoints(dir).map((c) => c.step),
    [2, 3],
  );
  const latest = resolveCheckpoint(dir, 'latest');
  assert.equal(latest, path.join(dir, 'checkpoints', 'step-3'));
  for (const f of ['config.json', 'model.safetensors', 'optimizer.safetensors', 'trainer_state.json'])
    assert.ok(fs.existsSync(path.join(latest, f)), f);
  assert.equal(resolveCheckpoint(dir, 2), path.join(dir, 'checkpoints', 'step-2'));
  assert.equal(resolveCheckpoint(dir, latest), latest);

  // A half-written checkpoint (no trainer_state.json) and a temp folder are not "latest".
  fs.mkdirSync(path.join(dir, 'checkpoints', 'step-9'));
  fs.writeFileSync(path.join(dir, 'checkpoints', 'step-9', 'config.json'), '{}');
  fs.mkdirSync(path.join(dir, 'checkpoints', '.step-10.tmp-999999'));
  assert.equal(resolveCheckpoint(dir, true), latest);
  assert.throws(() => resolveCheckpoint(dir, 9), /step-9 is not a complete checkpoint \(no trainer_state\.json\)/);
  assert.throws(() => resolveCheckpoint(tempDir('no-checkpoint'), 'latest'), /no complete checkpoint under/);

  const fresh = await Model.create(tinyConfig('qwen2_vl'), { seed: 6 });
  const { checksums, ...st } = await loadRunCheckpoint(latest, fresh);
  assert.deepEqual(st, state(3));
  assert.deepEqual(Object.keys(checksums ?? {}).sort(), ['config.json', 'model.safetensors', 'optimizer.safetensors']);
  const [a, b] = [m.parameters(), fresh.parameters()];
  for (const k of Object.keys(a)) assert.equal(Buffer.compare(bytesOf(a[k]), bytesOf(b[k])), 0, k);
  const [oa, ob] = [m.optimizerState(), fresh.optimizerState()];
  assert.deepEqual(Object.keys(ob).sort(), Object.keys(oa).sort());
  assert.equal(ob.step.toArray()[0], 3);
  for (const k of Object.keys(oa)) assert.equal(Buffer.compare(bytesOf(oa[k]), bytesOf(ob[k])), 0, k);
  // The next step is the same from either.
  const la = (await m.backwardSft(batch, { labels })).loss;
  const lb = (await fresh.backwardSft(batch, { labels })).loss;
  assert.equal(la, lb);
  await m.dispose();
  await fresh.dispose();

  // A later save prunes the leftover temp folder of a dead process.
  const again = await Model.create(tinyConfig('qwen2_vl'), { seed: 5 });
  await saveRunCheckpoint(dir, again, state(4), { keepLast: 2 });
  await again.dispose();
  assert.ok(!fs.existsSync(path.join(dir, 'checkpoints', '.step-10.tmp-999999')));
  assert.deepEqual(
    listCheckpoints(dir).map((c) => c.step),
    [3, 4],
  );

  const file = path.join(dir, 't.safetensors');
  await writeTensors(file, {
    x: new Tensor(Float64Array.from([1.5, -2]), [2]),
    y: new Tensor(Int32Array.from([1, 2, 3, 4, 5, 6]), [2, 3]),
  });
  const back = await readTensors(file);
  assert.deepEqual(Array.from(back.x.toArray() as Float64Array), [1.5, -2]);
  assert.deepEqual(back.y.shape, [2, 3]);
  assert.deepEqual(Array.from(back.y.toArray() as Int32Array), [1, 2, 3, 4, 5, 6]);
});
