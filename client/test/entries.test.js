// The two entry points share one factory and differ only in the WebSocket
// they fall back to: the global one (index.js), or else ws (node.js).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { WebSocketServer } from 'ws'

import * as browser from '../src/index.js'
import * as node from '../src/node.js'
import { FakeSocketServer } from './helpers/fake.js'

const config = { apiUrl: 'http://localhost:8080', dataset: 'production', token: 'tok' }

// Runs fn with globalThis.WebSocket set to value (deleted if undefined), then restores it.
function withGlobalWebSocket(value, fn) {
  const had = Object.prototype.hasOwnProperty.call(globalThis, 'WebSocket')
  const saved = globalThis.WebSocket
  if (value === undefined) delete globalThis.WebSocket
  else globalThis.WebSocket = value
  try {
    return fn()
  } finally {
    if (had) globalThis.WebSocket = saved
    else delete globalThis.WebSocket
  }
}

test('both entries export the same API', () => {
  assert.deepEqual(Object.keys(browser).sort(), ['CellcmsError', 'createClient', 'websocketUrl'])
  assert.deepEqual(Object.keys(node).sort(), Object.keys(browser).sort())
  assert.equal(node.CellcmsError, browser.CellcmsError)
  assert.equal(node.websocketUrl, browser.websocketUrl)
})

test('both entries validate the config alike', () => {
  for (const { createClient } of [browser, node]) {
    assert.throws(() => createClient(), /config is required/)
    assert.throws(() => createClient('x'), /config is required/)
    assert.throws(() => createClient({ apiUrl: 'http://h', WebSocket: new FakeSocketServer().WebSocket }), /dataset/)
  }
})

for (const [name, entry] of [
  ['index.js', browser],
  ['node.js', node],
]) {
  test(`${name}: config.WebSocket wins, else the global WebSocket at the time of the call`, () => {
    const mine = new FakeSocketServer()
    const global = new FakeSocketServer()
    const clients = []
    try {
      withGlobalWebSocket(global.WebSocket, () => {
        clients.push(entry.createClient({ ...config, WebSocket: mine.WebSocket }))
        clients[0].listen('*').subscribe(() => {})
        assert.equal(mine.sockets.length, 1)
        assert.equal(global.sockets.length, 0)
        clients.push(entry.createClient(config))
        clients[1].listen('*').subscribe(() => {})
        assert.equal(global.sockets.length, 1)
        assert.equal(global.last.url, 'ws://localhost:8080/ws?token=tok&dataset=production')
      })
    } finally {
      for (const c of clients) c.close() // their connect timeouts would keep the process alive
    }
  })
}

test('index.js without any WebSocket refuses to create a client', () => {
  withGlobalWebSocket(undefined, () => {
    assert.throws(() => browser.createClient(config), /no WebSocket implementation/)
  })
})

test('node.js without a global WebSocket connects with ws', async () => {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await new Promise((resolve) => wss.once('listening', resolve))
  const connected = new Promise((resolve) => wss.once('connection', (sock, req) => resolve({ sock, url: req.url })))
  const client = withGlobalWebSocket(undefined, () => node.createClient({ ...config, apiUrl: `http://127.0.0.1:${wss.address().port}` }))
  try {
    client.listen('*').subscribe(() => {})
    const { sock, url } = await connected
    assert.equal(url, '/ws?token=tok&dataset=production')
    const statuses = []
    client.connection.subscribe((s) => statuses.push(s))
    sock.send(JSON.stringify({ type: 'welcome', clientId: 'c1', userId: 'u1' }))
    await new Promise((resolve) => sock.once('message', resolve)) // the subscribe sent after the welcome
    assert.deepEqual(statuses, ['connecting', 'connected'])
    assert.equal(client.userId, 'u1')
  } finally {
    client.close()
    await new Promise((resolve) => wss.close(resolve))
  }
})
