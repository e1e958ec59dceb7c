/**
 * The contract every DocumentStore passes: one suite, run against each implementation.
 *
 * Updates come from real Y.Docs; every resume is checked by applying what the store sent to a
 * document in the client's state and comparing the text with the writer's. Redis stores use the
 * run's private Redis, or this file's private three-node Redis Cluster, with a fresh key prefix per test.
 */
import * as Y from 'yjs';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { AwarenessEntry } from '../../shared/awareness.js';
import { formatEventId, parseEventId } from '../../server/store/history.js';
import type { StoreOptions } from '../../server/store/log-store.js';
import { MergedDocs, type MergedDoc } from '../../server/store/merged-docs.js';
import { MemoryStore } from '../../server/store/memory-store.js';
import { RedisStore } from '../../server/store/redis-store.js';
import type { DocEvent, DocumentStore, ValidatedUpdate } from '../../server/store/types.js';
import type { SyncResult } from '../../server/store/history.js';
import { validateUpdate } from '../../server/validate.js';
import { redisUrl, startRedisCluster, uniquePrefix, type RedisCluster } from '../helpers/redis.js';
import { waitFor } from '../helpers/wait.js';

const EVENT_ID = /^[A-Za-z0-9._-]{1,128}$/;

/** One backing storage; `open()` gives a store on it (a new instance when `distinct`). */
interface Backend {
  open(): DocumentStore;
  /** Whether `open()` gives separate instances sharing the storage, like two servers on one Redis. */
  distinct: boolean;
  /** Whether the storage outlives its stores (a new store sees what a closed one wrote). */
  durable: boolean;
}

interface BackendFactory {
  name: string;
  create(options?: Partial<StoreOptions>): Backend;
}

const opened = new Set<DocumentStore>();
const track = (store: DocumentStore): DocumentStore => {
  opened.add(store);
  return store;
};

let cluster: RedisCluster | undefined;
beforeAll(async () => {
  cluster = await startRedisCluster();
});
afterAll(() => cluster?.stop());

const backends: BackendFactory[] = [
  {
    name: 'MemoryStore',
    create: (options = {}) => {
      const store = new MemoryStore(options);
      return { open: () => track(store), distinct: false, durable: false };
    },
  },
  {
    name: 'RedisStore',
    create: (options = {}) => {
      const prefix = uniquePrefix('store');
      return { open: () => track(new RedisStore({ redis: redisUrl(), prefix, ...options })), distinct: true, durable: true };
    },
  },
  {
    name: 'RedisStore on Redis Cluster',
    create: (options = {}) => {
      const prefix = uniquePrefix('store');
      const nodes = cluster?.urls ?? [];
      return { open: () => track(new RedisStore({ redis: { cluster: nodes }, prefix, ...options })), distinct: true, durable: true };
    },
  },
];

/** Thresholds that never fire: tests call `compact()` themselves. */
const manual: Partial<StoreOptions> = { compactAfterUpdates: 1e9, compactAfterBytes: 1e12, keepTail: 5 };

afterEach(async () => {
  const stores = [...opened];
  opened.clear();
  await Promise.all(stores.map((store) => store.close()));
});

const validated = (bytes: Uint8Array): ValidatedUpdate => ({ bytes, ranges: validateUpdate(bytes) });

/** A deterministic pseudo-random sequence (mulberry32). */
const random = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};

/** A Y.Doc whose every local change is captured as one update. */
class Writer {
  readonly doc: Y.Doc;
  readonly updates: Uint8Array[] = [];

  constructor(clientID?: number) {
    this.doc = new Y.Doc();
    if (clientID !== undefined) this.doc.clientID = clientID;
    this.doc.on('update', (update: Uint8Array) => this.updates.push(update));
  }

  get text(): Y.Text {
    return this.doc.getText('t');
  }

  /** Makes one change and returns its update. */
  edit(change: (text: Y.Text) => void): Uint8Array {
    const before = this.updates.length;
    change(this.text);
    expect(this.updates.length).toBe(before + 1);
    return this.updates.at(-1) as Uint8Array;
  }

  insert(content: string, index = this.text.length): Uint8Array {
    return this.edit((text) => text.insert(index, content));
  }

  /** A typing-like edit: mostly single-character inserts at a moving cursor, some deletions. */
  typeRandomly(next: () => number): Uint8Array {
    const length = this.text.length;
    if (length > 10 && next() < 0.15) {
      const index = Math.floor(next() * (length - 1));
      return this.edit((text) => text.delete(index, 1));
    }
    const index = next() < 0.7 ? length : Math.floor(next() * (length + 1));
    return this.insert(String.fromCharCode(97 + Math.floor(next() * 26)), index);
  }
}

/** A document holding exactly `updates` (a client that received them). */
const docFrom = (updates: readonly Uint8Array[]): Y.Doc => {
  const doc = new Y.Doc();
  for (const update of updates) Y.applyUpdate(doc, update);
  return doc;
};

const textOf = (doc: Y.Doc): string => doc.getText('t').toString();

/** Asserts the store's state vector never claims more than the document holds. */
const expectLowerBound = (stateVector: Uint8Array, doc: Y.Doc): void => {
  const actual = Y.decodeStateVector(Y.encodeStateVector(doc));
  for (const [client, clock] of Y.decodeStateVector(stateVector)) {
    expect(clock, `client ${client}`).toBeLessThanOrEqual(actual.get(client) ?? 0);
  }
};

const isEmptyUpdate = (update: Uint8Array): boolean => {
  const { structs, ds } = Y.decodeUpdate(update);
  return structs.length === 0 && ds.clients.size === 0;
};

/** Appends every update in order and returns their event IDs. */
const appendAll = async (store: DocumentStore, docId: string, updates: readonly Uint8Array[]): Promise<string[]> => {
  const ids: string[] = [];
  for (const update of updates) ids.push(await store.append(docId, validated(update)));
  return ids;
};

/** Collects a subscription's events. */
const collect = async (store: DocumentStore, docId: string) => {
  const events: DocEvent[] = [];
  const unsubscribe = await store.subscribe(docId, (event) => events.push(event));
  const updates = () => events.filter((e): e is Extract<DocEvent, { type: 'update' }> => e.type === 'update');
  return { events, updates, unsubscribe };
};

describe.each(backends)('DocumentStore contract: $name', (factory) => {
  const doc = 'doc-1';

  describe('event IDs', () => {
    it('append returns increasing, well-formed event IDs that isAfter orders', async () => {
      const store = factory.create(manual).open();
      const writer = new Writer();
      const ids = await appendAll(store, doc, Array.from({ length: 40 }, (_, i) => writer.insert(String(i % 10))));
      expect(new Set(ids).size).toBe(ids.length);
      for (const id of ids) expect(id).toMatch(EVENT_ID);
      for (let i = 1; i < ids.length; i++) {
        const [before, after] = [ids[i - 1] as string, ids[i] as string];
        expect(store.isAfter(after, before)).toBe(true);
        expect(store.isAfter(before, after)).toBe(false);
        expect(store.isAfter(after, after)).toBe(false);
      }
      expect(store.isAfter(ids[0] as string, '0')).toBe(true);
    });
  });

  describe('sync', () => {
    it('without a resume point sends the full state and a state vector that is exact or lower', async () => {
      const store = factory.create(manual).open();
      const writer = new Writer();
      const next = random(1);
      const ids = await appendAll(store, doc, Array.from({ length: 60 }, () => writer.typeRandomly(next)));

      const result = await store.sync(doc, {});
      expect(result.resume).toBe('full');
      expect(result.eventId).toBe(ids.at(-1));
      const client = docFrom([result.update]);
      expect(textOf(client)).toBe(textOf(writer.doc));
      // In-order updates from one client: the state vector is exact.
      expect(Y.decodeStateVector(result.stateVector)).toEqual(Y.decodeStateVector(Y.encodeStateVector(client)));
    });

    it('never over-estimates the state vector, also when updates arrive out of order', async () => {
      const store = factory.create(manual).open();
      const a = new Writer();
      const b = new Writer();
      const ua = [a.insert('one '), a.insert('two '), a.insert('three ')];
      Y.applyUpdate(b.doc, Y.encodeStateAsUpdate(a.doc));
      const ub = [b.insert('four '), b.insert('five ')];
      // a's third update before its second, b's second before its first.
      await appendAll(store, doc, [ua[0], ua[2], ub[1], ua[1], ub[0]] as Uint8Array[]);

      const result = await store.sync(doc, {});
      const client = docFrom([result.update]);
      expect(textOf(client)).toBe(textOf(b.doc));
      expectLowerBound(result.stateVector, client);

      // Compaction computes it exactly.
      expect(await store.compact(doc)).toBe(true);
      const compacted = await store.sync(doc, {});
      expect(Y.decodeStateVector(compacted.stateVector)).toEqual(Y.decodeStateVector(Y.encodeStateVector(client)));
    });

    it('from an event ID inside the log replays exactly the missing updates', async () => {
      const store = factory.create(manual).open();
      const writer = new Writer();
      // Large early edits, so a replay that included them would show in the size.
      const updates = Array.from({ length: 100 }, (_, i) => writer.insert(`${i}`.padEnd(i < 60 ? 200 : 5, '.')));
      const ids = await appendAll(store, doc, updates);
      const client = docFrom(updates.slice(0, 60));
      const clockAt60 = Y.decodeStateVector(Y.encodeStateVector(client)).get(writer.doc.clientID);

      const result = await store.sync(doc, { lastEventId: ids[59] });
      expect(result.resume).toBe('replay');
      expect(result.eventId).toBe(ids.at(-1));
      const meta = Y.parseUpdateMeta(result.update);
      expect(meta.from.get(writer.doc.clientID)).toBe(clockAt60);
      expect(meta.to.get(writer.doc.clientID)).toBe(Y.decodeStateVector(Y.encodeStateVector(writer.doc)).get(writer.doc.clientID));
      expect(result.update.length).toBeLessThan(Y.encodeStateAsUpdate(writer.doc).length / 10);
      Y.applyUpdate(client, result.update);
      expect(textOf(client)).toBe(textOf(writer.doc));
    });

    it('from the head replays an empty update', async () => {
      const store = factory.create(manual).open();
      const writer = new Writer();
      const ids = await appendAll(store, doc, [writer.insert('a'), writer.insert('b'), writer.insert('c')]);
      const result = await store.sync(doc, { lastEventId: ids.at(-1) });
      expect(result).toMatchObject({ resume: 'replay', eventId: ids.at(-1) });
      expect(isEmptyUpdate(result.update)).toBe(true);
    });

    it('of a never-written document is empty, with the empty event ID', async () => {
      const store = factory.create(manual).open();
      const result = await store.sync('never-written', {});
      expect(result.eventId).toBe('0');
      expect(result.eventId).toMatch(EVENT_ID);
      expect(isEmptyUpdate(result.update)).toBe(true);
      expect(Y.decodeStateVector(result.stateVector).size).toBe(0);
    });
  });

  describe('compaction', () => {
    it('keeps the document, replays the tail, and answers older resume points with a near-minimal checkpoint diff', async () => {
      const store = factory.create(manual).open();
      const writer = new Writer();
      const next = random(42);
      const updates: Uint8Array[] = [];
      const ids: string[] = [];
      let compactions = 0;
      for (let i = 0; i < 300; i++) {
        updates.push(writer.typeRandomly(next));
        ids.push(await store.append(doc, validated(updates[i] as Uint8Array)));
        if ((i + 1) % 20 === 0 && (await store.compact(doc))) compactions++;
      }
      expect(compactions).toBe(15);
      expect(await store.compact(doc)).toBe(false);
      const fullState = Y.encodeStateAsUpdate(writer.doc);

      // Still in the kept tail: an exact replay.
      const tail = await store.sync(doc, { lastEventId: ids[297] });
      expect(tail.resume).toBe('replay');
      const tailClient = docFrom(updates.slice(0, 298));
      Y.applyUpdate(tailClient, tail.update);
      expect(textOf(tailClient)).toBe(textOf(writer.doc));

      const measure = async (received: number) => {
        const client = docFrom(updates.slice(0, received));
        const minimal = Y.diffUpdate(fullState, Y.encodeStateVector(client));
        const result = await store.sync(doc, { lastEventId: ids[received - 1] });
        expect(result.resume).toBe('checkpoint');
        expect(result.eventId).toBe(ids.at(-1));
        Y.applyUpdate(client, result.update);
        expect(textOf(client)).toBe(textOf(writer.doc));
        expectLowerBound(result.stateVector, client);
        console.log(
          `[${factory.name}] checkpoint resume after edit ${received}/300: ${result.update.length} bytes, ` +
            `minimal ${minimal.length}, full state ${fullState.length} ` +
            `(ratio ${(result.update.length / minimal.length).toFixed(3)})`,
        );
        expect(result.update.length).toBeLessThanOrEqual(1.5 * minimal.length + 100);
      };
      await measure(100); // exactly at a checkpoint
      await measure(110); // between two checkpoints
    });

    it('runs by itself past the thresholds and trims the log to the kept tail', async () => {
      const store = factory.create({ compactAfterUpdates: 20, keepTail: 5 }).open();
      const writer = new Writer();
      const updates = Array.from({ length: 100 }, (_, i) => writer.insert(String(i % 10)));
      const ids = await appendAll(store, doc, updates);
      await waitFor(async () => (await store.sync(doc, { lastEventId: ids[50] })).resume === 'checkpoint', {
        message: 'background compaction never trimmed the log',
      });
      const result = await store.sync(doc, { lastEventId: ids[50] });
      const client = docFrom(updates.slice(0, 51));
      Y.applyUpdate(client, result.update);
      expect(textOf(client)).toBe(textOf(writer.doc));
    });

    it('trims the log also when each compaction merges fewer updates than the kept tail (as when triggered by bytes)', async () => {
      // Each compaction merges about 3 updates, fewer than keepTail: the log must still stay bounded.
      const store = factory.create({ compactAfterUpdates: 1e9, compactAfterBytes: 1e12, keepTail: 5 }).open();
      const writer = new Writer();
      const updates: Uint8Array[] = [];
      const ids: string[] = [];
      for (let i = 0; i < 60; i++) {
        updates.push(writer.insert(String(i % 10)));
        ids.push(await store.append(doc, validated(updates[i] as Uint8Array)));
        if ((i + 1) % 3 === 0) expect(await store.compact(doc)).toBe(true);
      }
      const result = await store.sync(doc, { lastEventId: ids[2] });
      expect(result.resume).toBe('checkpoint');
      const recent = await store.sync(doc, { lastEventId: ids[56] });
      expect(recent.resume).toBe('replay');
      const client = docFrom(updates.slice(0, 3));
      Y.applyUpdate(client, result.update);
      expect(textOf(client)).toBe(textOf(writer.doc));
    });

    it('stays fast with many distinct client IDs (yjs #710)', { timeout: 120_000 }, async () => {
      const store = factory.create(manual).open();
      const count = 2000;
      const updates = Array.from({ length: count }, (_, i) => {
        const writer = new Writer(i + 1);
        writer.doc.transact(() => {
          writer.doc.getMap('m').set(`k${i}`, i);
          writer.text.insert(0, 'x');
        });
        return writer.updates.at(-1) as Uint8Array;
      });
      for (let i = 0; i < count; i += 100) {
        await Promise.all(updates.slice(i, i + 100).map((update) => store.append(doc, validated(update))));
      }
      let started = performance.now();
      const beforeCompaction = await store.sync(doc, {});
      const syncMs = performance.now() - started;
      started = performance.now();
      expect(await store.compact(doc)).toBe(true);
      const compactMs = performance.now() - started;
      started = performance.now();
      const afterCompaction = await store.sync(doc, {});
      const syncAfterMs = performance.now() - started;
      console.log(
        `[${factory.name}] ${count} client IDs: full sync of the log ${syncMs.toFixed(0)} ms, ` +
          `compaction ${compactMs.toFixed(0)} ms, full sync after compaction ${syncAfterMs.toFixed(0)} ms`,
      );
      for (const result of [beforeCompaction, afterCompaction]) {
        const client = docFrom([result.update]);
        expect(textOf(client)).toBe('x'.repeat(count));
        expect(client.getMap('m').size).toBe(count);
        expect(Y.decodeStateVector(result.stateVector).size).toBe(count);
      }
      expect(compactMs).toBeLessThan(30_000);
    });
  });

  describe('resume points the log cannot answer', () => {
    it('get the full state, or a state-vector diff when the client sends its state vector', async () => {
      const store = factory.create(manual).open();
      const old = new Writer();
      const oldIds = await appendAll(store, doc, [old.insert('previous life')]);
      await store.deleteDocument(doc);

      const writer = new Writer();
      const next = random(7);
      const updates = Array.from({ length: 80 }, () => writer.typeRandomly(next));
      const ids = await appendAll(store, doc, updates);
      const head = parseEventId(ids.at(-1) as string);
      expect(head).not.toBeNull();
      const [ms, seq] = (head?.id ?? '').split('-');
      const ahead = formatEventId(head?.epoch ?? '', `${BigInt(ms ?? '0') + 1000000n}-${seq}`);

      const unanswerable = {
        'an ID of the previous life': oldIds[0] as string,
        'an ID of another epoch': formatEventId('zzzzzzzzzzzz', head?.id ?? ''),
        'an ID ahead of the head': ahead,
        'a malformed ID': 'not-an-event-id',
        'a too-large stream ID': `${head?.epoch}.99999999999999999999999-0`,
      };
      const clientUpdates = updates.slice(0, 50);
      const clientSv = Y.encodeStateVector(docFrom(clientUpdates));
      const minimal = Y.diffUpdate(Y.encodeStateAsUpdate(writer.doc), clientSv);
      for (const [what, lastEventId] of Object.entries(unanswerable)) {
        const full = await store.sync(doc, { lastEventId });
        expect(full.resume, what).toBe('full');
        expect(full.eventId, what).toBe(ids.at(-1));
        expect(textOf(docFrom([full.update])), what).toBe(textOf(writer.doc));

        const diff = await store.sync(doc, { lastEventId, stateVector: clientSv });
        expect(diff.resume, what).toBe('state-vector');
        const client = docFrom(clientUpdates);
        Y.applyUpdate(client, diff.update);
        expect(textOf(client), what).toBe(textOf(writer.doc));
        expect(diff.update.length, what).toBeLessThanOrEqual(1.5 * minimal.length + 100);
      }
    });

    it('an ID inside the retained log that was never issued gets the full state, even after a checkpoint', async () => {
      const store = factory.create(manual).open();
      const writer = new Writer();
      const updates: Uint8Array[] = [];
      const ids: string[] = [];
      ids.push(...(await appendAll(store, doc, [writer.insert('a'), writer.insert('b')])));
      expect(await store.compact(doc)).toBe(true); // a checkpoint before the ID below
      // Append until two consecutive IDs are in different milliseconds: `<ms>-<seq + 1>` between them was never issued.
      let gap: string | null = null;
      while (gap === null && updates.length < 5000) {
        updates.push(writer.insert('x'));
        ids.push(await store.append(doc, validated(updates.at(-1) as Uint8Array)));
        if (ids.length >= 2) {
          const a = parseEventId(ids.at(-2) as string);
          const b = parseEventId(ids.at(-1) as string);
          const [ams, aseq] = (a?.id ?? '').split('-');
          if (a !== null && b !== null && ams !== b.id.split('-')[0]) gap = formatEventId(a.epoch ?? '', `${ams}-${BigInt(aseq ?? '0') + 1n}`);
        }
      }
      expect(gap).not.toBeNull();
      // The ID lies inside the retained log, after the checkpoint.
      expect((await store.sync(doc, { lastEventId: ids.at(-2) })).resume).toBe('replay');
      expect(store.isAfter(gap as string, ids[1] as string)).toBe(true);
      const result = await store.sync(doc, { lastEventId: gap as string });
      expect(result.resume).toBe('full');
      expect(textOf(docFrom([result.update]))).toBe(textOf(writer.doc));
    });

    it('the empty event ID replays the whole log while it is complete, and gets the full state once trimmed', async () => {
      const store = factory.create(manual).open();
      const writer = new Writer();
      const updates = Array.from({ length: 30 }, (_, i) => writer.insert(String(i % 10)));
      await appendAll(store, doc, updates);

      const whole = await store.sync(doc, { lastEventId: '0' });
      expect(whole.resume).toBe('replay');
      expect(textOf(docFrom([whole.update]))).toBe(textOf(writer.doc));

      expect(await store.compact(doc)).toBe(true);
      const trimmed = await store.sync(doc, { lastEventId: '0' });
      expect(trimmed.resume).toBe('full');
      expect(textOf(docFrom([trimmed.update]))).toBe(textOf(writer.doc));

      const clientSv = Y.encodeStateVector(docFrom(updates.slice(0, 20)));
      const withSv = await store.sync(doc, { lastEventId: '0', stateVector: clientSv });
      expect(withSv.resume).toBe('state-vector');
      const client = docFrom(updates.slice(0, 20));
      Y.applyUpdate(client, withSv.update);
      expect(textOf(client)).toBe(textOf(writer.doc));
    });
  });

  describe('subscribe', () => {
    it('delivers each update stored after it resolves exactly once, in storage order', async () => {
      const store = factory.create(manual).open();
      const writer = new Writer();
      await appendAll(store, doc, [writer.insert('before '), writer.insert('subscribing ')]);
      const sub = await collect(store, doc);
      const updates = Array.from({ length: 20 }, (_, i) => writer.insert(`${i} `));
      // Concurrent appends: storage order is the order of the returned event IDs.
      const ids = await Promise.all(updates.map((update) => store.append(doc, validated(update))));
      const marker = await store.append(doc, validated(writer.insert('end')));
      await waitFor(() => sub.updates().some((e) => e.eventId === marker), { message: () => `${sub.updates().length} updates received` });

      const received = sub.updates();
      expect(received.map((e) => e.eventId)).toEqual([...ids].sort((a, b) => (store.isAfter(a, b) ? 1 : -1)).concat(marker));
      const byId = new Map(ids.map((id, i) => [id, updates[i] as Uint8Array]));
      for (const event of received.slice(0, -1)) expect(event.update).toEqual(byId.get(event.eventId));
      const client = docFrom([...writer.updates.slice(0, 2), ...received.map((e) => e.update)]);
      expect(textOf(client)).toBe(textOf(writer.doc));
    });

    it('has delivered a small update to its own subscribers when the append resolves, once they had everything before it', async () => {
      const store = factory.create(manual).open();
      const writer = new Writer();
      const sub = await collect(store, doc);
      const first = await store.append(doc, validated(writer.insert('first ')));
      await waitFor(() => sub.updates().length === 1);
      const ids: string[] = [];
      for (let i = 0; i < 10; i++) {
        ids.push(await store.append(doc, validated(writer.insert(`${i} `))));
        expect(sub.updates().map((e) => e.eventId)).toEqual([first, ...ids]);
      }
    });

    it('stops delivering after unsubscribe, while other subscribers keep receiving', async () => {
      const store = factory.create(manual).open();
      const writer = new Writer();
      const first = await collect(store, doc);
      const second = await collect(store, doc);
      const a = await store.append(doc, validated(writer.insert('a')));
      await waitFor(() => first.updates().length === 1 && second.updates().length === 1);
      first.unsubscribe();
      first.unsubscribe(); // idempotent
      const b = await store.append(doc, validated(writer.insert('b')));
      await waitFor(() => second.updates().length === 2);
      expect(first.updates().map((e) => e.eventId)).toEqual([a]);
      expect(second.updates().map((e) => e.eventId)).toEqual([a, b]);
    });

    it('a subscriber joining while the first subscription is being set up misses nothing', async () => {
      const store = factory.create(manual).open();
      const writer = new Writer();
      await store.append(doc, validated(writer.insert('existing ')));
      const firstEvents: DocEvent[] = [];
      const first = store.subscribe(doc, (event) => firstEvents.push(event));
      const second = await collect(store, doc);
      // Stored after the second subscribe resolved: it must be delivered to it.
      const id = await store.append(doc, validated(writer.insert('new')));
      await first;
      const marker = await store.append(doc, validated(writer.insert('!')));
      await waitFor(() => second.updates().some((e) => e.eventId === marker), { message: 'marker never delivered' });
      expect(second.updates().map((e) => e.eventId)).toContain(id);
    });

    it('delivers awareness updates and a reset when the document is deleted', async () => {
      const store = factory.create(manual).open();
      const writer = new Writer();
      await store.append(doc, validated(writer.insert('x')));
      const sub = await collect(store, doc);
      const other = await collect(store, 'other-doc');
      await store.publishAwareness(doc, [{ clientID: 7, clock: 1, state: '{"user":"ann"}' }]);
      await waitFor(() => sub.events.some((e) => e.type === 'awareness'));
      const awareness = sub.events.find((e) => e.type === 'awareness');
      expect(awareness?.type === 'awareness' && [...awareness.update]).toEqual([1, 7, 1, 14, ...Buffer.from('{"user":"ann"}')]);

      await store.deleteDocument(doc);
      await waitFor(() => sub.events.some((e) => e.type === 'reset'));
      expect(await store.getDocument(doc)).toBeNull();

      // A new life of the document is delivered after the reset.
      const id = await store.append(doc, validated(new Writer().insert('again')));
      await waitFor(() => sub.updates().some((e) => e.eventId === id));
      expect(other.events).toEqual([]);
    });
  });

  describe.runIf(factory.name.startsWith('RedisStore'))('two instances on one Redis (Redis only: a MemoryStore is one process)', () => {
    it('deliver small updates (carried by their notification) and large ones (read from the log) in order, exactly once', async () => {
      const backend = factory.create(manual);
      const [a, b, c] = [backend.open(), backend.open(), backend.open()];
      const sub = await collect(c, doc);
      const writer = new Writer();
      const next = random(21);
      // Two writers on two instances, concurrently; every fifth update is too large to ride along.
      const updates = Array.from({ length: 40 }, (_, i) => (i % 5 === 4 ? writer.insert('L'.repeat(20_000)) : writer.typeRandomly(next)));
      const ids = await Promise.all(updates.map((update, i) => (i % 2 === 0 ? a : b).append(doc, validated(update))));
      await waitFor(() => sub.updates().length >= updates.length, { message: () => `${sub.updates().length} of ${updates.length} updates received` });
      const received = sub.updates().map((e) => e.eventId);
      expect(received).toEqual([...ids].sort((x, y) => (c.isAfter(x, y) ? 1 : -1)));
      expect(textOf(docFrom(sub.updates().map((e) => e.update)))).toBe(textOf(writer.doc));
    });

    it('deliver updates, awareness and resets appended on the other', async () => {
      const backend = factory.create(manual);
      const [a, b] = [backend.open(), backend.open()];
      expect(a).not.toBe(b);
      const sub = await collect(b, doc);
      const writer = new Writer();
      const ids = await appendAll(a, doc, [writer.insert('from '), writer.insert('a')]);
      await waitFor(() => sub.updates().length === 2, { message: () => `${sub.updates().length} updates received` });
      expect(sub.updates().map((e) => e.eventId)).toEqual(ids);
      await a.publishAwareness(doc, [{ clientID: 3, clock: 1, state: '{}' }]);
      await waitFor(() => sub.events.some((e) => e.type === 'awareness'));
      expect(await b.awareness(doc)).toEqual([{ clientID: 3, clock: 1, state: '{}' }]);
      await a.deleteDocument(doc);
      await waitFor(() => sub.events.some((e) => e.type === 'reset'));
    });

    it('a restarted store sees the same documents and resumes their event IDs with a replay', async () => {
      const backend = factory.create(manual);
      expect(backend.durable).toBe(true);
      const before = backend.open();
      const writer = new Writer();
      const updates = Array.from({ length: 10 }, (_, i) => writer.insert(String(i)));
      const ids = await appendAll(before, doc, updates);
      await before.close();

      const after = backend.open();
      const stored = await after.getDocument(doc);
      expect(stored?.eventId).toBe(ids.at(-1));
      expect(textOf(docFrom([stored?.update as Uint8Array]))).toBe(textOf(writer.doc));
      const result = await after.sync(doc, { lastEventId: ids[4] });
      expect(result.resume).toBe('replay');
      const client = docFrom(updates.slice(0, 5));
      Y.applyUpdate(client, result.update);
      expect(textOf(client)).toBe(textOf(writer.doc));
      const id = await after.append(doc, validated(writer.insert('!')));
      expect(after.isAfter(id, ids.at(-1) as string)).toBe(true);
    });
  });

  describe('concurrency', () => {
    it('loses no update with concurrent appends and compactions, and commits each compaction once', async () => {
      const backend = factory.create({ compactAfterUpdates: 20, keepTail: 5 });
      const [a, b] = [backend.open(), backend.open()];
      const writers = [new Writer(), new Writer()];
      const compactions: Promise<boolean>[] = [];
      const run = async (store: DocumentStore, writer: Writer, seed: number) => {
        const next = random(seed);
        for (let i = 0; i < 150; i++) {
          await store.append(doc, validated(writer.typeRandomly(next)));
          if (i % 25 === 0) compactions.push(a.compact(doc), b.compact(doc));
        }
      };
      await Promise.all([run(a, writers[0] as Writer, 1), run(b, writers[1] as Writer, 2)]);
      await Promise.all(compactions);
      // Let background compactions settle: repeat until neither store has anything left to do.
      await waitFor(async () => (await Promise.all([a.compact(doc), b.compact(doc)])).every((done) => !done));

      const expected = docFrom([...(writers[0] as Writer).updates, ...(writers[1] as Writer).updates]);
      for (const store of [a, b]) {
        const stored = await store.getDocument(doc);
        expect(textOf(docFrom([stored?.update as Uint8Array]))).toBe(textOf(expected));
      }

      // Both stores compact the same state at once: one commit (a single store coalesces the calls).
      await a.append(doc, validated((writers[0] as Writer).insert('last')));
      const results = await Promise.all([a.compact(doc), b.compact(doc)]);
      expect(results.filter(Boolean).length).toBe(backend.distinct ? 1 : 2);
      expect(await a.compact(doc)).toBe(false);
      expect(await b.compact(doc)).toBe(false);
      const final = await b.sync(doc, {});
      Y.applyUpdate(expected, (writers[0] as Writer).updates.at(-1) as Uint8Array);
      expect(textOf(docFrom([final.update]))).toBe(textOf(expected));
      expectLowerBound(final.stateVector, expected);
    });
  });

  describe.each([
    { kept: 'kept merged in memory', options: {} },
    { kept: 'not kept (mergedDocsBytes: 0)', options: { mergedDocsBytes: 0 } },
  ])('a document $kept', ({ options }) => {
    it('gets exact cold syncs and diffs while it changes, is compacted past the merged head, and is deleted and written anew', async () => {
      const store = factory.create({ ...manual, keepTail: 0, ...options }).open();
      let writer = new Writer();
      const next = random(11);
      const expectCurrent = async (): Promise<void> => {
        const full = await store.sync(doc, {});
        expect(textOf(docFrom([full.update]))).toBe(textOf(writer.doc));
        // A client holding a third of the updates gets exactly what it lacks.
        const partial = writer.updates.slice(0, Math.floor(writer.updates.length / 3));
        const diff = await store.sync(doc, { stateVector: Y.encodeStateVector(docFrom(partial)) });
        expect(diff.resume).toBe('state-vector');
        expect(textOf(docFrom([...partial, diff.update]))).toBe(textOf(writer.doc));
      };
      await appendAll(store, doc, Array.from({ length: 30 }, () => writer.typeRandomly(next)));
      await expectCurrent();
      await appendAll(store, doc, Array.from({ length: 30 }, () => writer.typeRandomly(next)));
      await expectCurrent();
      // Compaction keeps no tail: the log no longer continues from where the document was merged.
      expect(await store.compact(doc)).toBe(true);
      await appendAll(store, doc, [writer.insert('after compaction')]);
      await expectCurrent();
      await store.deleteDocument(doc);
      writer = new Writer();
      await appendAll(store, doc, [writer.insert('a new life')]);
      await expectCurrent();
      expect(textOf(docFrom([(await store.sync(doc, {})).update]))).toBe('a new life');
    });

    it('resumes a client from the point a document is merged at here after another instance trimmed the log past it', async () => {
      const backend = factory.create({ ...manual, keepTail: 2, ...options });
      // Two instances on one storage where the backend has them (else one: nothing is merged past its log then).
      const [here, other] = [backend.open(), backend.open()];
      const writer = new Writer();
      const next = random(17);
      const [clientAt] = await appendAll(here, doc, [writer.insert('seen by the client ')]);
      const client = docFrom(writer.updates);
      await here.sync(doc, {}); // merged here at the client's point; nobody reads here, so it stays there
      await appendAll(other, doc, Array.from({ length: 20 }, () => writer.typeRandomly(next)));
      expect(await other.compact(doc)).toBe(true); // the log now starts past the client's point
      const sync = await here.sync(doc, { lastEventId: clientAt });
      Y.applyUpdate(client, sync.update);
      expect(textOf(client)).toBe(textOf(writer.doc));
    });

    it('stays exact while readers come and go, also for updates stored while nobody here was reading', async () => {
      const store = factory.create({ ...manual, ...options }).open();
      const writer = new Writer();
      const next = random(13);
      const expectCurrent = async (): Promise<void> => {
        expect(textOf(docFrom([(await store.sync(doc, {})).update]))).toBe(textOf(writer.doc));
      };
      for (let round = 0; round < 3; round++) {
        const reader = await collect(store, doc);
        for (let i = 0; i < 15; i++) {
          await store.append(doc, validated(writer.typeRandomly(next)));
          if (i % 5 === 4) await expectCurrent();
        }
        await waitFor(() => reader.updates().length === 15, { message: 'updates not delivered' });
        await expectCurrent();
        reader.unsubscribe();
        // Stored while nobody reads here: the merged document must not skip them when reading resumes.
        await appendAll(store, doc, Array.from({ length: 5 }, () => writer.typeRandomly(next)));
      }
      await expectCurrent();
    });

    it('gives syncs racing appends (and the background merge of a document with readers) exactly the document at their event ID', async () => {
      const store = factory.create({ ...manual, ...options }).open();
      const writer = new Writer();
      const next = random(12);
      const textAt = new Map<string, string>([['0', '']]);
      const syncs: Promise<SyncResult>[] = [];
      // A reader here makes the store merge the document in the background as updates arrive.
      const reader = await collect(store, doc);
      for (let i = 0; i < 60; i++) {
        // Now and then all delivered, so the merged document moves with the deliveries between syncs.
        if (i % 20 === 19) await waitFor(() => reader.updates().length === i, { message: 'updates not delivered' });
        const update = writer.typeRandomly(next);
        const text = textOf(writer.doc);
        // Not awaited: each sync overlaps the next append and the other syncs.
        syncs.push(store.sync(doc, {}), store.sync(doc, { stateVector: Y.encodeStateVector(new Y.Doc()) }));
        textAt.set(await store.append(doc, validated(update)), text);
      }
      for (const result of await Promise.all(syncs)) {
        expect(textOf(docFrom([result.update])), `sync at ${result.eventId}`).toBe(textAt.get(result.eventId));
      }
      reader.unsubscribe();
    });
  });

  it('syncs and compacts a document kept merged for its readers without merging it anew, while deliveries move it on', async () => {
    let mergedFromLog = 0;
    let compactedUpdates = 0;
    const observer = { compacted: (_seconds: number, updates: number) => { compactedUpdates += updates; }, failed: () => {}, mergedFromLog: () => { mergedFromLog++; } };
    const store = factory.create({ ...manual, keepTail: 0, observer }).open();
    const writer = new Writer();
    const next = random(14);
    const reader = await collect(store, doc);
    const ids = await appendAll(store, doc, Array.from({ length: 20 }, () => writer.typeRandomly(next)));
    await waitFor(() => reader.updates().length === ids.length, { message: 'updates not delivered' });
    await store.sync(doc, {}); // merged once, and kept
    const merges = mergedFromLog;
    const textAt = new Map<string, string>([[ids.at(-1) as string, textOf(writer.doc)]]);
    for (let round = 0; round < 3; round++) {
      // Not awaited: the appends are delivered (and move the kept document on) while the sync and
      // the compaction read the log.
      const sync = store.sync(doc, {});
      const compaction = store.compact(doc);
      for (let i = 0; i < 5; i++) {
        const id = await store.append(doc, validated(writer.typeRandomly(next)));
        ids.push(id);
        textAt.set(id, textOf(writer.doc));
      }
      expect(await compaction).toBe(true);
      const synced = await sync;
      expect(textOf(docFrom([synced.update]))).toBe(textAt.get(synced.eventId));
      await waitFor(() => reader.updates().length === ids.length, { message: 'updates not delivered' });
    }
    expect(mergedFromLog).toBe(merges);
    while (await store.compact(doc));
    // Every update merged by exactly one compaction, and the state is the writer's.
    expect(compactedUpdates).toBe(ids.length);
    expect(textOf(docFrom([(await store.sync(doc, {})).update]))).toBe(textOf(writer.doc));
    reader.unsubscribe();
  });

  it('applies updates delivered to a document kept merged once they have arrived, not on the next read', async () => {
    const store = factory.create(manual).open();
    const writer = new Writer();
    const next = random(15);
    const reader = await collect(store, doc);
    const ids = await appendAll(store, doc, [writer.typeRandomly(next)]);
    await waitFor(() => reader.updates().length === ids.length, { message: 'updates not delivered' });
    await store.sync(doc, {}); // merged once, and kept
    // How many deferred updates each application of them finds, between deliveries and at the read.
    const applied: number[] = [];
    const settle = MergedDocs.prototype.settle;
    const spy = vi.spyOn(MergedDocs.prototype, 'settle').mockImplementation(function (this: MergedDocs, docId: string, merged: MergedDoc) {
      applied.push(merged.deferred.length);
      return settle.call(this, docId, merged);
    });
    try {
      ids.push(...await appendAll(store, doc, Array.from({ length: 5 }, () => writer.typeRandomly(next))));
      await waitFor(() => reader.updates().length === ids.length, { message: 'updates not delivered' });
      // The store applies them once the event loop turns. A request comes in on I/O of its own, so
      // at least one turn passes before it is read (one that came in the same turn of a busy server
      // would apply them on its own path, correctly, only later).
      await new Promise(resolve => setImmediate(resolve));
      const beforeRead = applied.splice(0);
      expect(beforeRead.reduce((sum, count) => sum + count, 0)).toBe(5);
      const synced = await store.sync(doc, {});
      expect(applied.length).toBeGreaterThan(0);
      expect(applied).toEqual(applied.map(() => 0));
      expect(synced.eventId).toBe(ids.at(-1));
      expect(textOf(docFrom([synced.update]))).toBe(textOf(writer.doc));
    } finally {
      spy.mockRestore();
    }
    reader.unsubscribe();
  });

  describe('getDocument', () => {
    it('is null for a never-written document and the full state otherwise, also after compaction', async () => {
      const store = factory.create(manual).open();
      expect(await store.getDocument('never-written')).toBeNull();
      const writer = new Writer();
      const next = random(3);
      const ids = await appendAll(store, doc, Array.from({ length: 30 }, () => writer.typeRandomly(next)));
      let stored = await store.getDocument(doc);
      expect(stored?.eventId).toBe(ids.at(-1));
      expect(textOf(docFrom([stored?.update as Uint8Array]))).toBe(textOf(writer.doc));

      expect(await store.compact(doc)).toBe(true);
      const id = await store.append(doc, validated(writer.insert('!')));
      stored = await store.getDocument(doc);
      expect(stored?.eventId).toBe(id);
      expect(textOf(docFrom([stored?.update as Uint8Array]))).toBe(textOf(writer.doc));
      expect(await store.getDocument('never-written')).toBeNull();
    });
  });

  describe('awareness and presence', () => {
    it('remembers published entries and forgets removed ones', async () => {
      const store = factory.create(manual).open();
      expect(await store.awareness(doc)).toEqual([]);
      const ann: AwarenessEntry = { clientID: 1, clock: 1, state: '{"name":"ann"}' };
      const bob: AwarenessEntry = { clientID: 2, clock: 4, state: '{"name":"bob"}' };
      await store.publishAwareness(doc, [ann, bob]);
      const byClient = (entries: AwarenessEntry[]) => [...entries].sort((x, y) => x.clientID - y.clientID);
      expect(byClient(await store.awareness(doc))).toEqual([ann, bob]);

      const annMoved = { ...ann, clock: 2, state: '{"name":"ann","cursor":3}' };
      await store.publishAwareness(doc, [annMoved]);
      expect(byClient(await store.awareness(doc))).toEqual([annMoved, bob]);
      await store.publishAwareness(doc, [{ clientID: 2, clock: 5, state: 'null' }]);
      expect(await store.awareness(doc)).toEqual([annMoved]);
      expect(await store.awareness('other-doc')).toEqual([]);
    });

    it('forgets entries older than the awareness timeout', async () => {
      const store = factory.create({ ...manual, awarenessTimeoutMs: 50 }).open();
      await store.publishAwareness(doc, [{ clientID: 1, clock: 1, state: '{}' }]);
      await waitFor(async () => (await store.awareness(doc)).length === 0, { message: 'stale entry kept' });
    });

    it('closePresence is true only when the last stream of a client closes', async () => {
      const store = factory.create(manual).open();
      await store.openPresence(doc, 9, 'conn-a');
      await store.openPresence(doc, 9, 'conn-b');
      await store.openPresence(doc, 10, 'conn-c');
      await store.openPresence(doc, 9, 'conn-a'); // a renewal, not a third stream
      expect(await store.closePresence(doc, 9, 'conn-a')).toBe(false);
      expect(await store.closePresence(doc, 9, 'conn-b')).toBe(true);
      expect(await store.closePresence(doc, 10, 'conn-c')).toBe(true);
    });

    it('does not count streams of a client whose ID is a prefix of another', async () => {
      const store = factory.create(manual).open();
      await store.openPresence(doc, 1, 'conn-a');
      await store.openPresence(doc, 12, 'conn-b');
      expect(await store.closePresence(doc, 1, 'conn-a')).toBe(true);
      expect(await store.closePresence(doc, 12, 'conn-b')).toBe(true);
    });
  });

  describe('multiplexed stream positions', () => {
    it('answer a resume with the newest snapshot at or before it, always keeping the first', async () => {
      const backend = factory.create(manual);
      const store = backend.open();
      expect(await store.streamPositions('key-a', 3)).toBeNull();
      await store.saveStreamPositions('key-a', 0, { a: '0' }, 60_000);
      for (let seq = 10; seq <= 100; seq += 10) await store.saveStreamPositions('key-a', seq, { a: `e${seq}`, b: `f${seq}` }, 60_000);
      expect(await store.streamPositions('key-a', 100)).toEqual({ a: 'e100', b: 'f100' });
      expect(await store.streamPositions('key-a', 75)).toEqual({ a: 'e70', b: 'f70' });
      // Older snapshots make way for newer ones; the first one still resumes any position.
      expect(await store.streamPositions('key-a', 15)).toEqual({ a: '0' });
      expect(await store.streamPositions('key-b', 100)).toBeNull();
      // Another store on the same storage (another server instance) resumes the same stream.
      expect(await backend.open().streamPositions('key-a', 1000)).toEqual({ a: 'e100', b: 'f100' });
    });

    it('forget a stream after its time to live', async () => {
      const store = factory.create(manual).open();
      await store.saveStreamPositions('key-c', 0, { a: '0' }, 50);
      await waitFor(async () => (await store.streamPositions('key-c', 0)) === null, { message: 'stream positions kept past their TTL' });
    });
  });
});
