import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import type { SimulatedCardReader } from '../drivers/simulated-reader.js';

/**
 * Line commands for a simulated reader, for the simulator and the crash test driving the device as
 * a child process: `tap <uid>`, `present <uid>`, `remove`, `bounce <uid>`, `detach`, `attach`.
 * Unknown lines are reported, never fatal.
 */
export function attachSimControl(
  input: Readable,
  reader: SimulatedCardReader,
  out: (obj: object) => void,
): () => void {
  const rl = createInterface({ input, crlfDelay: Infinity });
  rl.on('line', (line) => {
    const [cmd, arg] = line.trim().split(/\s+/, 2);
    switch (cmd) {
      case 'tap':
        if (arg) reader.tap(arg);
        return;
      case 'present':
        if (arg) reader.present(arg);
        return;
      case 'bounce':
        if (arg) reader.bounce(arg);
        return;
      case 'remove':
        reader.remove();
        return;
      case 'detach':
        reader.detach(arg ?? 'unplugged');
        return;
      case 'attach':
        reader.attach();
        return;
      case '':
      case undefined:
        return;
      default:
        out({ type: 'error', message: `unknown control command "${cmd.slice(0, 20)}"` });
    }
  });
  return () => rl.close();
}
