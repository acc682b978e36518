// The CellCMS real-time client: one lazily opened WebSocket shared by every
// listen() and by presence, reconnecting with backoff and restoring what was
// live (SPEC §4–5).  Nothing here depends on the runtime: the WebSocket
// constructor, the timers and the random source are passed in, so the entry
// points (index.js, node.js) choose them and the tests fake them.
//
// This module checks the configuration and the public API's arguments and
// wires the parts together: the connection (connection.js), the listeners'
// subscriptions (queries.js), presence (presence.js, a pure reducer, whose
// state and subscribers are kept here) and the Observable plumbing
// (observable.js).

import { Connection, websocketUrl } from './connection.js'
import { CellcmsError } from './errors.js'
import { Multicast, Sink, noSubscription, observable, safeCall, subscription, toObserver } from './observable.js'
import { forgetPresence, presenceDocuments, presenceView, reducePresence } from './presence.js'
import { QueryRegistry } from './queries.js'

export { CellcmsError, websocketUrl }

const DEFAULT_BACKOFF = { initialDelay: 1000, maxDelay: 30000, resetAfter: 10000 }
const DEFAULT_CONNECT_TIMEOUT = 15000
const LISTEN_EVENTS = new Set(['welcome', 'mutation', 'reconnect'])

function isPlainObject(value) {
  if (value === null || typeof value !== 'object') return false
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

function checkToken(token, where) {
  if (token !== undefined && token !== null && typeof token !== 'string') throw new TypeError(`${where}: token must be a string`)
}

function checkDocumentId(documentId, where) {
  if (typeof documentId !== 'string' || documentId === '') throw new TypeError(`${where}: documentId must be a non-empty string`)
}

class Client {
  #onError
  #connection
  #queries

  #joined = new Set() // documentIds this client is present on
  #presence = null // see presence.js
  #presenceObservers = new Multicast()

  constructor(config) {
    if (!config || typeof config !== 'object') throw new TypeError('createClient: config is required')
    const { apiUrl, dataset, token, project } = config
    if (typeof dataset !== 'string' || dataset === '') throw new TypeError('createClient: dataset must be a non-empty string')
    if (project !== undefined && typeof project !== 'string') throw new TypeError('createClient: project must be a string')
    checkToken(token, 'createClient')
    websocketUrl(apiUrl, dataset, token) // validates apiUrl
    if (typeof config.WebSocket !== 'function') {
      throw new TypeError('createClient: no WebSocket implementation (pass config.WebSocket, or use Node 20+ with the ws package)')
    }
    const timers = {
      setTimeout: config.timers?.setTimeout ?? ((fn, ms) => setTimeout(fn, ms)),
      clearTimeout: config.timers?.clearTimeout ?? ((id) => clearTimeout(id)),
      now: config.timers?.now ?? (() => Date.now()),
    }
    const backoff = { ...DEFAULT_BACKOFF, ...(config.backoff ?? {}) }
    if (!(backoff.initialDelay > 0 && backoff.maxDelay >= backoff.initialDelay && backoff.resetAfter >= 0)) {
      throw new TypeError('createClient: backoff needs initialDelay > 0, maxDelay >= initialDelay, resetAfter >= 0')
    }
    const connectTimeout = config.connectTimeout ?? DEFAULT_CONNECT_TIMEOUT
    if (!(connectTimeout > 0)) throw new TypeError('createClient: connectTimeout must be > 0')
    this.#onError = config.onError

    this.#connection = new Connection(
      { apiUrl, dataset, token: token ?? null, WebSocket: config.WebSocket, timers, random: config.random ?? Math.random, backoff, connectTimeout },
      {
        inUse: () => this.#queries.size > 0 || this.#joined.size > 0 || this.#presenceObservers.size > 0,
        welcome: () => {
          this.#queries.resubscribe()
          for (const documentId of this.#joined) this.#connection.send({ type: 'presence.join', documentId })
        },
        message: (msg) => this.#onMessage(msg),
        dropped: () => this.#queries.reset(),
        // After a working connection, presence stays as it was until the next
        // snapshot replaces it (no flicker on a short outage); once a reconnect
        // attempt has failed too, it is cleared (no ghosts during a long one).
        lost: (welcomed) => {
          if (!welcomed) this.#forgetPresence()
          this.#queries.reconnecting()
        },
        stopped: () => this.#forgetPresence(),
        refused: (err) => this.#queries.failAll(err),
      },
    )
    this.#queries = new QueryRegistry(dataset, this.#connection)

    this.config = Object.freeze({ apiUrl, project, dataset })
    this.presence = Object.freeze({
      join: (documentId) => this.#join(documentId),
      leave: (documentId) => this.#leave(documentId),
      subscribe: (observerOrNext, error, complete) => this.#subscribePresence(toObserver(observerOrNext, error, complete)),
    })
    const connection = this.#connection
    this.connection = Object.freeze({
      get status() {
        return connection.status
      },
      subscribe: (observerOrNext, error, complete) => connection.subscribeStatus(toObserver(observerOrNext, error, complete)),
    })
  }

  get userId() {
    return this.#connection.userId
  }

  get clientId() {
    return this.#connection.clientId
  }

  listen(query, params, options) {
    if (typeof query !== 'string' || query.trim() === '') throw new TypeError('listen: query must be a non-empty string')
    if (params !== undefined && params !== null && !isPlainObject(params)) throw new TypeError('listen: params must be a plain object')
    const events = new Set(options?.events ?? ['mutation'])
    for (const e of events) {
      if (!LISTEN_EVENTS.has(e)) throw new TypeError(`listen: unknown event type ${JSON.stringify(e)}`)
    }
    // A copy, so that the caller changing params later cannot change what is resubscribed.
    const frozenParams = params ? JSON.parse(JSON.stringify(params)) : undefined
    return observable((observer) => {
      if (this.#connection.finished) {
        new Sink(observer).error(new CellcmsError('closed', 'the client is closed', { query }))
        return noSubscription()
      }
      return this.#queries.add(query, frozenParams, events, observer)
    })
  }

  setToken(token) {
    if (this.#connection.finished) throw new Error('setToken: the client is closed')
    checkToken(token, 'setToken')
    this.#connection.setToken(token ?? null)
  }

  close() {
    if (this.#connection.finished) return
    this.#connection.close(() => {
      this.#queries.completeAll()
      this.#joined.clear()
      this.#presence = null
      this.#presenceObservers.complete()
    })
  }

  #onMessage(msg) {
    switch (msg.type) {
      case 'presence.snapshot':
      case 'presence.join':
      case 'presence.leave':
      case 'document.updated':
        return this.#applyPresence(reducePresence(this.#presence, msg))
      case 'subscribed':
      case 'unsubscribed':
      case 'mutation':
        return this.#queries.receive(msg)
      case 'error':
        return this.#onServerError(msg)
      default:
    }
  }

  #onServerError(msg) {
    const code = typeof msg.code === 'string' ? msg.code : 'error'
    const message = typeof msg.message === 'string' ? msg.message : code
    const query = typeof msg.query === 'string' ? msg.query : undefined
    if (query !== undefined && this.#queries.fail(query, code, message)) return
    safeCall(this.#onError, new CellcmsError(code, message, { query }))
  }

  // ---- presence -----------------------------------------------------------

  #applyPresence({ state, change }) {
    this.#presence = state
    if (change && this.#presenceObservers.size > 0) this.#presenceObservers.next(presenceView(state), change)
  }

  #forgetPresence() {
    this.#applyPresence(forgetPresence(this.#presence))
  }

  #join(documentId) {
    checkDocumentId(documentId, 'presence.join')
    if (this.#connection.finished) throw new Error('presence.join: the client is closed')
    if (this.#joined.has(documentId)) return
    this.#joined.add(documentId)
    if (this.#connection.ready) this.#connection.send({ type: 'presence.join', documentId })
    else this.#connection.use()
  }

  #leave(documentId) {
    checkDocumentId(documentId, 'presence.leave')
    if (!this.#joined.delete(documentId)) return
    if (this.#connection.ready) this.#connection.send({ type: 'presence.leave', documentId })
    this.#connection.release()
  }

  #subscribePresence(observer) {
    if (this.#connection.finished) {
      safeCall(observer.complete)
      return noSubscription()
    }
    this.#presenceObservers.add(observer)
    if (this.#presence) safeCall(observer.next, presenceView(this.#presence), { type: 'snapshot', documents: presenceDocuments(this.#presence) })
    this.#connection.use()
    return subscription(() => {
      this.#presenceObservers.delete(observer)
      this.#connection.release()
    })
  }
}

/**
 * createClient for an entry point: `defaultWebSocket()` names the WebSocket
 * constructor used when the config brings none.  It is asked at every call,
 * so that a WebSocket installed on globalThis later is still found.
 */
export function clientFactory(defaultWebSocket) {
  return function createClient(config) {
    if (!config || typeof config !== 'object') return new Client(config) // throws the config error
    return new Client({ ...config, WebSocket: config.WebSocket ?? defaultWebSocket() })
  }
}
