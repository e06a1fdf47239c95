// A real one-node Slurm cluster on 127.0.0.1 for tests: munged, slurmctld and slurmd from the
// distribution's packages, each run in the foreground as a child of the test process, with every
// file (config, munge key and socket, state, spool, logs, job-completion log) in one fresh temp
// directory. Nothing in /etc or /run is read or written, so it coexists with a system Slurm and with
// a second harness cluster in a concurrently running test file (own ports, own socket). It runs
// as root (CI) or as an ordinary user: SlurmUser and SlurmdUser are whoever runs the test, and jobs
// run as that same user, so slurmd never needs to switch users.
//
// Cleanup has three layers, because a test may fail, forget stop(), or be SIGKILLed:
//  - stop(), called from an after() hook;
//  - an 'exit' hook that SIGKILLs the daemons synchronously when stop() was never awaited;
//  - a detached watchdog shell that outlives a killed test process and, once that process is
//    gone, kills whatever is still this cluster's and removes the directory.
// "This cluster's" means: the environment carries IBRAR_SLURM_CLUSTER=<dir> (the daemons, and
// every job, since sbatch exports the submitting environment), or a file under <dir> is open
// (slurmstepd, which slurmd leaves running when it exits, overwrites its environment with its
// process title but keeps slurmd's log open), and any descendant of those (a job submitted with
// --export=NONE that writes elsewhere). The directory name is unique, so the sweep kills this
// cluster's processes and nothing else.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';

export const SLURM_BINARIES = ['munged', 'munge', 'slurmctld', 'slurmd', 'sbatch', 'squeue', 'sinfo', 'scontrol', 'scancel', 'sacct'];
export const MARKER_VAR = 'IBRAR_SLURM_CLUSTER';
export const NODE_NAME = 'ibrar-node';
const SBIN_DIRS = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

export interface SlurmClusterOptions {
  /** Bound on bringing the node to `idle` (default 60 s; measured 1.3–1.7 s on 2 busy cores). */
  upTimeoutMs?: number;
  /**
   * Slurm holds a requeued job back for cred_expire + 1 seconds (default 120). 10 keeps a requeue
   * test short while leaving a loaded 2-core machine ample time between slurmctld signing a launch
   * credential and slurmd checking it.
   */
  credExpireS?: number;
  /** How long slurmctld keeps a finished job visible to squeue -t all / scontrol (Slurm's default 300 s). */
  minJobAgeS?: number;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface SlurmCluster {
  /** The temp directory holding everything; removed by stop(). */
  dir: string;
  /** Path of slurm.conf (also in env.SLURM_CONF). */
  conf: string;
  /** A complete environment for the client commands and for anything that submits jobs. */
  env: NodeJS.ProcessEnv;
  /** e.g. "22.05.8". */
  version: string;
  nodeName: string;
  /** The job-completion log written by jobcomp/filetxt (one line per finished job or array task). */
  jobCompFile: string;
  /** Milliseconds from the call to startSlurmCluster to the node reporting `idle`. */
  startupMs: number;
  /** Runs a command against this cluster (env set); never throws, bounded by timeoutMs (default 30 s). */
  run(cmd: string, args: string[], opts?: { timeoutMs?: number }): Promise<RunResult>;
  /** As run(), but throws with stdout/stderr unless the exit code is 0; returns stdout. */
  runOk(cmd: string, args: string[], opts?: { timeoutMs?: number }): Promise<string>;
  /** The job-completion log parsed into one key→value record per line. */
  jobComp(): Array<Record<string, string>>;
  /** The last lines of the daemons' logs, for failure messages. */
  logTail(lines?: number): string;
  /** Kills every process of this cluster (daemons, slurmstepd, jobs) and removes dir. Idempotent. */
  stop(): Promise<void>;
}

/** Why this machine cannot run the harness, or null when it can. */
export function slurmUnavailableReason(): string | null {
  if (process.platform !== 'linux') return `Slurm harness needs Linux (this is ${process.platform})`;
  const missing = SLURM_BINARIES.filter((b) => !which(b));
  if (missing.length > 0) {
    return `Slurm/munge binaries not found: ${missing.join(', ')} (apt-get install slurmctld slurmd slurm-client munge)`;
  }
  return null;
}

/**
 * Starts the cluster, or says why it cannot be started here ({skip}). Throws when the binaries are
 * present but the cluster does not come up in time (with the daemons' log tails); in that case
 * nothing it started is left running.
 */
export async function startSlurmCluster(opts: SlurmClusterOptions = {}): Promise<SlurmCluster | { skip: string }> {
  const why = slurmUnavailableReason();
  if (why) return { skip: why };
  const upTimeoutMs = opts.upTimeoutMs ?? 60_000;
  const t0 = Date.now();

  // 0755: munged refuses a socket whose directory is not searchable by everyone.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ibrar-slurm-'));
  fs.chmodSync(dir, 0o755);
  const env = clusterEnv(dir);
  const children: ChildProcess[] = [];
  const watchdog = startWatchdog(dir);
  let stopped: Promise<void> | null = null;
  const onExit = (): void => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) safeKill(c.pid, 'SIGKILL');
  };
  process.on('exit', onExit);

  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      process.off('exit', onExit);
      // SIGTERM first so slurmctld and slurmd shut down in order; what is left (slurmstepd and job
      // scripts survive slurmd by design) goes in the sweep.
      for (const c of children) if (c.exitCode === null && c.signalCode === null) safeKill(c.pid, 'SIGTERM');
      await Promise.race([Promise.all(children.map(exited)), sleep(5_000)]);
      const deadline = Date.now() + 10_000;
      for (;;) {
        const left = clusterPids(dir);
        if (left.length === 0) break;
        if (Date.now() > deadline) throw new Error(`slurm harness: processes ${left.join(' ')} of ${dir} survived SIGKILL`);
        for (const pid of left) safeKill(pid, 'SIGKILL');
        await sleep(100);
      }
      fs.rmSync(dir, { recursive: true, force: true });
      if (watchdog.pid) safeKill(watchdog.pid, 'SIGKILL');
    })();
    return stopped;
  };

  try {
    // Not sinfo --version: without a config file the clients look for one in DNS SRV records.
    const version = (await runCmd('slurmd', ['-V'], env, 10_000)).stdout.trim().split(/\s+/).pop() ?? 'unknown';
    const hw = await nodeHardware(env);
    const [ctldPort, slurmdPort] = await freePorts(2);
    const conf = path.join(dir, 'slurm.conf');
    fs.mkdirSync(path.join(dir, 'state'));
    fs.mkdirSync(path.join(dir, 'spool'));
    fs.writeFileSync(path.join(dir, 'munge.key'), crypto.randomBytes(1024), { mode: 0o600 });
    fs.writeFileSync(
      conf,
      slurmConf({
        dir,
        ctldPort,
        slurmdPort,
        hw,
        user: os.userInfo().username,
        credExpireS: opts.credExpireS ?? 10,
        minJobAgeS: opts.minJobAgeS ?? 300,
      }),
    );
    env.SLURM_CONF = conf;

    const socket = path.join(dir, 'munge.sock');
    children.push(
      daemon(dir, 'munged', [
        '--foreground',
        `--socket=${socket}`,
        `--key-file=${path.join(dir, 'munge.key')}`,
        `--pid-file=${path.join(dir, 'munged.pid')}`,
        `--seed-file=${path.join(dir, 'munged.seed')}`,
        `--log-file=${path.join(dir, 'munged.log')}`,
        // Otherwise munged resolves the host name, which may mean a DNS query.
        '--origin=127.0.0.1',
      ], env),
    );
    await waitUntil(() => fs.existsSync(socket) || failIfDead(children, dir), upTimeoutMs, 'munged socket', () => tail(dir));
    children.push(daemon(dir, 'slurmctld', ['-D', '-f', conf], env));
    children.push(daemon(dir, 'slurmd', ['-D', '-N', NODE_NAME, '-f', conf], env));

    const up = Date.now() + upTimeoutMs;
    for (;;) {
      failIfDead(children, dir);
      const r = await runCmd('sinfo', ['-h', '-n', NODE_NAME, '-o', '%t'], env, 10_000);
      if (r.code === 0 && r.stdout.trim() === 'idle') break;
      if (Date.now() > up) {
        throw new Error(`slurm harness: node not idle after ${upTimeoutMs} ms (sinfo: ${JSON.stringify(r.stdout.trim() || r.stderr.trim())})\n${tail(dir)}`);
      }
      await sleep(250);
    }

    const cluster: SlurmCluster = {
      dir,
      conf,
      env,
      version,
      nodeName: NODE_NAME,
      jobCompFile: path.join(dir, 'jobcomp.txt'),
      startupMs: Date.now() - t0,
      run: (cmd, args, o) => runCmd(cmd, args, env, o?.timeoutMs ?? 30_000),
      async runOk(cmd, args, o) {
        const r = await runCmd(cmd, args, env, o?.timeoutMs ?? 30_000);
        if (r.code !== 0) {
          throw new Error(`${cmd} ${args.join(' ')}: exit ${r.code ?? r.signal}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
        }
        return r.stdout;
      },
      jobComp: () => parseJobComp(path.join(dir, 'jobcomp.txt')),
      logTail: (lines) => tail(dir, lines),
      stop,
    };
    return cluster;
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
}

/**
 * The cluster, or null after reporting why not with t.diagnostic (the caller returns; the test
 * passes). IBRAR_TEST_REQUIRE_SLURM=1 (CI, which installs the packages) makes a missing cluster a
 * failure. The caller still owns stop(): put it in an after() hook.
 */
export async function slurmClusterIfAvailable(t: TestContext, opts?: SlurmClusterOptions): Promise<SlurmCluster | null> {
  const c = await startSlurmCluster(opts);
  if ('skip' in c) {
    assert.ok(process.env.IBRAR_TEST_REQUIRE_SLURM !== '1', `IBRAR_TEST_REQUIRE_SLURM=1 but ${c.skip}`);
    t.diagnostic(`Slurm not available (${c.skip}); nothing to check here`);
    return null;
  }
  return c;
}

/** Polls until check() is truthy; throws after timeoutMs with what was awaited (and details()). */
export async function waitUntil<T>(
  check: () => T | Promise<T>,
  timeoutMs: number,
  what: string,
  details?: () => string | Promise<string>,
  everyMs = 250,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${details ? `\n${await details()}` : ''}`);
    }
    await sleep(everyMs);
  }
}

interface Hardware {
  CPUs: string;
  Boards: string;
  SocketsPerBoard: string;
  CoresPerSocket: string;
  ThreadsPerCore: string;
  RealMemory: string;
}

function slurmConf(o: { dir: string; ctldPort: number; slurmdPort: number; hw: Hardware; user: string; credExpireS: number; minJobAgeS: number }): string {
  const d = o.dir;
  const hw = o.hw;
  return [
    '# Written by test/helpers/slurm-cluster.ts; see docs/slurm-testing.md for why each line is here.',
    'ClusterName=ibrar-test',
    'SlurmctldHost=localhost(127.0.0.1)',
    `SlurmctldPort=${o.ctldPort}`,
    `SlurmdPort=${o.slurmdPort}`,
    `SlurmUser=${o.user}`,
    `SlurmdUser=${o.user}`,
    `AuthInfo=socket=${d}/munge.sock,cred_expire=${o.credExpireS}`,
    `StateSaveLocation=${d}/state`,
    `SlurmdSpoolDir=${d}/spool`,
    `SlurmctldPidFile=${d}/slurmctld.pid`,
    `SlurmdPidFile=${d}/slurmd.pid`,
    `SlurmctldLogFile=${d}/slurmctld.log`,
    `SlurmdLogFile=${d}/slurmd.log`,
    'ProctrackType=proctrack/linuxproc',
    'TaskPlugin=task/none',
    'MpiDefault=none',
    'SchedulerType=sched/backfill',
    'SchedulerParameters=sched_interval=1',
    'SelectType=select/cons_tres',
    'SelectTypeParameters=CR_Core',
    'ReturnToService=2',
    `MinJobAge=${o.minJobAgeS}`,
    'KillWait=5',
    'MailProg=/bin/true',
    'JobAcctGatherType=jobacct_gather/none',
    'AccountingStorageType=accounting_storage/none',
    'JobCompType=jobcomp/filetxt',
    `JobCompLoc=${d}/jobcomp.txt`,
    `NodeName=${NODE_NAME} NodeHostname=localhost NodeAddr=127.0.0.1 CPUs=${hw.CPUs} Boards=${hw.Boards} ` +
      `SocketsPerBoard=${hw.SocketsPerBoard} CoresPerSocket=${hw.CoresPerSocket} ThreadsPerCore=${hw.ThreadsPerCore} ` +
      `RealMemory=${hw.RealMemory} State=UNKNOWN`,
    `PartitionName=debug Nodes=${NODE_NAME} Default=YES MaxTime=INFINITE State=UP`,
    '',
  ].join('\n');
}

// The node line must match what slurmd detects, or slurmctld drains the node ("Low socket*core*
// thread count"); `slurmd -C` prints exactly what slurmd will register with.
async function nodeHardware(env: NodeJS.ProcessEnv): Promise<Hardware> {
  const r = await runCmd('slurmd', ['-C'], env, 10_000);
  const fields: Record<string, string> = {};
  for (const m of r.stdout.matchAll(/(\w+)=(\S+)/g)) fields[m[1]] = m[2];
  const keys: Array<keyof Hardware> = ['CPUs', 'Boards', 'SocketsPerBoard', 'CoresPerSocket', 'ThreadsPerCore', 'RealMemory'];
  for (const k of keys) {
    if (!/^\d+$/.test(fields[k] ?? '')) throw new Error(`slurm harness: 'slurmd -C' gave no ${k}: ${r.stdout}${r.stderr}`);
  }
  return Object.fromEntries(keys.map((k) => [k, fields[k]])) as unknown as Hardware;
}

function clusterEnv(dir: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  // A test run inside a real Slurm allocation inherits SLURM_*/SBATCH_* input variables (partition,
  // account, cluster, job id) that would steer the clients away from this cluster.
  for (const [k, v] of Object.entries(process.env)) {
    if (!/^(SLURM_|SBATCH_|SALLOC_|SRUN_|SQUEUE_|SINFO_|SACCT_|SCONTROL_|SCANCEL_)/.test(k)) env[k] = v;
  }
  // The daemons live in /usr/sbin, which is not on every user's PATH.
  const pathDirs = (env.PATH ?? '').split(':').filter((d) => d !== '');
  for (const d of SBIN_DIRS) if (!pathDirs.includes(d)) pathDirs.push(d);
  env.PATH = pathDirs.join(':');
  env[MARKER_VAR] = dir;
  return env;
}

function daemon(dir: string, bin: string, args: string[], env: NodeJS.ProcessEnv): ChildProcess {
  // Early failures (bad config, port in use) are printed before the log file is opened.
  const fd = fs.openSync(path.join(dir, `${bin}.stderr`), 'a');
  const child = spawn(bin, args, { env, stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  child.on('error', () => undefined);
  // A forgotten stop() must not keep the test process alive; the exit hook and the watchdog clean up.
  child.unref();
  return child;
}

// Runs outside the test's process group and with the directory as an argument (not in its
// environment), so it is not one of the processes it sweeps.
function startWatchdog(dir: string): ChildProcess {
  // Same rule as clusterPids(), in bash so that it needs no node: seeds by marker or open file,
  // then their descendants, all read before anything is killed (orphans lose their parentage).
  const script = [
    'parent=$1; dir=$2; marker=$3',
    'while kill -0 "$parent" 2>/dev/null; do sleep 1; done',
    'for round in 1 2 3 4 5; do',
    '  declare -A keep=() ppid_of=()',
    '  for p in $( { grep -lzxF "$marker=$dir" /proc/[0-9]*/environ; find /proc/[0-9]*/fd -mindepth 1 -maxdepth 1 -lname "$dir/*"; } 2>/dev/null | cut -d/ -f3); do keep[$p]=1; done',
    '  [ ${#keep[@]} = 0 ] && break',
    '  for s in /proc/[0-9]*/stat; do',
    '    read -r line < "$s" || continue',
    '    p=${s#/proc/}; rest=${line##*) }; set -- $rest; ppid_of[${p%/stat}]=$2',
    '  done 2>/dev/null',
    '  grew=1',
    '  while [ $grew = 1 ]; do',
    '    grew=0',
    '    for p in "${!ppid_of[@]}"; do',
    '      if [ -z "${keep[$p]:-}" ] && [ -n "${keep[${ppid_of[$p]}]:-}" ]; then keep[$p]=1; grew=1; fi',
    '    done',
    '  done',
    '  kill -KILL "${!keep[@]}" 2>/dev/null; sleep 0.5',
    '  unset keep ppid_of',
    'done',
    'rm -rf -- "$dir"',
  ].join('\n');
  const env = { ...process.env };
  delete env[MARKER_VAR];
  const child = spawn('bash', ['-c', script, 'ibrar-slurm-watchdog', String(process.pid), dir, MARKER_VAR], {
    env,
    stdio: 'ignore',
    detached: true,
  });
  child.on('error', () => undefined);
  child.unref();
  return child;
}

// See the file comment for what makes a process this cluster's; their descendants count too, for
// jobs submitted with --export=NONE whose output is elsewhere (found through slurmstepd).
function clusterPids(dir: string): number[] {
  const want = `${MARKER_VAR}=${dir}`;
  const found = new Set<number>();
  const parentOf = new Map<number, number>();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'latin1');
      // "pid (comm) state ppid …", where comm may contain spaces and parentheses.
      parentOf.set(pid, Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
      if (pid === process.pid) continue;
      if (fs.readFileSync(`/proc/${name}/environ`, 'latin1').split('\0').includes(want)) {
        found.add(pid);
        continue;
      }
      for (const fd of fs.readdirSync(`/proc/${name}/fd`)) {
        if (safeReadlink(`/proc/${name}/fd/${fd}`).startsWith(`${dir}/`)) {
          found.add(pid);
          break;
        }
      }
    } catch {
      /* exited meanwhile, or not ours to read */
    }
  }
  for (let grew = true; grew; ) {
    grew = false;
    for (const [pid, ppid] of parentOf) {
      if (!found.has(pid) && found.has(ppid) && pid !== process.pid) {
        found.add(pid);
        grew = true;
      }
    }
  }
  return [...found];
}

function safeReadlink(p: string): string {
  try {
    return fs.readlinkSync(p);
  } catch {
    return '';
  }
}

function failIfDead(children: ChildProcess[], dir: string): false {
  for (const c of children) {
    if (c.exitCode !== null || c.signalCode !== null) {
      throw new Error(`slurm harness: ${c.spawnfile} exited early (${c.exitCode ?? c.signalCode})\n${tail(dir)}`);
    }
  }
  return false;
}

function tail(dir: string, lines = 15): string {
  const parts: string[] = [];
  for (const f of ['munged.stderr', 'slurmctld.stderr', 'slurmctld.log', 'slurmd.stderr', 'slurmd.log']) {
    let text: string;
    try {
      text = fs.readFileSync(path.join(dir, f), 'utf8');
    } catch {
      continue;
    }
    const ls = text.trimEnd().split('\n').slice(-lines);
    if (ls.length > 0 && ls[0] !== '') parts.push(`--- ${f}\n${ls.join('\n')}`);
  }
  return parts.join('\n');
}

function parseJobComp(file: string): Array<Record<string, string>> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  // Values can contain spaces (job names, paths), so a value runs up to the next " Key=".
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((line) => {
      const rec: Record<string, string> = {};
      for (const m of line.matchAll(/(?:^|\s)([A-Za-z]+)=(.*?)(?=\s+[A-Za-z]+=|\s*$)/g)) rec[m[1]] = m[2];
      return rec;
    });
}

function runCmd(cmd: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs, killSignal: 'SIGKILL' });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.on('error', (err) => resolve({ code: null, signal: null, stdout, stderr: stderr + String(err) }));
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

// Ports from the kernel's free ephemeral range instead of Slurm's fixed 6817/6818, which a system
// Slurm or a second harness cluster may hold. Both are held until both are chosen so they differ.
async function freePorts(n: number): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const s = net.createServer();
      servers.push(s);
      await new Promise<void>((res, rej) => s.once('error', rej).listen(0, '127.0.0.1', () => res()));
    }
    return servers.map((s) => (s.address() as net.AddressInfo).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((res) => s.close(res))));
  }
}

function which(bin: string): string | null {
  const dirs = [...(process.env.PATH ?? '').split(':'), ...SBIN_DIRS];
  for (const d of dirs) {
    if (!d) continue;
    const p = path.join(d, bin);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return null;
}

function exited(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null || c.pid === undefined) return Promise.resolve();
  return new Promise((res) => c.once('exit', () => res()));
}

function safeKill(pid: number | undefined, sig: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(pid, sig);
  } catch {
    /* already gone */
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((res) => setTimeout(res, ms));
}
