/**
 * A Node service that calls the cluster from its own code, with no webapp hop: a webapp embedded
 * here (no listener) routes each call straight to its shard's primary coreapp over the
 * authenticated transport, and retries through a failover what certainly did not run.
 * `tsx examples/caller.ts +15550100 +15550101` sends one message per shard key and prints the answers.
 */
import { createWebapp, WebappRequestError } from "multiconnect";
import { clusterConfig } from "./config.js";

const webapp = await createWebapp({ config: clusterConfig(), name: "caller", listen: false });
await webapp.start({ signal: AbortSignal.timeout(60_000) });
try {
  for (const phone of process.argv.slice(2)) {
    try {
      const answer = await webapp.request({
        shardKey: phone,
        method: "POST",
        path: "/v1/messages",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ to: phone, text: "hello" }),
      });
      console.log(`${phone}: ${answer.status} ${answer.body.toString()}`);
    } catch (error) {
      // No answer: mayHaveRun says whether sending it again could send the message twice.
      if (!(error instanceof WebappRequestError)) throw error;
      console.log(`${phone}: ${error.status} ${error.apiCode} ${error.mayHaveRun ? "may have run" : "did not run"}: ${error.details}`);
      process.exitCode = 1;
    }
  }
} finally {
  await webapp.stop();
}
