import { TransportUnavailableError } from "../../src/core/errors.js";
import type {
  AdminCommand,
  AdminReply,
  ExitNotice,
  ExitReply,
  FailsafeReply,
  FailsafeRequest,
  ForwardRequest,
  ForwardResult,
  HeartbeatMessage,
  HeartbeatReply,
  Peer,
  SwitchoverCommand,
  SwitchoverReply,
  Transport,
  TransportHandlers,
  TransportServer,
} from "../../src/core/ports/transport.js";

/**
 * An in-process network for unit tests of the core: listeners register by address; calls go
 * straight to the handlers. `cut(a, b)` makes messages between two node ids fail as refused
 * connections would, to simulate partitions. Not for testing the HTTP transport itself.
 */
export class MemoryNetwork {
  private readonly listeners = new Map<string, { self: string; handlers: TransportHandlers }>();
  private readonly cuts = new Set<string>();
  /** Heartbeat answers from these node ids arrive this much later (a slow or starved host). */
  readonly slowHeartbeats = new Map<string, number>();
  /** The node ids that received a heartbeat with `mapChanged`, in order. */
  readonly mapChangedHints: string[] = [];
  private nextPort = 1;

  cut(a: string, b: string): void {
    this.cuts.add(`${a}|${b}`).add(`${b}|${a}`);
  }

  heal(): void {
    this.cuts.clear();
  }

  /** A transport endpoint for node `self`. */
  endpoint(self: string): Transport {
    const target = (to: Peer) => {
      const l = this.listeners.get(to.address);
      if (!l || l.self !== to.id || this.cuts.has(`${self}|${to.id}`)) {
        throw new TransportUnavailableError(`memory network: ${to.address} unreachable`, { notDelivered: true });
      }
      return l.handlers;
    };
    return {
      heartbeat: async (to: Peer, m: HeartbeatMessage, timeoutMs: number): Promise<HeartbeatReply> => {
        const h = target(to).heartbeat;
        if (!h) throw new Error("no heartbeat handler");
        if (m.mapChanged) this.mapChangedHints.push(to.id);
        const reply = await h(self, m);
        const delay = this.slowHeartbeats.get(to.id) ?? 0;
        if (delay > 0) {
          // Like a real transport: an answer later than the caller's timeout is no answer.
          await new Promise((r) => setTimeout(r, Math.min(delay, timeoutMs)));
          if (delay > timeoutMs) throw new TransportUnavailableError(`memory network: no answer within ${timeoutMs} ms`);
        }
        return reply;
      },
      forward: async (to: Peer, r: ForwardRequest): Promise<ForwardResult> => {
        const h = target(to).forward;
        if (!h) throw new Error("no forward handler");
        return h(self, r, () => Promise.resolve());
      },
      admin: async (to: Peer, c: AdminCommand): Promise<AdminReply> => {
        const h = target(to).admin;
        if (!h) throw new Error("no admin handler");
        return h(self, c);
      },
      exited: async (to: Peer, n: ExitNotice): Promise<ExitReply> => {
        const h = target(to).exited;
        if (!h) throw new Error("no exited handler");
        return h(self, n);
      },
      failsafe: async (to: Peer, r: FailsafeRequest): Promise<FailsafeReply> => {
        const h = target(to).failsafe;
        if (!h) throw new Error("no failsafe handler");
        return h(self, r);
      },
      switchover: async (to: Peer, c: SwitchoverCommand): Promise<SwitchoverReply> => {
        const h = target(to).switchover;
        if (!h) throw new Error("no switchover handler");
        return h(self, c);
      },
      listen: async (id: string, _host: string, port: number, handlers: TransportHandlers): Promise<TransportServer> => {
        const p = port || this.nextPort++;
        const address = `mem:${p}`;
        this.listeners.set(address, { self: id, handlers });
        return {
          port: p,
          close: async () => {
            this.listeners.delete(address);
          },
        };
      },
      close: async () => {},
    };
  }
}
