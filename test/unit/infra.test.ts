import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { redisUrl, startRedisServer, uniquePrefix } from '../helpers/redis.js';
import { waitFor } from '../helpers/wait.js';

describe('test infrastructure', () => {
  const redis = new Redis(redisUrl());
  afterAll(() => redis.quit());

  it('reaches the private Redis and isolates keys by prefix', async () => {
    const prefix = uniquePrefix('infra');
    expect(prefix).not.toBe(uniquePrefix('infra'));
    await redis.set(`${prefix}key`, 'value');
    expect(await redis.get(`${prefix}key`)).toBe('value');
  });

  it('waitFor resolves once the condition holds and times out with the message otherwise', async () => {
    let ready = false;
    setImmediate(() => {
      ready = true;
    });
    await waitFor(() => ready);
    await expect(waitFor(() => false, { timeout: 50, message: 'never' })).rejects.toThrow(/timed out after 50ms: never/);
  });

  it('startRedisServer gives a server that can be stopped and restarted on the same port', async () => {
    const server = await startRedisServer();
    const client = new Redis(server.url, { maxRetriesPerRequest: null });
    client.on('error', () => {});
    try {
      await client.set('k', 'v');
      await server.stop();
      await waitFor(() => client.status !== 'ready', { message: () => `client status ${client.status}` });
      await server.restart();
      // Offline commands are queued until ioredis reconnects; the restarted server is empty.
      expect(await client.get('k')).toBeNull();
      expect(server.url).toBe(`redis://127.0.0.1:${server.port}`);
    } finally {
      client.disconnect();
      await server.stop();
    }
  });

  // Vitest strips types without checking them, and the build compiles only what ships: without
  // this, a type error in a test or in bench/ would pass CI.
  it('type-checks the whole repository (tsconfig.json: server, client, shared, scripts, test, bench)', async () => {
    const cwd = fileURLToPath(new URL('../../', import.meta.url));
    const tsc = promisify(execFile)(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.json', '--noEmit'], { cwd });
    const outcome = await tsc.then(() => ({ ok: true, output: '' }), (error: { stdout?: string; message: string }) => ({ ok: false, output: error.stdout ?? error.message }));
    expect(outcome.output).toBe('');
    expect(outcome.ok).toBe(true);
  }, 120_000);
});
