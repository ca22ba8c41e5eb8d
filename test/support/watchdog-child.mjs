// A stand-in node for the watchdog tests (test/watchdog/supervisor.test.ts), run by the supervisor.
// argv[2] is the behaviour:
// - freeze: pets (no tenure, at risk: named for a shard) for 100 ms, then blocks its event loop for good;
// - standby-freeze: pets as a standby (not at risk) for 100 ms, blocks its event loop for 800 ms, exits 0;
// - named-freeze: pets as a standby for 100 ms, then pets once at risk (named) and blocks for good;
// - tenure-stuck: keeps petting with a tenure that ends 150 ms after start and never closes it;
// - tenure-wide-margin: the same, with its lease lapsing 600 ms after the tenure's deadline, not 100;
// - stale-pets: pets at risk, each saying it was sent 10 s before it was (a pet that waited that long);
// - tenure-closes: the same tenure, but closes it (a pet with null) when it ends, then exits 0 at 600 ms.
const mode = process.argv[2];
const started = performance.now();
const remaining = () => Math.max(0, 150 - (performance.now() - started));
let open = mode.startsWith("tenure");
let atRisk = mode !== "standby-freeze" && mode !== "named-freeze";
// The lease may lapse at the store 100 ms after the tenure's deadline (grace 50 ms), or, in
// tenure-wide-margin, 600 ms after it (a lease granted before the settings were shortened: grace 300 ms).
const lapseGap = mode === "tenure-wide-margin" ? 600 : 100;
const pet = () =>
  process.send({
    type: "pet",
    sentAtMs: Number(process.hrtime.bigint()) / 1e6 - (mode === "stale-pets" ? 10_000 : 0),
    tenureRemainingMs: open ? remaining() : null,
    tenureLapseMs: open ? remaining() + lapseGap : null,
    atRisk,
  });
pet();
setInterval(pet, 20);
const block = (ms) => {
  const until = performance.now() + ms;
  while (performance.now() < until);
};
if (mode === "freeze") setTimeout(() => block(Infinity), 100);
if (mode === "standby-freeze")
  setTimeout(() => {
    block(800);
    process.exit(0);
  }, 100);
if (mode === "named-freeze")
  setTimeout(() => {
    atRisk = true;
    pet();
    block(Infinity);
  }, 100);
if (mode === "tenure-closes") {
  setTimeout(() => {
    open = false;
    pet();
  }, 150);
  setTimeout(() => process.exit(0), 600);
}
// Crash supervision (no watchdog):
// - tokens-crash: reports a shard lease, then a newer one, and at once kills itself with SIGKILL;
// - tokens-clean: reports that it holds nothing, then exits 0 (a clean shutdown).
const lease = (epoch) => ({ name: "shard/0", holder: `child.1#${epoch}`, epoch });
const tokens = (leases) => process.send({ type: "tokens", tokens: { node: "child.1", name: "child", role: "coreapp", leases } });
if (mode === "tokens-crash") {
  tokens([lease(3)]);
  tokens([lease(4)]);
  process.kill(process.pid, "SIGKILL");
}
if (mode === "tokens-clean") {
  tokens([]);
  setTimeout(() => process.exit(0), 50);
}
