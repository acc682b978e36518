// Unit tests of the client against a fake socket and a manual clock.
import { test } from 'node:test'
import assert from 'node:assert/strict'

import { createClient, websocketUrl, CellcmsError } from '../src/index.js'
import { FakeSocketServer, FakeClock, tick } from './helpers/fake.js'

const CONNECT_TIMEOUT = 5555
// The fake clock sees connect timeouts too; these are the backoff delays.
const retryDelays = (clock) => clock.delays.filter((d) => d !== CONNECT_TIMEOUT)

function setup({ random = () => 0.5, backoff, onError, token = 'tok' } = {}) {
  const server = new FakeSocketServer()
  const clock = new FakeClock()
  const statuses = []
  const client = createClient({
    apiUrl: 'http://localhost:8080',
    project: 'default',
    dataset: 'production',
    token,
    WebSocket: server.WebSocket,
    timers: clock,
    random,
    connectTimeout: CONNECT_TIMEOUT,
    backoff: backoff ?? { initialDelay: 1000, maxDelay: 8000, resetAfter: 10000 },
    onError,
  })
  client.connection.subscribe((s) => statuses.push(s))
  return { server, clock, client, statuses }
}

function collect() {
  const events = []
  const errors = []
  let completed = 0
  return {
    events,
    errors,
    get completed() {
      return completed
    },
    observer: {
      next: (e) => events.push(e),
      error: (e) => errors.push(e),
      complete: () => completed++,
    },
  }
}

const mutation = (query, documentId = 'd1', operation = 'update') => ({
  type: 'mutation',
  documentId,
  documentType: 'post',
  operation,
  ts: '2025-01-15T12:00:00.000Z',
  query,
})

test('websocketUrl maps http(s) to ws(s), appends /ws and encodes token and dataset', () => {
  assert.equal(websocketUrl('http://localhost:8080', 'production', 'a.b.c'), 'ws://localhost:8080/ws?token=a.b.c&dataset=production')
  assert.equal(websocketUrl('https://api.example.com/v1/', 'my set', 't&x'), 'wss://api.example.com/v1/ws?token=t%26x&dataset=my+set')
  assert.equal(websocketUrl('wss://h', 'd', null), 'wss://h/ws?dataset=d')
  assert.throws(() => websocketUrl('ftp://h', 'd', 't'), /http\(s\) or ws\(s\)/)
  assert.throws(() => websocketUrl('not a url', 'd', 't'), /not a valid URL/)
})

test('createClient validates its config', () => {
  const { WebSocket } = new FakeSocketServer()
  assert.throws(() => createClient({ apiUrl: 'http://h', WebSocket }), /dataset/)
  assert.throws(() => createClient({ apiUrl: 'gopher://h', dataset: 'd', WebSocket }), /apiUrl/)
  assert.throws(() => createClient({ apiUrl: 'http://h', dataset: 'd', token: 5, WebSocket }), /token/)
  const c = createClient({ apiUrl: 'http://h', dataset: 'd', WebSocket })
  assert.throws(() => c.listen(''), /query/)
  assert.throws(() => c.listen('*', [1]), /params/)
  assert.throws(() => c.listen('*', {}, { events: ['nope'] }), /unknown event/)
})

test('the socket opens lazily, is shared, and closes when nothing uses it', async () => {
  const { server, client, statuses } = setup()
  const obs = client.listen('*[_type == "post"]')
  assert.equal(server.sockets.length, 0, 'listen() alone opens nothing')
  const a = obs.subscribe(() => {})
  const b = client.listen('*[_type == "author"]').subscribe(() => {})
  client.presence.join('doc1')
  assert.equal(server.sockets.length, 1)
  const sock = server.last
  assert.equal(sock.url, 'ws://localhost:8080/ws?token=tok&dataset=production')
  assert.deepEqual(sock.sent, [], 'nothing is sent before the welcome')
  sock.accept()
  assert.deepEqual(sock.sent, [
    { type: 'subscribe', query: '*[_type == "post"]', dataset: 'production' },
    { type: 'subscribe', query: '*[_type == "author"]', dataset: 'production' },
    { type: 'presence.join', documentId: 'doc1' },
  ])
  assert.equal(client.connection.status, 'connected')
  a.unsubscribe()
  b.unsubscribe()
  await tick()
  assert.equal(sock.closedByClient, null, 'presence still uses the socket')
  client.presence.leave('doc1')
  await tick()
  assert.deepEqual(sock.closedByClient, { code: 1000, reason: 'client closed' })
  assert.deepEqual(statuses, ['closed', 'connecting', 'connected', 'closed'])
  assert.equal(server.sockets.length, 1)
})

test('an unsubscribe followed at once by a subscribe keeps the socket', async () => {
  const { server, client } = setup()
  const s1 = client.listen('*').subscribe(() => {})
  server.last.accept()
  s1.unsubscribe()
  const s2 = client.listen('*').subscribe(() => {})
  await tick()
  assert.equal(server.last.closedByClient, null)
  assert.equal(server.sockets.length, 1)
  s2.unsubscribe()
})

test('the same query and params is one wire subscription fanned out locally', async () => {
  const { server, client } = setup()
  const a = collect()
  const b = collect()
  const q = '*[_type == $t]'
  const sa = client.listen(q, { t: 'post', n: 1 }).subscribe(a.observer)
  const sb = client.listen(q, { n: 1, t: 'post' }).subscribe(b.observer)
  const sock = server.last
  sock.accept()
  assert.deepEqual(sock.sentOf('subscribe'), [{ type: 'subscribe', query: q, dataset: 'production', params: { t: 'post', n: 1 } }])
  sock.deliver(mutation(q))
  assert.equal(a.events.length, 1)
  assert.deepEqual(b.events, a.events)
  assert.deepEqual(a.events[0], { ...mutation(q) })
  sa.unsubscribe()
  assert.deepEqual(sock.sentOf('unsubscribe'), [], 'b still listens')
  sock.deliver(mutation(q, 'd2'))
  assert.equal(a.events.length, 1)
  assert.equal(b.events.length, 2)
  sb.unsubscribe()
  assert.deepEqual(sock.sentOf('unsubscribe'), [{ type: 'unsubscribe', query: q }])
})

test('the same text with other params gets a whitespace variant on the wire; events keep the caller\'s query', () => {
  const { server, client } = setup()
  const a = collect()
  const b = collect()
  const q = '*[_type == $t]'
  client.listen(q, { t: 'post' }).subscribe(a.observer)
  client.listen(q, { t: 'author' }).subscribe(b.observer)
  const sock = server.last
  sock.accept()
  const subs = sock.sentOf('subscribe')
  assert.deepEqual(
    subs.map((m) => [m.query, m.params]),
    [
      [q, { t: 'post' }],
      [q + ' ', { t: 'author' }],
    ],
  )
  sock.deliver(mutation(q + ' ', 'author-1'))
  assert.equal(a.events.length, 0)
  assert.deepEqual(b.events, [{ ...mutation(q, 'author-1') }])
})

test('a wire text is not reused until the relay confirmed its unsubscribe', () => {
  const { server, client } = setup()
  const q = '*[_type == $t]'
  const a = collect()
  const b = collect()
  const sa = client.listen(q, { t: 'post' }).subscribe(a.observer)
  const sock = server.last
  sock.accept()
  sa.unsubscribe()
  client.listen(q, { t: 'author' }).subscribe(b.observer)
  assert.equal(sock.sentOf('subscribe')[1].query, q + ' ')
  // A mutation of the old subscription still in flight reaches nobody.
  sock.deliver(mutation(q, 'post-1'))
  assert.equal(b.events.length, 0)
  sock.deliver({ type: 'unsubscribed', query: q })
  const c = collect()
  client.listen(q, { t: 'x' }).subscribe(c.observer)
  assert.equal(sock.sentOf('subscribe')[2].query, q)
})

test('a relay error for a query ends that listener only', () => {
  const { server, client, statuses } = setup()
  const bad = collect()
  const good = collect()
  client.listen('*[_type == ').subscribe(bad.observer)
  client.listen('*[_type == "post"]').subscribe(good.observer)
  const sock = server.last
  sock.accept()
  sock.deliver({ type: 'error', code: 'invalid_query', message: 'at offset 10: unexpected end', query: '*[_type == ' })
  assert.equal(bad.errors.length, 1)
  assert.ok(bad.errors[0] instanceof CellcmsError)
  assert.equal(bad.errors[0].code, 'invalid_query')
  assert.equal(bad.errors[0].query, '*[_type == ')
  assert.equal(good.errors.length, 0)
  sock.deliver(mutation('*[_type == "post"]'))
  assert.equal(good.events.length, 1)
  assert.equal(client.connection.status, 'connected')
  assert.equal(statuses.at(-1), 'connected')
})

test('errors that belong to no listener go to onError', () => {
  const errors = []
  const { server, client } = setup({ onError: (e) => errors.push(e) })
  client.presence.join('d')
  server.last.accept()
  server.last.deliver({ type: 'error', code: 'limit_exceeded', message: 'too many presence documents' })
  assert.equal(errors.length, 1)
  assert.equal(errors[0].code, 'limit_exceeded')
})

test('reconnects with exponential backoff and full jitter, capped', () => {
  let r = 0.999
  const { server, clock, client } = setup({ random: () => r, backoff: { initialDelay: 1000, maxDelay: 8000, resetAfter: 10000 } })
  client.listen('*').subscribe(() => {})
  server.last.drop(1006)
  for (let i = 0; i < 5; i++) {
    const n = server.sockets.length
    clock.advance(retryDelays(clock).at(-1) - 1)
    assert.equal(server.sockets.length, n, 'not before the delay')
    clock.advance(1)
    assert.equal(server.sockets.length, n + 1)
    assert.equal(client.connection.status, 'reconnecting')
    server.last.drop(1006)
  }
  assert.deepEqual(retryDelays(clock), [999, 1998, 3996, 7992, 7992, 7992])
  // Full jitter: the delay is random() times the cap.
  r = 0.25
  clock.advance(60000)
  server.last.drop(1006)
  assert.equal(retryDelays(clock).at(-1), 2000)
  r = 0
  clock.advance(60000)
  server.last.drop(1006)
  assert.equal(retryDelays(clock).at(-1), 0)
})

test('a connection that stayed up resets the backoff; one that dropped at once does not', () => {
  const { server, clock, client } = setup({ random: () => 1 })
  client.listen('*').subscribe(() => {})
  server.last.drop(1006)
  clock.advance(1000)
  server.last.drop(1006)
  clock.advance(2000)
  server.last.accept()
  clock.advance(500)
  server.last.drop(1006) // welcomed but short-lived: keeps growing
  assert.equal(retryDelays(clock).at(-1), 4000)
  clock.advance(4000)
  server.last.accept()
  clock.advance(10000)
  server.last.drop(1006)
  assert.equal(retryDelays(clock).at(-1), 1000)
})

test('after a reconnect every live query is resubscribed and every document re-joined', () => {
  const { server, clock, client, statuses } = setup()
  const a = collect()
  const b = collect()
  client.listen('*[_type == "post"]', null, { events: ['welcome', 'mutation', 'reconnect'] }).subscribe(a.observer)
  client.listen('*[_type == $t]', { t: 'x' }).subscribe(b.observer)
  client.listen('*[_type == $t]', { t: 'y' }).subscribe(() => {})
  client.presence.join('doc1')
  client.presence.join('doc2')
  server.last.accept()
  server.last.deliver({ type: 'subscribed', query: '*[_type == "post"]' })
  client.presence.leave('doc2')
  const first = server.last
  first.drop(1006)
  assert.equal(client.connection.status, 'reconnecting')
  assert.equal(clock.pending, 1)
  clock.advance(1000)
  assert.equal(server.sockets.length, 2)
  const second = server.last
  assert.notEqual(second, first)
  second.accept()
  assert.deepEqual(second.sent, [
    { type: 'subscribe', query: '*[_type == "post"]', dataset: 'production' },
    { type: 'subscribe', query: '*[_type == $t]', dataset: 'production', params: { t: 'x' } },
    { type: 'subscribe', query: '*[_type == $t] ', dataset: 'production', params: { t: 'y' } },
    { type: 'presence.join', documentId: 'doc1' },
  ])
  second.deliver({ type: 'subscribed', query: '*[_type == "post"]' })
  second.deliver(mutation('*[_type == "post"]'))
  second.deliver(mutation('*[_type == $t]', 'x1'))
  assert.deepEqual(
    a.events.map((e) => e.type),
    ['welcome', 'reconnect', 'welcome', 'mutation'],
  )
  assert.deepEqual(
    b.events.map((e) => e.documentId),
    ['x1'],
  )
  assert.deepEqual(statuses, ['closed', 'connecting', 'connected', 'reconnecting', 'connected'])
})

test('presence state follows snapshot, join and leave, and is rebuilt on reconnect without ghosts', () => {
  const { server, clock, client } = setup()
  const seen = []
  client.presence.subscribe((state, change) => seen.push({ state, change }))
  const alice = { userId: 'alice', userName: 'Alice' }
  const bob = { userId: 'bob', userName: 'Bob' }
  const carol = { userId: 'carol', userName: 'Carol' }
  server.last.accept({ documents: [{ documentId: 'd1', users: [alice, bob] }] })
  assert.deepEqual(seen.at(-1).change, { type: 'snapshot', documents: [{ documentId: 'd1', users: [alice, bob] }] })
  assert.deepEqual([...seen.at(-1).state], [['d1', [alice, bob]]])
  server.last.deliver({ type: 'presence.join', documentId: 'd2', ...carol })
  server.last.deliver({ type: 'presence.join', documentId: 'd2', ...carol }) // duplicate: no change
  server.last.deliver({ type: 'presence.leave', documentId: 'd1', ...bob })
  server.last.deliver({ type: 'presence.leave', documentId: 'd9', ...bob }) // unknown: no change
  assert.deepEqual(
    seen.map((s) => s.change.type),
    ['snapshot', 'join', 'leave'],
  )
  assert.deepEqual([...seen.at(-1).state], [
    ['d1', [alice]],
    ['d2', [carol]],
  ])
  // Carol's connection died while ours was down too: the new snapshot rules.
  server.last.drop(1006)
  assert.deepEqual([...seen.at(-1).state].length, 2, 'state kept during a short outage')
  clock.advance(1000)
  server.last.accept({ documents: [{ documentId: 'd1', users: [alice] }] })
  assert.deepEqual([...seen.at(-1).state], [['d1', [alice]]])
  // A late subscriber gets the current state at once.
  const late = []
  client.presence.subscribe((state, change) => late.push([state, change]))
  assert.equal(late.length, 1)
  assert.deepEqual([...late[0][0]], [['d1', [alice]]])
  // document.updated reaches presence subscribers without changing the state.
  server.last.deliver({ type: 'document.updated', documentId: 'd1', operation: 'update', ts: 't' })
  assert.deepEqual(late.at(-1)[1], { type: 'document.updated', documentId: 'd1', operation: 'update', ts: 't' })
})

test('presence is cleared once a reconnect attempt fails', () => {
  const { server, clock, client } = setup()
  const seen = []
  client.presence.subscribe((state, change) => seen.push({ state, change }))
  server.last.accept({ documents: [{ documentId: 'd1', users: [{ userId: 'a', userName: 'A' }] }] })
  server.last.drop(1006)
  clock.advance(1000)
  server.last.drop(1006) // the retry fails
  assert.equal(seen.at(-1).state.size, 0)
})

test('4001 stops reconnecting, reports unauthorized, and setToken reconnects and restores presence', () => {
  const { server, clock, client, statuses } = setup()
  const a = collect()
  const presence = []
  client.listen('*').subscribe(a.observer)
  client.presence.join('doc1')
  client.presence.subscribe((state) => presence.push(state))
  server.last.drop(4001, 'token expired')
  assert.equal(client.connection.status, 'unauthorized')
  assert.equal(a.errors.length, 1)
  assert.equal(a.errors[0].code, 'unauthorized')
  assert.equal(a.errors[0].closeCode, 4001)
  assert.equal(clock.pending, 0, 'no retry scheduled')
  clock.advance(10 * 60 * 1000)
  assert.equal(server.sockets.length, 1, 'no reconnect loop')
  // A new listener waits for a token instead of connecting.
  const b = collect()
  client.listen('*[_type == "b"]').subscribe(b.observer)
  assert.equal(server.sockets.length, 1)

  client.setToken('fresh')
  assert.equal(server.sockets.length, 2)
  assert.match(server.last.url, /token=fresh/)
  server.last.accept()
  assert.deepEqual(server.last.sent, [
    { type: 'subscribe', query: '*[_type == "b"]', dataset: 'production' },
    { type: 'presence.join', documentId: 'doc1' },
  ])
  assert.deepEqual(statuses, ['closed', 'connecting', 'unauthorized', 'connecting', 'connected'])
})

test('4003 is unauthorized too', () => {
  const { server, client } = setup()
  const a = collect()
  client.listen('*').subscribe(a.observer)
  server.last.drop(4003, 'dataset not allowed')
  assert.equal(client.connection.status, 'unauthorized')
  assert.equal(a.errors[0].closeCode, 4003)
})

test('a 4001 after setToken reconnects at once with the new token', () => {
  const { server, client } = setup()
  const a = collect()
  client.listen('*').subscribe(a.observer)
  server.last.accept()
  client.setToken('newer')
  assert.equal(server.sockets.length, 1, 'an open connection is kept')
  server.last.drop(4001, 'token expired')
  assert.equal(server.sockets.length, 2)
  assert.match(server.last.url, /token=newer/)
  assert.equal(a.errors.length, 0)
  server.last.accept()
  assert.equal(client.connection.status, 'connected')
})

test('close() completes everything, closes the socket, and refuses new work', async () => {
  const { server, clock, client, statuses } = setup()
  const a = collect()
  let presenceCompleted = 0
  let statusCompleted = 0
  client.listen('*').subscribe(a.observer)
  client.presence.subscribe({ next() {}, complete: () => presenceCompleted++ })
  client.connection.subscribe({ complete: () => statusCompleted++ })
  server.last.accept()
  client.close()
  assert.equal(a.completed, 1)
  assert.equal(presenceCompleted, 1)
  assert.equal(statusCompleted, 1)
  assert.equal(server.last.closedByClient.code, 1000)
  assert.equal(statuses.at(-1), 'closed')
  clock.advance(60000)
  assert.equal(server.sockets.length, 1)
  const late = collect()
  client.listen('*').subscribe(late.observer)
  assert.equal(late.errors[0].code, 'closed')
  assert.throws(() => client.presence.join('x'), /closed/)
})

test('unsubscribing during reconnect backoff with nothing left stops retrying', async () => {
  const { server, clock, client } = setup()
  const s = client.listen('*').subscribe(() => {})
  server.last.accept()
  server.last.drop(1006)
  assert.equal(clock.pending, 1)
  s.unsubscribe()
  await tick()
  assert.equal(clock.pending, 0)
  assert.equal(client.connection.status, 'closed')
  clock.advance(60000)
  assert.equal(server.sockets.length, 1)
})

test('listen() is Observable-interoperable', () => {
  const { server, client } = setup()
  const obs = client.listen('*')
  const sym = typeof Symbol.observable === 'symbol' ? Symbol.observable : '@@observable'
  assert.equal(obs[sym](), obs)
  assert.equal(obs['@@observable'](), obs)
  const events = []
  const sub = obs.subscribe((e) => events.push(e))
  assert.equal(sub.closed, false)
  server.last.accept()
  server.last.deliver(mutation('*'))
  assert.equal(events.length, 1)
  sub.unsubscribe()
  assert.equal(sub.closed, true)
  sub.unsubscribe() // idempotent
  server.last.deliver(mutation('*'))
  assert.equal(events.length, 1)
})

test('a throwing subscriber does not stop the others', async () => {
  const { server, client } = setup()
  const good = collect()
  const thrown = []
  // The SDK rethrows a subscriber's exception outside its own stack, as
  // RxJS does; catch it here instead of the test runner.
  const saved = process.listeners('uncaughtException')
  process.removeAllListeners('uncaughtException')
  process.on('uncaughtException', (err) => thrown.push(err))
  try {
    client.listen('*').subscribe(() => {
      throw new Error('boom')
    })
    client.listen('*').subscribe(good.observer)
    server.last.accept()
    server.last.deliver(mutation('*'))
    assert.equal(good.events.length, 1)
    await new Promise((resolve) => setTimeout(resolve, 5))
    assert.equal(thrown.length, 1)
    assert.equal(thrown[0].message, 'boom')
  } finally {
    process.removeAllListeners('uncaughtException')
    for (const l of saved) process.on('uncaughtException', l)
  }
})

test('a connection attempt without a welcome times out and is retried', () => {
  const { server, clock, client } = setup({ random: () => 1 })
  const a = collect()
  client.listen('*').subscribe(a.observer)
  const first = server.last
  clock.advance(CONNECT_TIMEOUT - 1)
  assert.equal(client.connection.status, 'connecting')
  clock.advance(1)
  assert.ok(first.closedByClient, 'the stuck socket is closed')
  assert.equal(client.connection.status, 'reconnecting')
  clock.advance(1000)
  assert.equal(server.sockets.length, 2)
  server.last.accept()
  assert.equal(client.connection.status, 'connected')
  clock.advance(10 * CONNECT_TIMEOUT)
  assert.equal(server.sockets.length, 2, 'a welcomed connection does not time out')
  first.deliver(mutation('*')) // the abandoned socket is ignored
  assert.equal(a.events.length, 0)
})

test('malformed frames from the server are ignored', () => {
  const { server, client } = setup()
  const a = collect()
  client.listen('*').subscribe(a.observer)
  server.last.accept()
  server.last.onmessage({ data: 'not json' })
  server.last.onmessage({ data: 'null' })
  server.last.onmessage({ data: Buffer.from('{}') })
  server.last.deliver({ type: 'presence.snapshot', documents: 'nope' })
  server.last.deliver({ type: 'mutation', query: 'unknown' })
  server.last.deliver(mutation('*'))
  assert.equal(a.events.length, 1)
  assert.equal(client.connection.status, 'connected')
})

test('userId and clientId come from the latest welcome and are read-only', () => {
  const { server, clock, client } = setup()
  assert.equal(client.userId, undefined)
  assert.equal(client.clientId, undefined)
  client.listen('*').subscribe(() => {})
  server.last.accept({ userId: 'alice', clientId: 'c-1' })
  assert.equal(client.userId, 'alice')
  assert.equal(client.clientId, 'c-1')
  // index.d.ts declares them readonly: a module (strict mode) gets a TypeError...
  assert.throws(() => {
    client.userId = 'mallory'
  }, TypeError)
  assert.throws(() => {
    client.clientId = 'c-forged'
  }, TypeError)
  // ...and sloppy-mode code is ignored.
  new Function('c', 'c.userId = "mallory"; c.clientId = "c-forged"')(client)
  assert.equal(client.userId, 'alice')
  assert.equal(client.clientId, 'c-1')
  // Those of the last connection stay until the next welcome replaces them.
  server.last.drop(1006)
  assert.equal(client.clientId, 'c-1')
  clock.advance(1000)
  server.last.readyState = 1
  server.last.deliver({ type: 'welcome', clientId: 'c-2' })
  assert.equal(client.userId, undefined)
  assert.equal(client.clientId, 'c-2')
})
