/**
 * A way to cut a loop's sleep short from outside: the loop takes `signal` *before* the work whose
 * outcome decides how long it sleeps, and sleeps with it; `wake()` aborts that signal and arms a
 * fresh one. A wake that arrives while the work runs therefore still ends the sleep that follows.
 */
export class Wakeup {
  private controller = new AbortController();

  /** The signal the next `wake()` aborts. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Ends the current sleep (or the next one, if the loop is between taking the signal and sleeping). */
  wake(): void {
    const c = this.controller;
    this.controller = new AbortController();
    c.abort();
  }
}
