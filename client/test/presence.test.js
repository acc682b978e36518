// Unit tests of the presence reducer, without a client or a socket.
import { test } from 'node:test'
import assert from 'node:assert/strict'

import { forgetPresence, presenceDocuments, presenceView, reducePresence } from '../src/presence.js'

const alice = { userId: 'alice', userName: 'Alice' }
const bob = { userId: 'bob', userName: 'Bob' }
const carol = { userId: 'carol', userName: 'Carol' }

const snapshot = (documents) => reducePresence(null, { type: 'presence.snapshot', documents })
const join = (state, documentId, u) => reducePresence(state, { type: 'presence.join', documentId, ...u })
const leave = (state, documentId, u) => reducePresence(state, { type: 'presence.leave', documentId, ...u })
const entries = (state) => [...state]

// A plain copy of a state, to check afterwards that a reduction left it as it was.
const copy = (state) => (state === null ? null : [...state].map(([d, users]) => [d, users.map((u) => ({ ...u }))]))

test('a snapshot replaces the state and reports the documents', () => {
  const before = join(null, 'old', carol).state
  const { state, change } = reducePresence(before, {
    type: 'presence.snapshot',
    documents: [
      { documentId: 'd1', users: [alice, bob] },
      { documentId: 'd2', users: [carol] },
    ],
  })
  assert.deepEqual(entries(state), [
    ['d1', [alice, bob]],
    ['d2', [carol]],
  ])
  assert.deepEqual(change, {
    type: 'snapshot',
    documents: [
      { documentId: 'd1', users: [alice, bob] },
      { documentId: 'd2', users: [carol] },
    ],
  })
  assert.deepEqual(entries(before), [['old', [carol]]], 'the previous state is untouched')
})

test('an empty snapshot is a known, empty state and is still reported', () => {
  const { state, change } = snapshot([])
  assert.ok(state instanceof Map)
  assert.equal(state.size, 0)
  assert.deepEqual(change, { type: 'snapshot', documents: [] })
})

test('a snapshot skips what it cannot show', () => {
  const { state, change } = snapshot([
    null,
    { documentId: 5, users: [alice] },
    { documentId: 'no-users' },
    { documentId: 'empty', users: [] },
    { documentId: 'bad-users', users: [null, { userName: 'nameless' }, { userId: 7 }] },
    { documentId: 'd1', users: [{ userId: 'x' }, alice, { userId: 'alice', userName: 'Alice 2' }] },
  ])
  assert.deepEqual(entries(state), [['d1', [{ userId: 'x', userName: 'x' }, { userId: 'alice', userName: 'Alice 2' }]]])
  assert.deepEqual(change.documents, [{ documentId: 'd1', users: [{ userId: 'x', userName: 'x' }, { userId: 'alice', userName: 'Alice 2' }] }])
  assert.deepEqual(snapshot('nope'), { state: new Map(), change: { type: 'snapshot', documents: [] } })
  assert.deepEqual(snapshot(undefined).change, { type: 'snapshot', documents: [] })
})

test('a document listed twice in a snapshot keeps its first position and its last users', () => {
  const { state } = snapshot([
    { documentId: 'a', users: [alice] },
    { documentId: 'b', users: [bob] },
    { documentId: 'a', users: [carol] },
    { documentId: 'b', users: [] }, // no users: does not replace
  ])
  assert.deepEqual(entries(state), [
    ['a', [carol]],
    ['b', [bob]],
  ])
})

test('a join adds the user to the document, after those already there', () => {
  const s0 = snapshot([{ documentId: 'd1', users: [alice] }]).state
  const before = copy(s0)
  const r1 = join(s0, 'd1', bob)
  assert.deepEqual(r1.change, { type: 'join', documentId: 'd1', userId: 'bob', userName: 'Bob' })
  assert.deepEqual(entries(r1.state), [['d1', [alice, bob]]])
  const r2 = join(r1.state, 'd2', carol)
  assert.deepEqual(r2.change, { type: 'join', documentId: 'd2', userId: 'carol', userName: 'Carol' })
  assert.deepEqual(entries(r2.state), [
    ['d1', [alice, bob]],
    ['d2', [carol]],
  ])
  assert.deepEqual(copy(s0), before, 'the previous state is untouched')
  assert.notEqual(r1.state, s0)
})

test('a join without a name shows the userId as the name', () => {
  const { state, change } = reducePresence(new Map(), { type: 'presence.join', documentId: 'd1', userId: 'u9', userName: 42 })
  assert.deepEqual(change, { type: 'join', documentId: 'd1', userId: 'u9', userName: 'u9' })
  assert.deepEqual(entries(state), [['d1', [{ userId: 'u9', userName: 'u9' }]]])
})

test('a duplicate join changes nothing', () => {
  const s1 = snapshot([{ documentId: 'd1', users: [alice] }]).state
  const r = join(s1, 'd1', { userId: 'alice', userName: 'Someone else' })
  assert.equal(r.change, null)
  assert.equal(r.state, s1)
  assert.deepEqual(entries(r.state), [['d1', [alice]]])
})

test('a leave removes the user, and the document once nobody is left', () => {
  const s0 = snapshot([
    { documentId: 'd1', users: [alice, bob] },
    { documentId: 'd2', users: [carol] },
  ]).state
  const before = copy(s0)
  const r1 = leave(s0, 'd1', alice)
  assert.deepEqual(r1.change, { type: 'leave', documentId: 'd1', userId: 'alice', userName: 'Alice' })
  assert.deepEqual(entries(r1.state), [
    ['d1', [bob]],
    ['d2', [carol]],
  ])
  const r2 = leave(r1.state, 'd2', carol)
  assert.deepEqual(entries(r2.state), [['d1', [bob]]])
  assert.deepEqual(copy(s0), before, 'the previous state is untouched')
})

test('a leave reports the name the message gives, or the userId', () => {
  const s0 = snapshot([{ documentId: 'd1', users: [alice, bob] }]).state
  assert.deepEqual(leave(s0, 'd1', { userId: 'alice', userName: 'A.' }).change, { type: 'leave', documentId: 'd1', userId: 'alice', userName: 'A.' })
  assert.deepEqual(leave(s0, 'd1', { userId: 'bob' }).change, { type: 'leave', documentId: 'd1', userId: 'bob', userName: 'bob' })
})

test('a leave of an unknown user or document changes nothing', () => {
  const s0 = snapshot([{ documentId: 'd1', users: [alice] }]).state
  for (const [documentId, u] of [
    ['d1', bob],
    ['d9', alice],
  ]) {
    const r = leave(s0, documentId, u)
    assert.equal(r.change, null)
    assert.equal(r.state, s0)
  }
  assert.deepEqual(entries(s0), [['d1', [alice]]])
})

test('join and leave before any snapshot make the state known', () => {
  const r1 = leave(null, 'd1', alice)
  assert.equal(r1.change, null)
  assert.deepEqual(r1.state, new Map())
  const r2 = join(null, 'd1', alice)
  assert.deepEqual(entries(r2.state), [['d1', [alice]]])
  assert.equal(r2.change.type, 'join')
})

test('join and leave without a string documentId or userId are ignored', () => {
  const s0 = snapshot([{ documentId: 'd1', users: [alice] }]).state
  for (const type of ['presence.join', 'presence.leave']) {
    for (const msg of [
      { type, documentId: 'd1' },
      { type, userId: 'alice' },
      { type, documentId: 1, userId: 'alice' },
      { type, documentId: 'd1', userId: null },
    ]) {
      assert.deepEqual(reducePresence(s0, msg), { state: s0, change: null }, JSON.stringify(msg))
      assert.deepEqual(reducePresence(null, msg), { state: null, change: null }, JSON.stringify(msg))
    }
  }
})

test('document.updated is reported without changing the state', () => {
  const s0 = snapshot([{ documentId: 'd1', users: [alice] }]).state
  const r = reducePresence(s0, { type: 'document.updated', documentId: 'd1', operation: 'update', ts: 't', extra: 1 })
  assert.equal(r.state, s0)
  assert.deepEqual(r.change, { type: 'document.updated', documentId: 'd1', operation: 'update', ts: 't' })
  assert.deepEqual(reducePresence(null, { type: 'document.updated', documentId: 'd1' }).state, null)
  assert.deepEqual(reducePresence(s0, { type: 'document.updated', documentId: 3 }), { state: s0, change: null })
})

test('other messages change nothing', () => {
  const s0 = snapshot([{ documentId: 'd1', users: [alice] }]).state
  for (const msg of [{ type: 'mutation', query: '*' }, { type: 'welcome' }, {}, null]) {
    assert.deepEqual(reducePresence(s0, msg), { state: s0, change: null })
  }
})

test('forgetting presence makes it unknown; an empty snapshot is reported only if somebody was shown', () => {
  const s0 = snapshot([{ documentId: 'd1', users: [alice] }]).state
  assert.deepEqual(forgetPresence(s0), { state: null, change: { type: 'snapshot', documents: [] } })
  assert.deepEqual(forgetPresence(new Map()), { state: null, change: null })
  assert.deepEqual(forgetPresence(null), { state: null, change: null })
  assert.deepEqual(entries(s0), [['d1', [alice]]])
})

test('states hold frozen users; views and documents are the subscriber\'s own', () => {
  const { state, change } = snapshot([{ documentId: 'd1', users: [alice] }])
  const users = state.get('d1')
  assert.ok(Object.isFrozen(users))
  assert.ok(Object.isFrozen(users[0]))
  assert.throws(() => users.push(bob), TypeError)

  const view = presenceView(state)
  assert.notEqual(view, state)
  view.delete('d1')
  assert.deepEqual(entries(state), [['d1', [alice]]], 'changing a view does not change the state')
  assert.deepEqual(presenceView(null), new Map())

  change.documents[0].users[0].userName = 'changed'
  assert.equal(state.get('d1')[0].userName, 'Alice', 'changing a snapshot change does not change the state')
  const docs = presenceDocuments(state)
  assert.deepEqual(docs, [{ documentId: 'd1', users: [alice] }])
  assert.ok(!Object.isFrozen(docs[0].users[0]))
  assert.deepEqual(presenceDocuments(null), [])
})
