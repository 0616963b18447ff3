// bench/csv.ts: parsing what csvField writes, appending under a matching header, and rewriting the
// file under the union of the columns when a bench gained one (the bug that shifted grpo_loss.csv
// and grpo_step.csv by a column).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { csvField, csvWithRows, parseCsv } from '../../bench/csv';

test('parseCsv reads back csvField: commas, quotes, newlines, empty fields', () => {
  const fields = ['a,b', 'say "hi"', 'two\nlines', '', 'plain', csvField(0.123456789)];
  const text = fields.map(csvField).join(',') + '\n' + 'x,,y\n';
  assert.deepEqual(parseCsv(text), [
    ['a,b', 'say "hi"', 'two\nlines', '', 'plain', '0.123457'],
    ['x', '', 'y'],
  ]);
});

test('csvWithRows: a new file gets its header; the same columns append', () => {
  const first = csvWithRows('', [{ t: 1, ms: 2.5 }]);
  assert.deepEqual(first, { text: 't,ms\n1,2.50000\n', rewrite: true });
  const second = csvWithRows(first.text, [{ t: 2, ms: 3 }]);
  assert.deepEqual(second, { text: '2,3\n', rewrite: false });
});

test('csvWithRows: a new column rewrites the file under the union, old rows leave it empty', () => {
  const old = 't,op,ms,gpu\n1,loss,2,none\n2,"a,b",3,none\n';
  const out = csvWithRows(old, [{ t: 3, op: 'loss', variant: 'cispo', ms: 4, gpu: 'none' }]);
  assert.equal(out.rewrite, true);
  assert.deepEqual(parseCsv(out.text), [
    ['t', 'op', 'variant', 'ms', 'gpu'],
    ['1', 'loss', '', '2', 'none'],
    ['2', 'a,b', '', '3', 'none'],
    ['3', 'loss', 'cispo', '4', 'none'],
  ]);
  // a column only the old rows have is kept, after the new ones
  const fewer = csvWithRows(old, [{ t: 4, op: 'x', gpu: 'none' }]);
  assert.deepEqual(parseCsv(fewer.text)[0], ['t', 'op', 'gpu', 'ms']);
  assert.deepEqual(parseCsv(fewer.text)[3], ['4', 'x', 'none', '']);
});
