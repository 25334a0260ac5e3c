// A JavaScript task: the default export gets the input and a context, and returns JSON.
export default async function greet(input, ctx) {
  const name = typeof input?.name === 'string' ? input.name : 'world';
  ctx.log(`greeting ${name} (attempt ${ctx.attempt})`);
  ctx.progress(100);
  return { greeting: `Hello, ${name}!`, instanceId: ctx.instanceId };
}
