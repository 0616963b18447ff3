// Progress for long cycle work: one rewritten line on a terminal, a plain line every few seconds
// otherwise (logs stay readable).
export function progressPrinter(
  stream: NodeJS.WriteStream = process.stderr,
): (what: string, done: number, total: number) => void {
  let last = 0;
  let lastWhat = '';
  const started = new Map<string, { at: number; done: number; total: number }>();
  return (what, done, total) => {
    const key = what.replace(/\s*\(.*\)$/, '');
    // The clock starts at the first report of a piece of work (done 0 when the caller reports its
    // start), and again when work of the same name starts over: done falls back, or the last one
    // finished (an ablation chain's "round 2 policy-sft" after the main chain's). Until a rate exists
    // the ETA of unfinished work is unknown rather than 0.
    const prev = started.get(key);
    if (!prev || done === 0 || done < prev.done || prev.done >= prev.total)
      started.set(key, { at: Date.now(), done, total });
    else started.set(key, { ...prev, done, total });
    const secs = (Date.now() - started.get(key)!.at) / 1000;
    const rate = secs > 0 ? done / secs : 0;
    const eta = done >= total ? '0 s' : rate > 0 ? `${((total - done) / rate).toFixed(0)} s` : '?';
    const line = `${what} ${done}/${total} (${rate.toFixed(1)}/s, eta ${eta})`;
    if (stream.isTTY) {
      stream.write(`\r\x1b[K${line}${done === total ? '\n' : ''}`);
    } else if (Date.now() - last > 5000 || done === total || key !== lastWhat) {
      last = Date.now();
      lastWhat = key;
      stream.write(line + '\n');
    }
  };
}
