/**
 * The webapp's Prometheus metrics, kept as plain counters and written in the text exposition
 * format by hand: a handful of series do not justify a metrics library on the request path.
 */
export class WebappMetrics {
  private readonly outcomes = new Map<string, number>();
  private forwardSeconds = 0;
  private forwardCount = 0;
  private attempts = 0;

  /** Counts one request by outcome ("ok", "no_primary", "overloaded", "bad_request", "too_large", "error"). */
  request(outcome: string): void {
    this.outcomes.set(outcome, (this.outcomes.get(outcome) ?? 0) + 1);
  }

  forwarded(seconds: number, attempts: number): void {
    this.forwardSeconds += seconds;
    this.forwardCount += 1;
    this.attempts += attempts;
  }

  render(epochs: { shard: number; epoch: number; owner: string | null }[]): string {
    const lines = [
      "# HELP multiconnect_requests_total API requests handled by this webapp, by outcome.",
      "# TYPE multiconnect_requests_total counter",
      ...[...this.outcomes].map(([o, n]) => `multiconnect_requests_total{outcome="${o}"} ${n}`),
      "# HELP multiconnect_forward_seconds Time to forward a request and get the coreapp's answer.",
      "# TYPE multiconnect_forward_seconds summary",
      `multiconnect_forward_seconds_sum ${this.forwardSeconds}`,
      `multiconnect_forward_seconds_count ${this.forwardCount}`,
      "# HELP multiconnect_forward_attempts_total Forwarding attempts, including retries during failovers.",
      "# TYPE multiconnect_forward_attempts_total counter",
      `multiconnect_forward_attempts_total ${this.attempts}`,
      "# HELP multiconnect_shard_epoch The epoch of each shard's assignment as this webapp routes it.",
      "# TYPE multiconnect_shard_epoch gauge",
      ...epochs.map((e) => `multiconnect_shard_epoch{shard="${e.shard}"} ${e.epoch}`),
    ];
    return `${lines.join("\n")}\n`;
  }
}
