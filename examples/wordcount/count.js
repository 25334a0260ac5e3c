// A ParallelTask: split → workunits on every node → reduce.
// split and reduce run once, each in its own sandbox; work runs in sandboxes kept for this
// TaskInstance, many units each. Everything is plain JSON in and out.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Yields one workunit per `linesPerUnit` lines; a generator, so units stream out as they are cut. */
export function* split(input) {
  const text = input?.text ?? readFileSync(join(process.env.TYDRA_PACKAGE_DIR, 'corpus.txt'), 'utf8');
  const lines = text.split('\n').filter((line) => line.trim() !== '');
  const per = input?.linesPerUnit ?? 4;
  for (let copy = 0; copy < (input?.copies ?? 50); copy += 1) {
    for (let first = 0; first < lines.length; first += per) {
      yield lines.slice(first, first + per);
    }
  }
}

/** Counts the words of one chunk. */
export function work(lines, ctx) {
  const counts = {};
  for (const word of lines.join(' ').toLowerCase().match(/[a-z']+/g) ?? []) {
    counts[word] = (counts[word] ?? 0) + 1;
  }
  if (ctx.index % 100 === 0) {
    ctx.log(`chunk ${ctx.index}: ${Object.keys(counts).length} distinct words`);
  }
  return counts;
}

/** Merges the counts; `results` is an async iterable in split order, never all in memory at once. */
export async function reduce(results, input, ctx) {
  const totals = new Map();
  let words = 0;
  for await (const counts of results) {
    for (const [word, n] of Object.entries(counts ?? {})) {
      totals.set(word, (totals.get(word) ?? 0) + n);
      words += n;
    }
  }
  const top = [...totals].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).slice(0, input?.top ?? 5);
  return { words, distinct: totals.size, top: Object.fromEntries(top), failedUnits: ctx.failures.length };
}
