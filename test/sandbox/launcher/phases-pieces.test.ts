/** The pure pieces of the phases, without a sandbox: the unit pump, stdin writing, runner messages. */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';

import { UnitPump } from '../../../sandbox/launcher/phases/unit-pump.js';
import { writeLine, writeLines } from '../../../sandbox/launcher/phases/write-lines.js';
import { parseRunnerMessage } from '../../../sandbox/launcher/runner-message.js';

describe('UnitPump', () => {
  it('hands units to onUnit one at a time and in order, acknowledging each', async () => {
    const events: string[] = [];
    let release: (() => void) | undefined;
    const pump = new UnitPump({
      onUnit: (unit) => {
        events.push(`unit ${String(unit)}`);
        return new Promise<void>((resolve) => (release = resolve));
      },
      onAck: () => events.push('ack'),
      onBusy: (busy) => events.push(busy ? 'busy' : 'idle'),
      onError: (error) => events.push(`error ${String(error)}`),
    });
    pump.push('a');
    pump.push('b');
    assert.equal(pump.waiting, 2);
    assert.deepEqual(events, ['busy', 'unit a']);
    release?.();
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(events, ['busy', 'unit a', 'ack', 'unit b']);
    const idle = pump.idle();
    release?.();
    await idle;
    assert.deepEqual(events, ['busy', 'unit a', 'ack', 'unit b', 'ack', 'idle']);
    assert.equal(pump.received, 2);
    assert.equal(pump.waiting, 0);
  });

  it('stops at the first rejected onUnit, reports it once, and drops what waits', async () => {
    const seen: unknown[] = [];
    const errors: unknown[] = [];
    const pump = new UnitPump({
      onUnit: (unit) => {
        seen.push(unit);
        return unit === 2 ? Promise.reject(new Error('full')) : undefined;
      },
      onAck: () => undefined,
      onBusy: () => undefined,
      onError: (error) => errors.push(error),
    });
    [1, 2, 3, 4].forEach((unit) => pump.push(unit));
    await pump.idle();
    pump.push(5);
    assert.deepEqual(seen, [1, 2]);
    assert.equal(errors.length, 1);
  });

  it('stop() drops what waits: nothing more reaches onUnit, the call in progress still settles', async () => {
    const seen: unknown[] = [];
    let release: (() => void) | undefined;
    const pump = new UnitPump({
      onUnit: (unit) => {
        seen.push(unit);
        return new Promise<void>((resolve) => (release = resolve));
      },
      onAck: () => assert.fail('no unit is acknowledged after stop()'),
      onBusy: () => undefined,
      onError: (error) => assert.fail(String(error)),
    });
    [1, 2, 3].forEach((unit) => pump.push(unit));
    pump.stop();
    const idle = pump.idle();
    release?.();
    await idle;
    pump.push(4);
    assert.deepEqual(seen, [1]);
  });
});

describe('writeLine / writeLines', () => {
  /** A slow reader: takes a write only when `next()` is called. */
  function slowSink(): { stream: Writable; written: string[]; next(): void } {
    const pending: Array<() => void> = [];
    const written: string[] = [];
    const stream = new Writable({
      highWaterMark: 4,
      write(chunk: Buffer, _encoding, callback) {
        written.push(String(chunk));
        pending.push(callback);
      },
    });
    return { stream, written, next: () => pending.shift()?.() };
  }

  it('waits for drain when the pipe is full, and pulls the next item only then', async () => {
    const sink = slowSink();
    let pulled = 0;
    const items = (async function* () {
      for (let i = 0; i < 3; i += 1) {
        await Promise.resolve();
        pulled += 1;
        yield i;
      }
    })();
    const writing = writeLines(sink.stream, items, (item) => `item ${String(item)}\n`, 'end\n');
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(pulled, 1, 'the first write filled the pipe');
    for (let i = 0; i < 4; i += 1) {
      sink.next();
      await new Promise((resolve) => setImmediate(resolve));
    }
    await writing;
    assert.deepEqual(sink.written, ['item 0\n', 'item 1\n', 'item 2\n', 'end\n']);
    assert.equal(sink.stream.writableEnded, true);
  });

  it('resolves false when stdin closes while it waits, or is closed already', async () => {
    const sink = slowSink();
    const waiting = writeLine(sink.stream, 'a line longer than four bytes\n');
    sink.stream.destroy();
    assert.equal(await waiting, false);
    assert.equal(await writeLine(sink.stream, 'more\n'), false);
  });
});

describe('parseRunnerMessage, phase messages', () => {
  it('accepts unit, unit-result and unit-error, and refuses a bad index', () => {
    assert.deepEqual(parseRunnerMessage('{"type":"unit","value":[1]}'), { type: 'unit', value: [1] });
    assert.deepEqual(parseRunnerMessage('{"type":"unit-result","index":3,"value":null}'), {
      type: 'unit-result',
      index: 3,
      value: null,
    });
    assert.deepEqual(parseRunnerMessage('{"type":"unit-error","index":0,"name":"E","message":"m"}'), {
      type: 'unit-error',
      index: 0,
      name: 'E',
      message: 'm',
    });
    assert.equal(parseRunnerMessage('{"type":"unit-result","index":-1,"value":1}'), undefined);
    assert.equal(parseRunnerMessage('{"type":"unit-error","index":1.5,"name":"E","message":"m"}'), undefined);
  });
});
