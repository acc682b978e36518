// Integration harness: a throwaway PostgreSQL cluster with the cellcms_rt
// extension and a real cellcms-relay, both on 127.0.0.1.  initdb refuses
// root, so the cluster belongs to the postgres user (runuser when we are
// root).  Everything is removed on exit, including on a crash of the tests.
import { execFile, execFileSync, spawn } from 'node:child_process'
import { createHmac } from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const run = promisify(execFile)
const here = path.dirname(fileURLToPath(import.meta.url))
const repo = path.resolve(here, '../../..')

export const JWT_SECRET = 'client-sdk-integration-secret-0123456789abcdef'

/** An HS256 JWT; claims default to a token valid for an hour. */
export function signToken(claims, secret = JWT_SECRET) {
  const b64 = (obj) => Buffer.from(JSON.stringify(obj)).toString('base64url')
  const body = { exp: Math.floor(Date.now() / 1000) + 3600, ...claims }
  const head = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(body)}`
  return `${head}.${createHmac('sha256', secret).update(head).digest('base64url')}`
}

export async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

export async function waitFor(what, fn, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await fn()
    if (v) return v
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

function pgBindir() {
  return execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim()
}

// Missing prerequisites fail the suite with what to do, never skip it.
function checkPrerequisites(relayBin) {
  if (!fs.existsSync(relayBin)) {
    throw new Error(`relay binary not found at ${relayBin}: build it with \`make\` in ${repo} (or set CELLCMS_RELAY_BIN)`)
  }
  const sharedir = execFileSync('pg_config', ['--sharedir'], { encoding: 'utf8' }).trim()
  if (!fs.existsSync(path.join(sharedir, 'extension', 'cellcms_rt.control'))) {
    throw new Error(`the cellcms_rt extension is not installed: run \`make install\` in ${repo} as root`)
  }
  const user = os.userInfo().username
  if (process.getuid() !== 0 && user !== 'postgres') {
    throw new Error('the integration tests run as root (they start a PostgreSQL cluster as the postgres user via runuser) or as postgres')
  }
}

export class Harness {
  constructor() {
    this.relayBin = process.env.CELLCMS_RELAY_BIN ?? path.join(repo, 'build', 'bin', 'cellcms-relay')
    this.dir = null
    this.relay = null
    this.relayLog = []
    this.pgPort = null
    this.port = null
    this.onExit = () => this.#stopSync()
  }

  get apiUrl() {
    return `http://127.0.0.1:${this.port}`
  }

  get databaseUrl() {
    return `postgresql://postgres@127.0.0.1:${this.pgPort}/cellcms`
  }

  #asPostgres(cmd, args) {
    if (process.getuid() === 0) return ['runuser', ['-u', 'postgres', '--', cmd, ...args]]
    return [cmd, args]
  }

  async start() {
    checkPrerequisites(this.relayBin)
    process.once('exit', this.onExit)
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cellcms-client-'))
    if (process.getuid() === 0) {
      const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }))
      const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }))
      fs.chownSync(this.dir, uid, gid)
    }
    const bindir = pgBindir()
    const data = path.join(this.dir, 'data')
    this.pgPort = await freePort()
    await run(...this.#asPostgres(path.join(bindir, 'initdb'), ['-D', data, '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8', '--locale=C']))
    fs.appendFileSync(
      path.join(data, 'postgresql.conf'),
      `listen_addresses = '127.0.0.1'\nport = ${this.pgPort}\nunix_socket_directories = '${this.dir}'\nfsync = off\n`,
    )
    await run(...this.#asPostgres(path.join(bindir, 'pg_ctl'), ['-D', data, '-l', path.join(this.dir, 'postgres.log'), '-w', '-t', '60', 'start']))
    await this.sql('CREATE DATABASE cellcms', 'postgres')
    await this.sql(fs.readFileSync(path.join(repo, 'scripts', 'sample.sql'), 'utf8'))
    this.port = await freePort()
    await this.startRelay()
  }

  /** Runs SQL in the content database; returns psql's unaligned output. */
  async sql(sql, db = 'cellcms') {
    const { stdout } = await run('psql', ['-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', String(this.pgPort), '-U', 'postgres', '-d', db, '-c', sql])
    return stdout.trim()
  }

  async startRelay(extraArgs = []) {
    const args = ['--host', '127.0.0.1', '--port', String(this.port), '--database-url', this.databaseUrl, '--log-level', 'warn', ...extraArgs]
    // The secret goes by environment, as the relay's --help recommends.
    const relay = spawn(this.relayBin, args, {
      env: { ...process.env, CELLCMS_RELAY_JWT_SECRET: JWT_SECRET },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    this.relay = relay
    const log = (chunk) => {
      this.relayLog.push(chunk.toString())
      if (this.relayLog.length > 200) this.relayLog.shift()
    }
    relay.stdout.on('data', log)
    relay.stderr.on('data', log)
    let exited = null
    relay.once('exit', (code, signal) => {
      exited = { code, signal }
    })
    await waitFor('the relay to report healthy', async () => {
      if (exited) throw new Error(`the relay exited (${JSON.stringify(exited)}):\n${this.relayLog.join('')}`)
      try {
        const res = await fetch(`${this.apiUrl}/healthz`)
        const body = await res.json()
        return res.status === 200 && body.database === 'connected'
      } catch {
        return false
      }
    }, 15000)
  }

  async killRelay() {
    const relay = this.relay
    this.relay = null
    if (!relay || relay.exitCode !== null || relay.signalCode !== null) return
    const exited = new Promise((resolve) => relay.once('exit', resolve))
    relay.kill('SIGKILL')
    await exited
  }

  async stop() {
    await this.killRelay()
    this.#stopSync()
    process.removeListener('exit', this.onExit)
  }

  // Also the 'exit' handler: synchronous only.
  #stopSync() {
    if (this.relay && this.relay.exitCode === null) this.relay.kill('SIGKILL')
    this.relay = null
    if (!this.dir) return
    const data = path.join(this.dir, 'data')
    if (fs.existsSync(path.join(data, 'postmaster.pid'))) {
      try {
        execFileSync(...this.#asPostgres(path.join(pgBindir(), 'pg_ctl'), ['-D', data, '-m', 'immediate', '-w', 'stop']), { stdio: 'ignore' })
      } catch {
        // already down
      }
    }
    fs.rmSync(this.dir, { recursive: true, force: true })
    this.dir = null
  }
}
