/**
 * sleep() (protocol/src/clock.ts) over several signals: it resolves on whichever aborts first or on its
 * timer, and leaves no listener behind on any of them. It replaced `AbortSignal.any` in the gateway's
 * forwarder, which kept a WeakRef on its long-lived stop signal per idle wait (the soak row's heap growth).
 */
import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import { sleep, systemClock } from '../../protocol/index.js';

describe('sleep over several signals', () => {
  it('resolves when the second signal aborts and removes its listener from both', async () => {
    const stop = new AbortController();
    const wake = new AbortController();
    const p = sleep(systemClock, 60_000, [stop.signal, wake.signal]);
    expect(getEventListeners(stop.signal, 'abort')).toHaveLength(1);
    wake.abort();
    await p;
    expect(getEventListeners(stop.signal, 'abort')).toHaveLength(0);
    expect(getEventListeners(wake.signal, 'abort')).toHaveLength(0);
  });

  it('resolves on its timer and removes its listeners; a thousand waits leave nothing on the long-lived signal', async () => {
    const stop = new AbortController();
    for (let i = 0; i < 1000; i++) await sleep(systemClock, 0, [stop.signal, new AbortController().signal]);
    expect(getEventListeners(stop.signal, 'abort')).toHaveLength(0);
  });

  it('resolves at once when a signal is already aborted; one signal still works', async () => {
    const done = new AbortController();
    done.abort();
    await sleep(systemClock, 60_000, [new AbortController().signal, done.signal]);
    await sleep(systemClock, 60_000, done.signal);
    const one = new AbortController();
    const p = sleep(systemClock, 60_000, one.signal);
    one.abort();
    await p;
    expect(getEventListeners(one.signal, 'abort')).toHaveLength(0);
  });
});
