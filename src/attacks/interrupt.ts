// Stopping an attack between its iterations. Signal handlers only run when the event loop
// turns, and an attack's iterations are synchronous compute between already-resolved awaits,
// so a Ctrl-C during a 200-step CW would wait for the whole batch. Attacks await a yield point
// between iterations: it lets the loop turn once and throws AttackInterrupted when a stop was
// requested. The evaluator then drops the unfinished batch and saves its state.

export class AttackInterrupted extends Error {
  constructor() {
    super('attack interrupted');
    this.name = 'AttackInterrupted';
  }
}

/** Awaited between iterations; throws AttackInterrupted once a stop was requested. */
export type YieldPoint = () => Promise<void>;

export function yieldPointFor(shouldStop: () => boolean): YieldPoint {
  return async () => {
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (shouldStop()) throw new AttackInterrupted();
  };
}

/** For callers with nothing to interrupt (training's adversary, tests). */
export const noYield: YieldPoint = () => Promise.resolve();
