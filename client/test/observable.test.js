// Unit tests of the Observable plumbing shared by listen(), presence and
// connection status.
import { test } from 'node:test'
import assert from 'node:assert/strict'

import { Multicast, Sink, observable, subscription, toObserver } from '../src/observable.js'

// Catches what safeCall rethrows asynchronously instead of the test runner.
async function thrownBy(fn) {
  const thrown = []
  const saved = process.listeners('uncaughtException')
  process.removeAllListeners('uncaughtException')
  process.on('uncaughtException', (err) => thrown.push(err))
  try {
    fn()
    await new Promise((resolve) => setTimeout(resolve, 5))
  } finally {
    process.removeAllListeners('uncaughtException')
    for (const l of saved) process.on('uncaughtException', l)
  }
  return thrown
}

test('toObserver accepts callbacks or an observer object, whose methods keep their this', () => {
  const next = () => {}
  assert.deepEqual(toObserver(next), { next, error: undefined, complete: undefined })
  const seen = []
  const obj = {
    name: 'o',
    next(v) {
      seen.push([this.name, v])
    },
  }
  const o = toObserver(obj)
  o.next(1)
  assert.deepEqual(seen, [['o', 1]])
  assert.equal(o.error, undefined)
  assert.deepEqual(toObserver(undefined), {})
})

test('observable() passes a normalised observer and is its own [Symbol.observable]', () => {
  const got = []
  const obs = observable((observer) => {
    got.push(observer)
    return subscription(() => {})
  })
  const error = () => {}
  obs.subscribe(() => {}, error)
  obs.subscribe({ complete() {} })
  assert.equal(got[0].error, error)
  assert.equal(typeof got[1].complete, 'function')
  const sym = typeof Symbol.observable === 'symbol' ? Symbol.observable : '@@observable'
  assert.equal(obs[sym](), obs)
  assert.equal(obs['@@observable'](), obs)
})

test('a subscription tears down once; closed reports unsubscribe()', () => {
  let teardowns = 0
  const sub = subscription(() => teardowns++)
  assert.equal(sub.closed, false)
  sub.unsubscribe()
  sub.unsubscribe()
  assert.equal(sub.closed, true)
  assert.equal(teardowns, 1)
})

test('a Sink delivers nothing after error, complete or close', () => {
  for (const end of ['error', 'complete', 'close']) {
    const calls = []
    const sink = new Sink({ next: (v) => calls.push(['next', v]), error: (e) => calls.push(['error', e]), complete: () => calls.push(['complete']) })
    sink.next(1)
    assert.equal(sink.closed, false)
    sink[end](end === 'error' ? 'boom' : undefined)
    assert.equal(sink.closed, true)
    sink.next(2)
    sink.error('again')
    sink.complete()
    const expected = [['next', 1]]
    if (end === 'error') expected.push(['error', 'boom'])
    if (end === 'complete') expected.push(['complete'])
    assert.deepEqual(calls, expected, end)
  }
})

test('a Sink without the callback, or with one that throws, does not throw', async () => {
  const bare = new Sink({})
  bare.next(1)
  bare.error(new Error('unheard'))
  assert.equal(bare.closed, true)
  const thrown = await thrownBy(() => {
    new Sink({
      next() {
        throw new Error('boom')
      },
    }).next(1)
  })
  assert.deepEqual(
    thrown.map((e) => e.message),
    ['boom'],
  )
})

test('Multicast: an observer removed during an emission misses the rest of it; complete() empties it', () => {
  const m = new Multicast()
  const calls = []
  const b = { next: (...args) => calls.push(['b', ...args]), complete: () => calls.push(['b done']) }
  const a = {
    next: (...args) => {
      calls.push(['a', ...args])
      m.delete(b)
    },
    complete: () => calls.push(['a done']),
  }
  m.add(a)
  m.add(b)
  assert.equal(m.size, 2)
  m.next(1, 'x')
  assert.deepEqual(calls, [['a', 1, 'x']])
  m.add(b)
  m.complete()
  assert.equal(m.size, 0)
  assert.deepEqual(calls.slice(1), [['a done'], ['b done']])
  m.next(2)
  assert.equal(calls.length, 3)
})
