// Integration tests: the SDK (through its Node entry point, i.e. the ws
// package) against a real cellcms-relay and a real PostgreSQL with the
// cellcms_rt extension.  The harness fails, not skips, when the relay binary
// or the installed extension is missing.
import { after, afterEach, before, test } from 'node:test'
import assert from 'node:assert/strict'
import WebSocket from 'ws'

import { createClient } from '../src/node.js'
import { Harness, signToken, waitFor } from './helpers/harness.js'

const h = new Harness()
const clients = []

before(async () => {
  await h.start()
})

// Every test ends its clients, passed or failed, so that none of them is
// still present (or listening) in the next test.
afterEach(() => {
  for (const c of clients.splice(0)) c.close()
})

after(async () => {
  await h.stop()
})

function client(user = 'alice', extra = {}) {
  const c = createClient({
    apiUrl: h.apiUrl,
    project: 'default',
    dataset: 'production',
    token: signToken({ sub: user, name: user[0].toUpperCase() + user.slice(1) }),
    backoff: { initialDelay: 200, maxDelay: 1000, resetAfter: 5000 },
    ...extra,
  })
  clients.push(c)
  return c
}

// Records what an observable emits, and waits for it.
function recorder(observable) {
  const r = { events: [], errors: [], completed: false }
  r.sub = observable.subscribe({
    next: (e) => r.events.push(e),
    error: (e) => r.errors.push(e),
    complete: () => (r.completed = true),
  })
  r.welcomes = () => r.events.filter((e) => e.type === 'welcome').length
  r.mutations = () => r.events.filter((e) => e.type === 'mutation')
  return r
}

function presenceRecorder(c) {
  const r = { state: null, changes: [] }
  r.sub = c.presence.subscribe((state, change) => {
    r.state = state
    r.changes.push(change)
  })
  r.users = (documentId) => (r.state?.get(documentId) ?? []).map((u) => u.userId).sort()
  return r
}

const ISO_MS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/

test('a listener sees create, update, publish, unpublish and delete', async () => {
  const c = client()
  const posts = recorder(c.listen('*[_type == "post"]', null, { events: ['welcome', 'mutation'] }))
  const authors = recorder(c.listen('*[_type == "author"]'))
  await waitFor('the subscription', () => posts.welcomes() === 1)
  assert.equal(c.connection.status, 'connected')

  const id = await h.sql(`INSERT INTO documents (type, data) VALUES ('post', '{"title":"a"}') RETURNING id`)
  await h.sql(`UPDATE documents SET data = '{"title":"b"}' WHERE id = '${id}'`)
  await h.sql(`UPDATE documents SET published_at = now() WHERE id = '${id}'`)
  await h.sql(`UPDATE documents SET published_at = NULL WHERE id = '${id}'`)
  await h.sql(`DELETE FROM documents WHERE id = '${id}'`)
  await waitFor('five mutations', () => posts.mutations().length >= 5)
  const got = posts.mutations()
  assert.deepEqual(
    got.map((e) => e.operation),
    ['create', 'update', 'publish', 'unpublish', 'delete'],
  )
  for (const e of got) {
    assert.equal(e.type, 'mutation')
    assert.equal(e.documentId, id)
    assert.equal(e.documentType, 'post')
    assert.equal(e.query, '*[_type == "post"]')
    assert.match(e.ts, ISO_MS)
  }
  assert.equal(authors.events.length, 0, 'another type does not match')
  assert.equal(posts.errors.length + authors.errors.length, 0)
  posts.sub.unsubscribe()
  authors.sub.unsubscribe()
  await waitFor('the idle socket to close', () => c.connection.status === 'closed')
})

test('params bind, and the same text with different params on one socket stays apart', async () => {
  const c = client()
  const q = '*[_type == $type && slug.current == $slug]'
  const a = recorder(c.listen(q, { type: 'post', slug: 'a' }, { events: ['welcome', 'mutation'] }))
  const b = recorder(c.listen(q, { type: 'post', slug: 'b' }, { events: ['welcome', 'mutation'] }))
  const a2 = recorder(c.listen(q, { slug: 'a', type: 'post' }))
  await waitFor('both subscriptions', () => a.welcomes() === 1 && b.welcomes() === 1)
  await h.sql(`INSERT INTO documents (type, data) VALUES ('post', '{"slug":{"current":"a"}}'), ('post', '{"slug":{"current":"b"}}'), ('post', '{"slug":{"current":"c"}}')`)
  await waitFor('one event each', () => a.mutations().length === 1 && b.mutations().length === 1 && a2.mutations().length === 1)
  await new Promise((resolve) => setTimeout(resolve, 300))
  assert.equal(a.mutations().length, 1)
  assert.equal(b.mutations().length, 1)
  assert.notEqual(a.mutations()[0].documentId, b.mutations()[0].documentId)
  assert.deepEqual(a2.mutations(), a.mutations())
  assert.equal(b.mutations()[0].query, q, 'events carry the caller\'s query, not the wire text')
  for (const r of [a, b, a2]) r.sub.unsubscribe()
})

test('an invalid query errors its listener only', async () => {
  const c = client()
  const bad = recorder(c.listen('*[_type == '))
  const good = recorder(c.listen('*[_type == "note"]', null, { events: ['welcome', 'mutation'] }))
  await waitFor('the error', () => bad.errors.length === 1)
  assert.equal(bad.errors[0].code, 'invalid_query')
  assert.equal(bad.errors[0].query, '*[_type == ')
  await waitFor('the good subscription', () => good.welcomes() === 1)
  await h.sql(`INSERT INTO documents (type) VALUES ('note')`)
  await waitFor('the good listener\'s event', () => good.mutations().length === 1)
  assert.equal(good.errors.length, 0)
  assert.equal(c.connection.status, 'connected')
  good.sub.unsubscribe()
})

test('presence across two clients', async () => {
  const alice = client('alice')
  const bob = client('bob')
  const bobSees = presenceRecorder(bob)
  await waitFor('bob connected', () => bob.connection.status === 'connected' && bobSees.state)
  alice.presence.join('doc-1')
  await waitFor('alice on doc-1', () => bobSees.users('doc-1').join() === 'alice')
  assert.deepEqual(bobSees.changes.at(-1), { type: 'join', documentId: 'doc-1', userId: 'alice', userName: 'Alice' })
  assert.deepEqual(bobSees.state.get('doc-1'), [{ userId: 'alice', userName: 'Alice' }])

  // A third client arriving later gets alice in its snapshot.
  const carol = client('carol')
  const carolSees = presenceRecorder(carol)
  await waitFor('carol\'s snapshot', () => carolSees.users('doc-1').join() === 'alice')
  assert.equal(carolSees.changes[0].type, 'snapshot')

  // Joins of others reach alice; her own join is not echoed to her.
  const aliceSees = presenceRecorder(alice)
  bob.presence.join('doc-1')
  await waitFor('bob on doc-1 for alice', () => aliceSees.users('doc-1').join() === 'bob')

  // A change to a document alice joined reaches her presence subscribers.
  const id = await h.sql(`INSERT INTO documents (type) VALUES ('page') RETURNING id`)
  alice.presence.join(id)
  await waitFor('alice on the page for bob', () => bobSees.users(id).join() === 'alice')
  await h.sql(`UPDATE documents SET data = '{"x":1}' WHERE id = '${id}'`)
  // (The insert's own event may arrive after the join, as 'create'.)
  const updated = () => aliceSees.changes.find((ch) => ch.type === 'document.updated' && ch.documentId === id && ch.operation === 'update')
  await waitFor('document.updated', updated)
  assert.match(updated().ts, ISO_MS)
  alice.presence.leave(id)

  alice.presence.leave('doc-1')
  await waitFor('alice gone', () => bobSees.users('doc-1').length === 0)
  assert.deepEqual(bobSees.changes.at(-1), { type: 'leave', documentId: 'doc-1', userId: 'alice', userName: 'Alice' })

  // Closing a client is a leave for the others.
  alice.presence.join('doc-2')
  await waitFor('alice on doc-2', () => carolSees.users('doc-2').join() === 'alice')
  alice.close()
  await waitFor('alice gone after close', () => carolSees.users('doc-2').length === 0)
  bob.close()
  carol.close()
})

test('after the relay restarts, listeners and presence come back by themselves, without ghosts', async () => {
  const a = client('alice')
  const b = client('bob')
  const c = client('carol')
  const statuses = []
  a.connection.subscribe((s) => statuses.push(s))
  const posts = recorder(a.listen('*[_type == "post"]', null, { events: ['welcome', 'mutation', 'reconnect'] }))
  a.presence.join('doc-r')
  c.presence.join('doc-ghost')
  const bobSees = presenceRecorder(b)
  await waitFor('presence before the restart', () => bobSees.users('doc-r').join() === 'alice' && bobSees.users('doc-ghost').join() === 'carol')
  await waitFor('the subscription', () => posts.welcomes() === 1)

  await h.killRelay()
  await waitFor('a reconnecting', () => a.connection.status === 'reconnecting')
  assert.equal(posts.events.at(-1).type, 'reconnect')
  c.close() // carol goes away while the relay is down: she must not come back
  // Let a few reconnect attempts fail against the closed port.
  await new Promise((resolve) => setTimeout(resolve, 800))
  assert.equal(a.connection.status, 'reconnecting')

  await h.startRelay()
  await waitFor('a connected again', () => a.connection.status === 'connected', 15000)
  await waitFor('the resubscription', () => posts.welcomes() === 2, 15000)
  await waitFor('alice re-joined, carol gone', () => bobSees.users('doc-r').join() === 'alice' && bobSees.users('doc-ghost').length === 0, 15000)
  assert.deepEqual([...bobSees.state.keys()], ['doc-r'])

  const id = await h.sql(`INSERT INTO documents (type) VALUES ('post') RETURNING id`)
  await waitFor('an event after the restart', () => posts.mutations().some((e) => e.documentId === id))
  assert.equal(posts.errors.length, 0)
  assert.deepEqual(statuses.slice(0, 3), ['closed', 'connecting', 'connected'])
  assert.ok(statuses.includes('reconnecting'))
  assert.equal(statuses.at(-1), 'connected')
  a.close()
  b.close()
})

// Counts connection attempts by wrapping the ws constructor.
function countingWebSocket() {
  const urls = []
  class Counting extends WebSocket {
    constructor(url, ...rest) {
      super(url, ...rest)
      urls.push(url)
    }
  }
  return { Counting, urls }
}

test('a 4001 does not loop, and setToken reconnects', async () => {
  const { Counting, urls } = countingWebSocket()
  const c = client('alice', { token: signToken({ sub: 'alice' }, 'a-different-secret-of-at-least-32-bytes!'), WebSocket: Counting })
  const statuses = []
  c.connection.subscribe((s) => statuses.push(s))
  const r = recorder(c.listen('*[_type == "post"]', null, { events: ['welcome', 'mutation'] }))
  c.presence.join('doc-auth')
  await waitFor('unauthorized', () => c.connection.status === 'unauthorized')
  assert.equal(r.errors.length, 1)
  assert.equal(r.errors[0].code, 'unauthorized')
  assert.equal(r.errors[0].closeCode, 4001)
  await new Promise((resolve) => setTimeout(resolve, 1500))
  assert.equal(urls.length, 1, 'one connection attempt, no retry loop')
  assert.deepEqual(statuses, ['closed', 'connecting', 'unauthorized'])

  const watcher = client('bob')
  const bobSees = presenceRecorder(watcher)
  const again = recorder(c.listen('*[_type == "post"]', null, { events: ['welcome', 'mutation'] }))
  c.setToken(signToken({ sub: 'alice', name: 'Alice' }))
  await waitFor('connected with the new token', () => c.connection.status === 'connected')
  await waitFor('the new subscription', () => again.welcomes() === 1)
  await waitFor('the presence join restored', () => bobSees.users('doc-auth').join() === 'alice')
  assert.equal(urls.length, 2)
  c.close()
  watcher.close()
})

test('an expired token and a forbidden dataset are unauthorized too', async () => {
  const expired = client('alice', { token: signToken({ sub: 'alice', exp: Math.floor(Date.now() / 1000) - 3600 }) })
  const e = recorder(expired.listen('*'))
  await waitFor('expired: unauthorized', () => expired.connection.status === 'unauthorized')
  assert.equal(e.errors[0].closeCode, 4001)

  const forbidden = client('alice', { token: signToken({ sub: 'alice', datasets: ['staging'] }) })
  const f = recorder(forbidden.listen('*'))
  await waitFor('forbidden: unauthorized', () => forbidden.connection.status === 'unauthorized')
  assert.equal(f.errors[0].closeCode, 4003)
  expired.close()
  forbidden.close()
})

test('a token refreshed before it expires keeps the client connected across the relay\'s 4001', async () => {
  // A relay without leeway, so that a 2-second token expires on time.
  await h.killRelay()
  await h.startRelay(['--jwt-leeway', '0'])
  const { Counting, urls } = countingWebSocket()
  const c = client('alice', { token: signToken({ sub: 'alice', exp: Math.floor(Date.now() / 1000) + 2 }), WebSocket: Counting })
  const statuses = []
  c.connection.subscribe((s) => statuses.push(s))
  const r = recorder(c.listen('*[_type == "post"]', null, { events: ['welcome', 'mutation'] }))
  await waitFor('connected', () => r.welcomes() === 1)
  c.setToken(signToken({ sub: 'alice' }))
  await waitFor('the reconnection with the fresh token', () => r.welcomes() === 2, 8000)
  assert.equal(urls.length, 2)
  assert.equal(r.errors.length, 0)
  assert.ok(!statuses.includes('unauthorized'), `statuses: ${statuses}`)
  const id = await h.sql(`INSERT INTO documents (type) VALUES ('post') RETURNING id`)
  await waitFor('an event on the new connection', () => r.mutations().some((e) => e.documentId === id))
  c.close()
})
