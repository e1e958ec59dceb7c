import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { waitFor } from './wait.js';

export interface RedisServerOptions {
  /** Extra redis-server arguments, e.g. `['--maxmemory', '1mb']`. */
  args?: readonly string[];
  /** How long (ms) the server may take to answer PING. */
  startTimeout?: number;
  /**
   * Keep the data across stop() and restart(): an append-only file fsynced before every reply, in a
   * directory that outlives the process, so whatever Redis acknowledged survives the SIGKILL.
   */
  durable?: boolean;
}

export interface RedisServer {
  readonly url: string;
  readonly port: number;
  /** Kills the server; a no-op when it is already stopped. */
  stop(): Promise<void>;
  /** Stops the server if running, then starts one on the same port: empty, unless `durable`. */
  restart(): Promise<void>;
}

interface Instance {
  kill(): void;
  /** Settles once the process is gone and its temp dir is removed. */
  exited: Promise<void>;
}

const HOST = '127.0.0.1';
// Another process can grab the port between probing and redis-server binding it.
const PORT_ATTEMPTS = 5;

class PortInUseError extends Error {}

/** A port nothing listens on right now (another process may still take it first). */
export async function freePort(): Promise<number> {
  const probe = createServer();
  probe.listen(0, HOST);
  await once(probe, 'listening');
  const { port } = probe.address() as AddressInfo;
  probe.close();
  await once(probe, 'close');
  return port;
}

async function answersPing(port: number, pid: number | undefined): Promise<boolean> {
  const client = new Redis({
    host: HOST,
    port,
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: 1000,
  });
  // Refused connections are expected while the server boots; connect() already
  // rejects with them, the event would only be logged as unhandled.
  client.on('error', () => {});
  try {
    await client.connect();
    if ((await client.ping()) !== 'PONG') return false;
    // On a port collision the PONG may come from whoever owns the port.
    const info = await client.info('server');
    return new RegExp(`^process_id:${pid}\\r?$`, 'm').test(info);
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

const tempDir = (): Promise<string> => mkdtemp(join(tmpdir(), 'y-sse-redis-'));

/** Runs redis-server in `dataDir` (kept), or else in a temporary directory removed when it exits. */
async function launch(port: number, options: RedisServerOptions, dataDir?: string): Promise<Instance> {
  const dir = dataDir ?? (await tempDir());
  const persistence = dataDir === undefined ? ['--appendonly', 'no'] : ['--appendonly', 'yes', '--appendfsync', 'always'];
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', HOST, '--save', '', ...persistence, '--dir', dir, ...(options.args ?? [])],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  // A crashed test worker must not leave servers behind.
  const killOnExit = () => child.kill('SIGKILL');
  process.on('exit', killOnExit);

  let output = '';
  const collect = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-4000);
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);

  let failure: Error | undefined;
  const exited = new Promise<void>((resolve) => {
    let settled = false;
    const settle = (error: Error) => {
      if (settled) return;
      settled = true;
      failure = error;
      process.off('exit', killOnExit);
      if (dataDir !== undefined) resolve();
      else void rm(dir, { recursive: true, force: true }).then(() => resolve());
    };
    child.once('error', (err: NodeJS.ErrnoException) =>
      settle(
        err.code === 'ENOENT'
          ? new Error('redis-server not found on PATH; install it (e.g. apt-get install redis-server, as .ci/run does)')
          : err,
      ),
    );
    child.once('exit', (code, signal) =>
      settle(
        /Address already in use/.test(output)
          ? new PortInUseError(`port ${port} already in use`)
          : new Error(`redis-server on port ${port} exited (code ${code}, signal ${signal}):\n${output}`),
      ),
    );
  });
  // SIGKILL: nothing is persisted, so there is nothing to flush, and it cannot hang.
  const instance: Instance = { kill: () => child.kill('SIGKILL'), exited };

  try {
    await waitFor(
      async () => {
        if (failure) throw failure;
        return answersPing(port, child.pid);
      },
      {
        timeout: options.startTimeout ?? 10_000,
        interval: 20,
        message: () => `redis-server on port ${port} never answered PING:\n${output}`,
      },
    );
  } catch (err) {
    instance.kill();
    await exited;
    throw err;
  }
  return instance;
}

async function launchOnFreePort(options: RedisServerOptions, dataDir?: string): Promise<{ port: number; instance: Instance }> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    try {
      return { port, instance: await launch(port, options, dataDir) };
    } catch (err) {
      if (!(err instanceof PortInUseError) || attempt >= PORT_ATTEMPTS) throw err;
    }
  }
}

/**
 * Starts a private, non-persistent redis-server on a free 127.0.0.1 port.
 * Rejects with a clear message when redis-server is not installed.
 */
export async function startRedisServer(options: RedisServerOptions = {}): Promise<RedisServer> {
  const dataDir = options.durable === true ? await tempDir() : undefined;
  // The data outlives every stop(), for a restart() that may come: it goes with the test process.
  if (dataDir !== undefined) process.once('exit', () => rmSync(dataDir, { recursive: true, force: true }));
  const started = await launchOnFreePort(options, dataDir);
  const { port } = started;
  let current: Instance | undefined = started.instance;

  const stop = async () => {
    const instance = current;
    current = undefined;
    if (!instance) return;
    instance.kill();
    await instance.exited;
  };

  return {
    url: `redis://${HOST}:${port}`,
    port,
    stop,
    async restart() {
      await stop();
      current = await launch(port, options, dataDir);
    },
  };
}

export interface RedisCluster {
  /** One `redis://` URL per node, the startup nodes of an ioredis `Cluster`. */
  readonly urls: readonly string[];
  readonly nodes: readonly RedisServer[];
  /** Kills every node. */
  stop(): Promise<void>;
}

const CLUSTER_SLOTS = 16384;

/** Whether the node answers `CLUSTER INFO` with every slot assigned and the cluster up. */
async function clusterReady(port: number): Promise<boolean> {
  const client = new Redis({ host: HOST, port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on('error', () => {});
  try {
    await client.connect();
    const info = await client.cluster('INFO');
    return /^cluster_state:ok\r?$/m.test(info) && new RegExp(`^cluster_slots_ok:${CLUSTER_SLOTS}\\r?$`, 'm').test(info);
  } finally {
    client.disconnect();
  }
}

/**
 * Starts a private Redis Cluster of `size` masters (no replicas) on free 127.0.0.1 ports, the
 * slots spread evenly by `redis-cli --cluster create`, and waits until every node sees it up.
 */
export async function startRedisCluster(size = 3): Promise<RedisCluster> {
  const nodes: RedisServer[] = [];
  const stop = async () => {
    await Promise.all(nodes.map((node) => node.stop()));
  };
  try {
    for (let i = 0; i < size; i++) {
      // The cluster bus gets a free port of its own: the default, port + 10000, may be taken or past 65535.
      const busPort = await freePort();
      nodes.push(
        await startRedisServer({
          args: ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-port', String(busPort)],
        }),
      );
    }
    await promisify(execFile)('redis-cli', [
      '--cluster', 'create', ...nodes.map((node) => `${HOST}:${node.port}`), '--cluster-replicas', '0', '--cluster-yes',
    ]);
    // `create` returns once the slots are assigned; the nodes learn of each other's through gossip.
    for (const node of nodes) {
      await waitFor(() => clusterReady(node.port), { message: `cluster node ${node.port} never reached cluster_state:ok` });
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { urls: nodes.map((node) => node.url), nodes, stop };
}
