// The CellCMS real-time client: one lazily opened WebSocket shared by every
// listen() and by presence, reconnecting with backoff and restoring what was
// live (SPEC §4–5).  Nothing here depends on the runtime: the WebSocket
// constructor, the timers and the random source are passed in, so the entry
// points (index.js, node.js) choose them and the tests fake them.

const DEFAULT_BACKOFF = { initialDelay: 1000, maxDelay: 30000, resetAfter: 10000 }
const DEFAULT_CONNECT_TIMEOUT = 15000
const LISTEN_EVENTS = new Set(['welcome', 'mutation', 'reconnect'])
const CLOSE_UNAUTHORIZED = 4001
const CLOSE_FORBIDDEN = 4003
const OPEN = 1

const observableSymbol = (typeof Symbol === 'function' && Symbol.observable) || '@@observable'

/** An error reported to a listener (or to `onError`), from the relay or the SDK. */
export class CellcmsError extends Error {
  constructor(code, message, extra = {}) {
    super(message)
    this.name = 'CellcmsError'
    this.code = code
    if (extra.query !== undefined) this.query = extra.query
    if (extra.closeCode !== undefined) this.closeCode = extra.closeCode
    if (extra.reason !== undefined) this.reason = extra.reason
  }
}

/** The WebSocket URL for an API URL: http(s) becomes ws(s), `/ws` is appended to its path. */
export function websocketUrl(apiUrl, dataset, token) {
  let url
  try {
    url = new URL(apiUrl)
  } catch {
    throw new TypeError(`apiUrl is not a valid URL: ${apiUrl}`)
  }
  const schemes = { 'http:': 'ws:', 'https:': 'wss:', 'ws:': 'ws:', 'wss:': 'wss:' }
  if (!schemes[url.protocol]) throw new TypeError(`apiUrl must be http(s) or ws(s): ${apiUrl}`)
  url.protocol = schemes[url.protocol]
  url.pathname = url.pathname.replace(/\/+$/, '') + '/ws'
  url.hash = ''
  if (token !== undefined && token !== null && token !== '') url.searchParams.set('token', token)
  url.searchParams.set('dataset', dataset)
  return url.toString()
}

// JSON with object keys sorted, so that {a,b} and {b,a} name one subscription.
function canonicalJson(value) {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  if (value && typeof value === 'object') {
    const keys = Object.keys(value).filter((k) => value[k] !== undefined).sort()
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`).join(',')}}`
  }
  return JSON.stringify(value) ?? 'null'
}

function isPlainObject(value) {
  if (value === null || typeof value !== 'object') return false
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

// Exceptions thrown by a subscriber's callback must not break the client or
// the other subscribers; like RxJS, rethrow them outside the current stack.
function reportLater(err) {
  setTimeout(() => {
    throw err
  }, 0)
}

function safeCall(fn, ...args) {
  if (typeof fn !== 'function') return
  try {
    fn(...args)
  } catch (err) {
    reportLater(err)
  }
}

function toObserver(observerOrNext, error, complete) {
  if (typeof observerOrNext === 'function') return { next: observerOrNext, error, complete }
  if (observerOrNext && typeof observerOrNext === 'object') {
    const o = observerOrNext
    return {
      next: o.next && o.next.bind(o),
      error: o.error && o.error.bind(o),
      complete: o.complete && o.complete.bind(o),
    }
  }
  return {}
}

function subscription(unsubscribe) {
  let closed = false
  return {
    get closed() {
      return closed
    },
    unsubscribe() {
      if (closed) return
      closed = true
      unsubscribe()
    },
  }
}

class Client {
  #apiUrl
  #dataset
  #token
  #WebSocket
  #timers
  #random
  #backoff
  #connectTimeout
  #onError

  #status = 'closed'
  #finished = false // close() was called
  #sock = null
  #sockToken = null // the token #sock was opened with
  #welcomed = false // #sock has sent its welcome: requests may be sent
  #welcomedAt = 0
  #reconnecting = false // a connection was lost and is being restored
  #attempt = 0
  #retryTimer = null
  #connectTimer = null
  #idleCheckQueued = false

  // Live queries: one entry per (query text, canonical params), shared by
  // every listener of that pair.  The relay keys subscriptions by query text
  // alone, so each entry owns a distinct "wire" text: the query itself, or
  // it followed by as many spaces as make it unique (GROQ ignores them).
  #entries = new Map() // local key -> entry
  #byWire = new Map() // wire text -> entry
  #retiring = new Set() // wire texts unsubscribed but not yet confirmed

  #joined = new Set() // documentIds this client is present on
  #presence = null // documentId -> Map(userId -> user); null until a snapshot
  #presenceObservers = new Set()
  #statusObservers = new Set()

  constructor(config) {
    if (!config || typeof config !== 'object') throw new TypeError('createClient: config is required')
    const { apiUrl, dataset, token, project } = config
    if (typeof dataset !== 'string' || dataset === '') throw new TypeError('createClient: dataset must be a non-empty string')
    if (project !== undefined && typeof project !== 'string') throw new TypeError('createClient: project must be a string')
    if (token !== undefined && token !== null && typeof token !== 'string') throw new TypeError('createClient: token must be a string')
    websocketUrl(apiUrl, dataset, token) // validates apiUrl
    if (typeof config.WebSocket !== 'function') {
      throw new TypeError('createClient: no WebSocket implementation (pass config.WebSocket, or use Node 20+ with the ws package)')
    }
    this.#apiUrl = apiUrl
    this.#dataset = dataset
    this.#token = token ?? null
    this.#WebSocket = config.WebSocket
    this.#timers = {
      setTimeout: config.timers?.setTimeout ?? ((fn, ms) => setTimeout(fn, ms)),
      clearTimeout: config.timers?.clearTimeout ?? ((id) => clearTimeout(id)),
      now: config.timers?.now ?? (() => Date.now()),
    }
    this.#random = config.random ?? Math.random
    this.#backoff = { ...DEFAULT_BACKOFF, ...(config.backoff ?? {}) }
    const b = this.#backoff
    if (!(b.initialDelay > 0 && b.maxDelay >= b.initialDelay && b.resetAfter >= 0)) {
      throw new TypeError('createClient: backoff needs initialDelay > 0, maxDelay >= initialDelay, resetAfter >= 0')
    }
    this.#connectTimeout = config.connectTimeout ?? DEFAULT_CONNECT_TIMEOUT
    if (!(this.#connectTimeout > 0)) throw new TypeError('createClient: connectTimeout must be > 0')
    this.#onError = config.onError
    this.config = Object.freeze({ apiUrl, project, dataset })

    const self = this
    this.presence = Object.freeze({
      join: (documentId) => self.#join(documentId),
      leave: (documentId) => self.#leave(documentId),
      subscribe: (observerOrNext, error, complete) => self.#subscribePresence(toObserver(observerOrNext, error, complete)),
    })
    const connection = {
      get status() {
        return self.#status
      },
      subscribe: (observerOrNext, error, complete) => self.#subscribeStatus(toObserver(observerOrNext, error, complete)),
    }
    this.connection = Object.freeze(connection)
  }

  // ---- public API -------------------------------------------------------

  listen(query, params, options) {
    if (typeof query !== 'string' || query.trim() === '') throw new TypeError('listen: query must be a non-empty string')
    if (params !== undefined && params !== null && !isPlainObject(params)) throw new TypeError('listen: params must be a plain object')
    const events = new Set(options?.events ?? ['mutation'])
    for (const e of events) {
      if (!LISTEN_EVENTS.has(e)) throw new TypeError(`listen: unknown event type ${JSON.stringify(e)}`)
    }
    const frozenParams = params ? JSON.parse(JSON.stringify(params)) : undefined
    const observable = {
      subscribe: (observerOrNext, error, complete) =>
        this.#addListener(query, frozenParams, events, toObserver(observerOrNext, error, complete)),
      [observableSymbol]() {
        return this
      },
    }
    if (observableSymbol !== '@@observable') observable['@@observable'] = observable[observableSymbol]
    return observable
  }

  setToken(token) {
    if (this.#finished) throw new Error('setToken: the client is closed')
    if (token !== undefined && token !== null && typeof token !== 'string') throw new TypeError('setToken: token must be a string')
    this.#token = token ?? null
    if (this.#status !== 'unauthorized') return // used by the next connection
    if (this.#need()) {
      this.#attempt = 0
      this.#connect()
    } else {
      this.#setStatus('closed')
    }
  }

  close() {
    if (this.#finished) return
    this.#finished = true
    this.#teardownSocket()
    for (const entry of this.#entries.values()) {
      for (const l of entry.listeners) {
        l.closed = true
        safeCall(l.observer.complete)
      }
    }
    this.#entries.clear()
    this.#byWire.clear()
    this.#joined.clear()
    this.#presence = null
    const presenceObservers = [...this.#presenceObservers]
    this.#presenceObservers.clear()
    for (const o of presenceObservers) safeCall(o.complete)
    this.#setStatus('closed')
    const statusObservers = [...this.#statusObservers]
    this.#statusObservers.clear()
    for (const o of statusObservers) safeCall(o.complete)
  }

  // ---- listeners ----------------------------------------------------------

  #addListener(query, params, events, observer) {
    if (this.#finished) {
      safeCall(observer.error, new CellcmsError('closed', 'the client is closed', { query }))
      return subscription(() => {})
    }
    const key = `${query}\u0000${params ? canonicalJson(params) : '{}'}`
    let entry = this.#entries.get(key)
    if (!entry) {
      let wire = query
      while (this.#byWire.has(wire) || this.#retiring.has(wire)) wire += ' '
      entry = { key, query, params, wire, listeners: new Set(), confirmed: false }
      this.#entries.set(key, entry)
      this.#byWire.set(wire, entry)
      this.#sendSubscribe(entry)
    }
    const listener = { observer, events, closed: false }
    entry.listeners.add(listener)
    if (entry.confirmed && events.has('welcome')) safeCall(observer.next, { type: 'welcome', query })
    this.#ensureConnected()
    return subscription(() => this.#removeListener(entry, listener))
  }

  #removeListener(entry, listener) {
    if (listener.closed) return
    listener.closed = true
    entry.listeners.delete(listener)
    if (entry.listeners.size > 0 || this.#entries.get(entry.key) !== entry) return
    this.#dropEntry(entry)
    if (this.#welcomed) {
      this.#send({ type: 'unsubscribe', query: entry.wire })
      this.#retiring.add(entry.wire)
    }
    this.#queueIdleCheck()
  }

  #dropEntry(entry) {
    this.#entries.delete(entry.key)
    this.#byWire.delete(entry.wire)
  }

  #sendSubscribe(entry) {
    if (!this.#welcomed) return // sent on welcome
    const msg = { type: 'subscribe', query: entry.wire, dataset: this.#dataset }
    if (entry.params && Object.keys(entry.params).length > 0) msg.params = entry.params
    this.#send(msg)
  }

  #emitToEntry(entry, type, event) {
    for (const l of [...entry.listeners]) {
      if (!l.closed && l.events.has(type)) safeCall(l.observer.next, event)
    }
  }

  // Ends every listener of the entry with err; the relay holds nothing for it.
  #failEntry(entry, err) {
    this.#dropEntry(entry)
    for (const l of [...entry.listeners]) {
      if (l.closed) continue
      l.closed = true
      safeCall(l.observer.error, err)
    }
    entry.listeners.clear()
    this.#queueIdleCheck()
  }

  // ---- presence -----------------------------------------------------------

  #join(documentId) {
    if (typeof documentId !== 'string' || documentId === '') throw new TypeError('presence.join: documentId must be a non-empty string')
    if (this.#finished) throw new Error('presence.join: the client is closed')
    if (this.#joined.has(documentId)) return
    this.#joined.add(documentId)
    if (this.#welcomed) this.#send({ type: 'presence.join', documentId })
    else this.#ensureConnected()
  }

  #leave(documentId) {
    if (typeof documentId !== 'string' || documentId === '') throw new TypeError('presence.leave: documentId must be a non-empty string')
    if (!this.#joined.delete(documentId)) return
    if (this.#welcomed) this.#send({ type: 'presence.leave', documentId })
    this.#queueIdleCheck()
  }

  #subscribePresence(observer) {
    if (this.#finished) {
      safeCall(observer.complete)
      return subscription(() => {})
    }
    this.#presenceObservers.add(observer)
    if (this.#presence) safeCall(observer.next, this.#presenceState(), { type: 'snapshot', documents: this.#presenceDocuments() })
    this.#ensureConnected()
    return subscription(() => {
      this.#presenceObservers.delete(observer)
      this.#queueIdleCheck()
    })
  }

  #presenceDocuments() {
    const documents = []
    for (const [documentId, users] of this.#presence ?? []) {
      documents.push({ documentId, users: [...users.values()].map((u) => ({ ...u })) })
    }
    return documents
  }

  // A fresh Map per emission: subscribers may keep the previous one.
  #presenceState() {
    const state = new Map()
    for (const [documentId, users] of this.#presence ?? []) {
      state.set(documentId, Object.freeze([...users.values()].map((u) => Object.freeze({ ...u }))))
    }
    return state
  }

  #emitPresence(change) {
    if (this.#presenceObservers.size === 0) return
    const state = this.#presenceState()
    for (const o of [...this.#presenceObservers]) {
      if (this.#presenceObservers.has(o)) safeCall(o.next, state, change)
    }
  }

  #applySnapshot(documents) {
    const presence = new Map()
    for (const doc of Array.isArray(documents) ? documents : []) {
      if (!doc || typeof doc.documentId !== 'string' || !Array.isArray(doc.users)) continue
      const users = new Map()
      for (const u of doc.users) {
        if (u && typeof u.userId === 'string') users.set(u.userId, { userId: u.userId, userName: u.userName ?? u.userId })
      }
      if (users.size > 0) presence.set(doc.documentId, users)
    }
    this.#presence = presence
    this.#emitPresence({ type: 'snapshot', documents: this.#presenceDocuments() })
  }

  #applyPresence(msg) {
    const { documentId, userId } = msg
    if (typeof documentId !== 'string' || typeof userId !== 'string') return
    const userName = typeof msg.userName === 'string' ? msg.userName : userId
    if (!this.#presence) this.#presence = new Map()
    let users = this.#presence.get(documentId)
    if (msg.type === 'presence.join') {
      if (!users) this.#presence.set(documentId, (users = new Map()))
      if (users.has(userId)) return
      users.set(userId, { userId, userName })
      this.#emitPresence({ type: 'join', documentId, userId, userName })
    } else {
      if (!users || !users.delete(userId)) return
      if (users.size === 0) this.#presence.delete(documentId)
      this.#emitPresence({ type: 'leave', documentId, userId, userName })
    }
  }

  // Without a connection nobody's presence is known: show nobody rather than
  // users who may have left long ago.
  #clearPresence() {
    if (this.#presence === null) return
    const hadUsers = this.#presence.size > 0
    this.#presence = null
    if (hadUsers) this.#emitPresence({ type: 'snapshot', documents: [] })
  }

  // ---- connection status --------------------------------------------------

  #subscribeStatus(observer) {
    this.#statusObservers.add(observer)
    safeCall(observer.next, this.#status)
    if (this.#finished) {
      this.#statusObservers.delete(observer)
      safeCall(observer.complete)
      return subscription(() => {})
    }
    return subscription(() => this.#statusObservers.delete(observer))
  }

  #setStatus(status) {
    if (this.#status === status) return
    this.#status = status
    for (const o of [...this.#statusObservers]) {
      if (this.#statusObservers.has(o)) safeCall(o.next, status)
    }
  }

  // ---- the socket -----------------------------------------------------------

  #need() {
    return !this.#finished && (this.#entries.size > 0 || this.#joined.size > 0 || this.#presenceObservers.size > 0)
  }

  #ensureConnected() {
    if (this.#finished || this.#status === 'unauthorized') return
    if (this.#sock || this.#retryTimer !== null) return
    this.#connect()
  }

  // Closing waits for the current task to finish, so that an unsubscribe
  // followed at once by a subscribe (a re-render) keeps the socket.
  #queueIdleCheck() {
    if (this.#idleCheckQueued) return
    this.#idleCheckQueued = true
    queueMicrotask(() => {
      this.#idleCheckQueued = false
      if (this.#need() || this.#finished) return
      this.#teardownSocket()
      this.#attempt = 0
      this.#reconnecting = false
      if (this.#status !== 'unauthorized') this.#setStatus('closed')
    })
  }

  #teardownSocket() {
    if (this.#retryTimer !== null) {
      this.#timers.clearTimeout(this.#retryTimer)
      this.#retryTimer = null
    }
    this.#clearConnectTimer()
    const sock = this.#sock
    this.#sock = null
    this.#welcomed = false
    this.#retiring.clear()
    for (const entry of this.#entries.values()) entry.confirmed = false
    this.#presence = null
    if (sock) {
      try {
        sock.close(1000, 'client closed')
      } catch {
        // already closing, or still connecting in an implementation that refuses
      }
    }
  }

  #connect() {
    this.#retryTimer = null
    this.#setStatus(this.#reconnecting ? 'reconnecting' : 'connecting')
    const token = this.#token
    let sock
    try {
      sock = new this.#WebSocket(websocketUrl(this.#apiUrl, this.#dataset, token))
    } catch (err) {
      // Treated like a connection that failed at once: retry with backoff.
      this.#reconnecting = true
      this.#scheduleRetry()
      return
    }
    this.#sock = sock
    this.#sockToken = token
    this.#welcomed = false
    // Handlers stay attached for the socket's life and ignore a socket that is
    // no longer current (ws throws on an 'error' event nobody listens to).
    sock.onerror = () => {}
    sock.onmessage = (ev) => {
      if (sock === this.#sock) this.#onMessage(ev.data)
    }
    sock.onclose = (ev) => {
      if (sock === this.#sock) this.#onClose(ev.code, ev.reason)
    }
    // A handshake that never completes (a black-holed address) would wait
    // forever in a browser; a relay that accepts but never says welcome
    // is as useless.  Both count as a failed attempt.
    this.#connectTimer = this.#timers.setTimeout(() => {
      this.#connectTimer = null
      if (sock !== this.#sock || this.#welcomed) return
      this.#sock = null
      try {
        sock.close()
      } catch {
        // closing a socket that is still connecting may throw; it is dropped anyway
      }
      this.#onClose(1006, 'connect timeout')
    }, this.#connectTimeout)
  }

  #clearConnectTimer() {
    if (this.#connectTimer === null) return
    this.#timers.clearTimeout(this.#connectTimer)
    this.#connectTimer = null
  }

  #send(msg) {
    const sock = this.#sock
    if (!sock || sock.readyState !== OPEN) return
    try {
      sock.send(JSON.stringify(msg))
    } catch {
      // The close event that follows restores everything on reconnect.
    }
  }

  #onMessage(data) {
    if (typeof data !== 'string') return // the protocol is JSON text only
    let msg
    try {
      msg = JSON.parse(data)
    } catch {
      return
    }
    if (!msg || typeof msg !== 'object') return
    switch (msg.type) {
      case 'welcome':
        return this.#onWelcome(msg)
      case 'presence.snapshot':
        return this.#applySnapshot(msg.documents)
      case 'presence.join':
      case 'presence.leave':
        return this.#applyPresence(msg)
      case 'subscribed': {
        const entry = this.#byWire.get(msg.query)
        if (!entry || entry.confirmed) return
        entry.confirmed = true
        return this.#emitToEntry(entry, 'welcome', { type: 'welcome', query: entry.query })
      }
      case 'unsubscribed':
        this.#retiring.delete(msg.query)
        return
      case 'mutation': {
        const entry = this.#byWire.get(msg.query)
        if (!entry) return // unsubscribed meanwhile
        return this.#emitToEntry(entry, 'mutation', {
          type: 'mutation',
          documentId: msg.documentId,
          documentType: msg.documentType,
          operation: msg.operation,
          ts: msg.ts,
          query: entry.query,
        })
      }
      case 'document.updated':
        if (typeof msg.documentId !== 'string') return
        return this.#emitPresence({ type: 'document.updated', documentId: msg.documentId, operation: msg.operation, ts: msg.ts })
      case 'error':
        return this.#onServerError(msg)
      default:
    }
  }

  #onWelcome(msg) {
    this.#clearConnectTimer()
    this.#welcomed = true
    this.#welcomedAt = this.#timers.now()
    this.#reconnecting = false
    this.userId = typeof msg.userId === 'string' ? msg.userId : undefined
    this.clientId = typeof msg.clientId === 'string' ? msg.clientId : undefined
    this.#setStatus('connected')
    for (const entry of this.#entries.values()) this.#sendSubscribe(entry)
    for (const documentId of this.#joined) this.#send({ type: 'presence.join', documentId })
  }

  #onServerError(msg) {
    const code = typeof msg.code === 'string' ? msg.code : 'error'
    const message = typeof msg.message === 'string' ? msg.message : code
    if (typeof msg.query === 'string') {
      const entry = this.#byWire.get(msg.query)
      if (entry) {
        this.#failEntry(entry, new CellcmsError(code, message, { query: entry.query }))
        return
      }
      if (this.#retiring.has(msg.query)) return
    }
    safeCall(this.#onError, new CellcmsError(code, message, typeof msg.query === 'string' ? { query: msg.query } : {}))
  }

  #onClose(code, reason) {
    this.#clearConnectTimer()
    const wasWelcomed = this.#welcomed
    this.#sock = null
    this.#welcomed = false
    this.#retiring.clear()
    for (const entry of this.#entries.values()) entry.confirmed = false

    if (code === CLOSE_UNAUTHORIZED || code === CLOSE_FORBIDDEN) {
      // A token replaced since this socket opened (setToken during an expiry)
      // deserves one immediate try; the same token would fail again forever.
      if (this.#sockToken !== this.#token && this.#need()) {
        this.#attempt = 0
        this.#connect()
        return
      }
      this.#reconnecting = false
      this.#attempt = 0
      this.#clearPresence()
      this.#setStatus('unauthorized')
      const err = new CellcmsError('unauthorized', `the relay refused the token (close ${code}${reason ? `: ${reason}` : ''})`, {
        closeCode: code,
        reason: reason || undefined,
      })
      for (const entry of [...this.#entries.values()]) this.#failEntry(entry, err)
      return
    }

    if (!this.#need()) {
      this.#clearPresence()
      this.#reconnecting = false
      this.#attempt = 0
      this.#setStatus('closed')
      return
    }
    // After a working connection, presence stays as it was until the next
    // snapshot replaces it (no flicker on a short outage); once a reconnect
    // attempt has failed too, it is cleared (no ghosts during a long one).
    if (!wasWelcomed) this.#clearPresence()
    if (wasWelcomed && this.#timers.now() - this.#welcomedAt >= this.#backoff.resetAfter) this.#attempt = 0
    this.#reconnecting = true
    for (const entry of this.#entries.values()) this.#emitToEntry(entry, 'reconnect', { type: 'reconnect', query: entry.query })
    this.#scheduleRetry()
  }

  // Exponential backoff with full jitter: a uniform delay in [0, cap).
  #scheduleRetry() {
    const { initialDelay, maxDelay } = this.#backoff
    const cap = Math.min(maxDelay, initialDelay * 2 ** Math.min(this.#attempt, 30))
    const delay = Math.floor(this.#random() * cap)
    this.#attempt++
    this.#setStatus('reconnecting')
    this.#retryTimer = this.#timers.setTimeout(() => {
      this.#retryTimer = null
      if (this.#need()) {
        this.#connect()
      } else {
        this.#reconnecting = false
        this.#attempt = 0
        this.#setStatus('closed')
      }
    }, delay)
  }
}

/** The runtime-independent factory; the package entry points supply config.WebSocket. */
export function createClientWith(config) {
  return new Client(config)
}
