// The application under test in docs/testing-kit.md: it holds one session with an exclusive
// upstream per shard it serves — opened in onPromote, closed in onDemote — and reports every
// request to it. In a test the upstream is the oracle LocalCluster starts (MC_ORACLE).
import { UpstreamSession } from "multiconnect/testing";

/** @param {string} name the node's name */
export default function createApp(name) {
  const sessions = new Map();
  return {
    async onPromote(shard, epoch) {
      sessions.set(shard, await UpstreamSession.open(process.env.MC_ORACLE, { shard, epoch, node: name }));
    },
    async onDemote(shard) {
      // MC_KIT_BROKEN=1 makes this a broken application that keeps its session (the kit's own
      // test proves the oracle catches it).
      if (process.env.MC_KIT_BROKEN === "1") return;
      const session = sessions.get(shard);
      sessions.delete(shard);
      await session?.close();
    },
    async handle(req) {
      const reply = await sessions.get(req.shard)?.action(req.shard, req.epoch);
      return { status: reply?.ok ? 200 : 502, body: `${name} at epoch ${req.epoch}` };
    },
  };
}
