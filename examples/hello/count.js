// Counts to input.to (at most 100), pausing between steps; stops early when cancelled.
export default async function count(input, ctx) {
  const to = Math.min(Number(input?.to ?? 10), 100);
  for (let i = 1; i <= to; i += 1) {
    if (ctx.signal.aborted) throw new Error('cancelled');
    await new Promise((resolve) => setTimeout(resolve, 50));
    ctx.progress(Math.round((i / to) * 100));
  }
  return { counted: to };
}
