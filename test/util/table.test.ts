// Tables: text pads columns (names left, numbers right), markdown uses pipes with right-aligned numbers.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { renderTable } from '../../src/util/table';

test('renderTable: text and markdown, against hand-written tables', () => {
  const header = ['arm', 'acc %'];
  const rows = [
    ['sftSeed', '66.7'],
    ['grpoCycle', '72.9'],
  ];
  assert.equal(
    renderTable(header, rows, 'text'),
    ['arm        acc %', '---------  -----', 'sftSeed     66.7', 'grpoCycle   72.9'].join('\n'),
  );
  assert.equal(
    renderTable(header, rows, 'markdown'),
    ['| arm | acc % |', '| --- | ---: |', '| sftSeed | 66.7 |', '| grpoCycle | 72.9 |'].join('\n'),
  );
});
