// Step 1. A sandbox has no network: "fetching" here reads the text bundled with the package.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export default function fetch(input) {
  const text = input?.text ?? readFileSync(join(process.env.TYDRA_PACKAGE_DIR, 'text.txt'), 'utf8');
  return { text: Array.from({ length: input?.copies ?? 20 }, () => text).join('\n') };
}
