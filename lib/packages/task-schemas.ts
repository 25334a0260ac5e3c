/**
 * The `input` and `output` JSON Schemas a manifest task may carry, compiled with ajv: checked at
 * deploy (a schema that does not compile fails the deploy), then used by the client on each
 * submit's input and by the node on each run's output.
 *
 * ajv never fetches anything unless given `loadSchema`; on top of that a `$ref` must stay inside
 * the schema (`#…`), so what a schema means never depends on the network or on another file.
 *
 * ajv is required on the first compile, not imported: a node or a client whose tasks carry no
 * schema never pays for it (about 1 MiB of heap and 2 MiB of RSS in an idle node), and a
 * synchronous `require` keeps {@link compileTaskSchema} synchronous.
 */
import { createRequire } from 'node:module';

import type { Ajv, ErrorObject, ValidateFunction } from 'ajv';
import { z } from 'zod';

import { InputSchemaError, OutputSchemaError } from '../core/errors.js';

/** A JSON Schema: an object, or `true` / `false`. */
export type JsonSchema = boolean | Record<string, unknown>;

/** Bounds of one schema: its JSON size, and the compiled validators kept in memory. */
export const TASK_SCHEMA_LIMITS = Object.freeze({ maxBytes: 64 * 1024, cachedValidators: 256 });

/** The manifest field (`input`, `output`): the shape only; {@link compileTaskSchema} checks the rest. */
export const jsonSchemaField = z.union([z.boolean(), z.record(z.string(), z.unknown())]);

/** What a task's spec holds of schemas (every task kind has both fields, optional). */
export interface TaskSchemas {
  input?: JsonSchema;
  output?: JsonSchema;
}

const REF_KEYWORDS = new Set(['$ref', '$dynamicRef', '$recursiveRef']);

const require = createRequire(import.meta.url);
let ajvClass: typeof Ajv | undefined;

/** ajv's class, loaded on first use (ajv is CommonJS: `require` returns its exports as they are). */
function loadAjv(): typeof Ajv {
  ajvClass ??= (require('ajv') as { Ajv: typeof Ajv }).Ajv;
  return ajvClass;
}

/**
 * Compiled validators by the schema's JSON text: a package redeployed with the same schema, and
 * the many manifest reads of a node, reuse one compile. Least recently used first.
 */
const validators = new Map<string, ValidateFunction>();

/**
 * Compiles `schema` (cached); throws an Error saying why it is not a schema tydra accepts: too
 * large, a `$ref` outside itself, or refused by ajv (strict: unknown keywords, unknown formats).
 */
export function compileTaskSchema(schema: JsonSchema): ValidateFunction {
  const text = JSON.stringify(schema);
  const cached = validators.get(text);
  if (cached !== undefined) {
    validators.delete(text);
    validators.set(text, cached);
    return cached;
  }
  const bytes = Buffer.byteLength(text);
  if (bytes > TASK_SCHEMA_LIMITS.maxBytes) {
    throw new Error(`the schema is ${bytes} bytes of JSON, more than the ${TASK_SCHEMA_LIMITS.maxBytes} allowed`);
  }
  checkLocalRefs(schema);
  // One ajv per schema: a shared one would keep every schema it ever compiled, and refuse a
  // second version of a schema with the same `$id`.
  const AjvClass = loadAjv();
  const ajv = new AjvClass({
    allErrors: false,
    strict: true,
    // Common, valid schemas (`properties` without `type: "object"`, `required` naming a property
    // left to `additionalProperties`) are not mistakes: keep strict for unknown keywords and formats.
    strictTypes: false,
    strictRequired: false,
    strictTuples: false,
    logger: false,
  });
  const validate = compileOrExplain(ajv, schema);
  validators.set(text, validate);
  if (validators.size > TASK_SCHEMA_LIMITS.cachedValidators) {
    const oldest = validators.keys().next().value;
    if (oldest !== undefined) {
      validators.delete(oldest);
    }
  }
  return validate;
}

/**
 * `ajv.compile`, with its strict-mode message for a `format` reworded: ajv says the format is
 * "ignored" (its wording for non-strict mode) while strict mode refuses the schema, and it ships
 * no formats at all, so every `format` lands here.
 */
function compileOrExplain(ajv: Ajv, schema: JsonSchema): ValidateFunction {
  try {
    return ajv.compile(schema);
  } catch (error) {
    const format = /^unknown format "(.*)" ignored in schema at path "(.*)"$/.exec((error as Error).message);
    if (format === null) {
      throw error;
    }
    throw new Error(
      `unknown format "${format[1]}" at path "${format[2]}": tydra checks no formats, so a schema with "format" is refused (use "pattern")`,
      { cause: error },
    );
  }
}

/** The first way `value` breaks `schema` (`{ path: '/name', reason: 'must be string' }`), or undefined. */
export function schemaMismatch(schema: JsonSchema, value: unknown): { path: string; reason: string } | undefined {
  const validate = compileTaskSchema(schema);
  if (validate(value)) {
    return undefined;
  }
  const error = validate.errors?.[0];
  return { path: error?.instancePath || '(root)', reason: error === undefined ? 'does not match' : reasonOf(error) };
}

/** Throws `InputSchemaError` when `input` does not match the task's `input` schema. */
export function checkTaskInput(task: string, spec: TaskSchemas, input: unknown): void {
  if (spec.input === undefined) {
    return;
  }
  const mismatch = schemaMismatch(spec.input, input);
  if (mismatch !== undefined) {
    throw new InputSchemaError(`tasks.${task}.input`, mismatch.path, mismatch.reason);
  }
}

/** Throws `OutputSchemaError` (the TaskInstance fails for good) when `output` does not match. */
export function checkTaskOutput(task: string, spec: TaskSchemas, output: unknown, instanceId: string): void {
  if (spec.output === undefined) {
    return;
  }
  // The value came out of the sandbox as JSON: it is what the client receives.
  const mismatch = schemaMismatch(spec.output, output);
  if (mismatch !== undefined) {
    throw new OutputSchemaError(instanceId, `tasks.${task}.output`, mismatch.path, mismatch.reason);
  }
}

function reasonOf(error: ErrorObject): string {
  const message = error.message ?? `fails \`${error.keyword}\``;
  const extra = (error.params as { additionalProperty?: unknown }).additionalProperty;
  return typeof extra === 'string' ? `${message} (\`${extra}\`)` : message;
}

/** Refuses a `$ref` to anything but a place in the schema itself; iterative, for deep schemas. */
function checkLocalRefs(schema: JsonSchema): void {
  const pending: unknown[] = [schema];
  while (pending.length > 0) {
    const node = pending.pop();
    if (node === null || typeof node !== 'object') {
      continue;
    }
    for (const [key, value] of Object.entries(node)) {
      if (REF_KEYWORDS.has(key) && typeof value === 'string' && !value.startsWith('#')) {
        throw new Error(`\`${key}\` must point inside the schema (start with \`#\`), got \`${value}\``);
      }
      pending.push(value);
    }
  }
}
