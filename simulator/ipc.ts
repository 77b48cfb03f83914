/** IPC between the simulator and its child processes (a reader or the gateway on virtual time). */
import type { ChildProcess } from 'node:child_process';

export type ParentMessage =
  | { type: 'tick'; now: number }
  | { type: 'act'; kind: 'tap' | 'present' | 'remove' | 'bounce'; uid: string }
  | { type: 'arm-mid-write' }
  | { type: 'arm-after-feedback' }
  | { type: 'sync' }
  | { type: 'call'; id: number; op: string; args: unknown }
  | { type: 'stop'; id: number };

export type ChildMessage =
  | { type: 'ready'; mqttPort?: number; adminUrl?: string }
  | { type: 'signal'; pattern: string }
  | { type: 'result'; id: number; ok: boolean; value?: unknown; error?: string };

/** Request/response over a child's IPC channel; pending calls fail when the child exits. */
export class IpcCaller {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  constructor(private readonly child: ChildProcess) {
    child.on('message', (m: ChildMessage) => {
      if (m.type !== 'result') return;
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.ok) p.resolve(m.value);
      else p.reject(new Error(m.error ?? 'child call failed'));
    });
    child.on('exit', () => {
      for (const p of this.pending.values()) p.reject(new Error('child exited'));
      this.pending.clear();
    });
  }

  call<T>(op: string, args: unknown = null): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      if (!send(this.child, { type: 'call', id, op, args })) {
        this.pending.delete(id);
        reject(new Error('child is not connected'));
      }
    });
  }

  stop(): Promise<void> {
    const id = this.nextId++;
    return new Promise<void>((resolve, reject) => {
      this.pending.set(id, { resolve: () => resolve(), reject });
      if (!send(this.child, { type: 'stop', id })) {
        this.pending.delete(id);
        resolve();
      }
    });
  }
}

export function send(child: ChildProcess, m: ParentMessage): boolean {
  if (!child.connected) return false;
  try {
    child.send(m, () => undefined); // a callback turns a late EPIPE into a no-op, not an 'error' event
    return true;
  } catch {
    return false;
  }
}

/** Resolves when the child has exited (at once if it already has). */
export function exitOf(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}
