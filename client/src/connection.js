// The connection: the one WebSocket, its status, and when to open, retry or
// close it.  Nothing else in the client holds the socket, a timer or the
// reconnect attempt counter; the rest of the client learns what happened
// through the hooks and asks for a socket with use() / release().
//
//   closed --use()--> connecting --welcome--> connected
//   connecting | connected --close--> reconnecting (backoff) --timer--> reconnecting (socket) ...
//   any --4001/4003--> unauthorized --setToken()--> connecting
//   any --nothing in use--> closed          any --close()--> closed, for good

import { CellcmsError } from './errors.js'
import { Multicast, noSubscription, safeCall, subscription } from './observable.js'

const CLOSE_UNAUTHORIZED = 4001
const CLOSE_FORBIDDEN = 4003
const OPEN = 1

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

export class Connection {
  #apiUrl
  #dataset
  #WebSocket
  #timers
  #random
  #backoff
  #connectTimeout
  #hooks

  #token
  #status = 'closed'
  #statusObservers = new Multicast()
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
  #userId
  #clientId

  /**
   * hooks, all called synchronously:
   *   inUse()        does anything need the socket?
   *   welcome()      the relay said welcome: send what must be live
   *   message(msg)   any other message from the relay
   *   dropped()      the socket is gone; whatever the relay held for it is too
   *   lost(welcomed) the socket closed and will be retried with backoff
   *   stopped()      the socket closed and will not be retried
   *   refused(err)   the relay refused the token (status is 'unauthorized')
   */
  constructor({ apiUrl, dataset, token, WebSocket, timers, random, backoff, connectTimeout }, hooks) {
    this.#apiUrl = apiUrl
    this.#dataset = dataset
    this.#token = token
    this.#WebSocket = WebSocket
    this.#timers = timers
    this.#random = random
    this.#backoff = backoff
    this.#connectTimeout = connectTimeout
    this.#hooks = hooks
  }

  get status() {
    return this.#status
  }

  get finished() {
    return this.#finished
  }

  /** Requests may be sent: the current socket has been welcomed. */
  get ready() {
    return this.#welcomed
  }

  get userId() {
    return this.#userId
  }

  get clientId() {
    return this.#clientId
  }

  subscribeStatus(observer) {
    this.#statusObservers.add(observer)
    safeCall(observer.next, this.#status)
    if (this.#finished) {
      this.#statusObservers.delete(observer)
      safeCall(observer.complete)
      return noSubscription()
    }
    return subscription(() => this.#statusObservers.delete(observer))
  }

  /** Something needs the socket: open it unless it is open, pending, or refused. */
  use() {
    if (this.#finished || this.#status === 'unauthorized') return
    if (this.#sock || this.#retryTimer !== null) return
    this.#connect()
  }

  /**
   * Something stopped needing the socket: close it if nothing else does.
   * The check waits for the current task to finish, so that an unsubscribe
   * followed at once by a subscribe (a re-render) keeps the socket.
   */
  release() {
    if (this.#idleCheckQueued) return
    this.#idleCheckQueued = true
    queueMicrotask(() => {
      this.#idleCheckQueued = false
      if (this.#needed() || this.#finished) return
      this.#teardown()
      this.#attempt = 0
      this.#reconnecting = false
      this.#hooks.stopped()
      if (this.#status !== 'unauthorized') this.#setStatus('closed')
    })
  }

  send(msg) {
    const sock = this.#sock
    if (!sock || sock.readyState !== OPEN) return
    try {
      sock.send(JSON.stringify(msg))
    } catch {
      // The close event that follows restores everything on reconnect.
    }
  }

  setToken(token) {
    this.#token = token
    if (this.#status !== 'unauthorized') return // used by the next connection
    if (this.#needed()) {
      this.#attempt = 0
      this.#connect()
    } else {
      this.#setStatus('closed')
    }
  }

  /**
   * Closes for good.  settle() runs once the socket is gone and before the
   * final 'closed', so that status observers hear it after everything else
   * has completed.
   */
  close(settle) {
    this.#finished = true
    this.#teardown()
    settle()
    this.#setStatus('closed')
    this.#statusObservers.complete()
  }

  #needed() {
    return !this.#finished && this.#hooks.inUse()
  }

  #setStatus(status) {
    if (this.#status === status) return
    this.#status = status
    this.#statusObservers.next(status)
  }

  #teardown() {
    if (this.#retryTimer !== null) {
      this.#timers.clearTimeout(this.#retryTimer)
      this.#retryTimer = null
    }
    this.#clearConnectTimer()
    const sock = this.#sock
    this.#sock = null
    this.#welcomed = false
    this.#hooks.dropped()
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
    } catch {
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

  #onMessage(data) {
    if (typeof data !== 'string') return // the protocol is JSON text only
    let msg
    try {
      msg = JSON.parse(data)
    } catch {
      return
    }
    if (!msg || typeof msg !== 'object') return
    if (msg.type === 'welcome') this.#onWelcome(msg)
    else this.#hooks.message(msg)
  }

  #onWelcome(msg) {
    this.#clearConnectTimer()
    this.#welcomed = true
    this.#welcomedAt = this.#timers.now()
    this.#reconnecting = false
    this.#userId = typeof msg.userId === 'string' ? msg.userId : undefined
    this.#clientId = typeof msg.clientId === 'string' ? msg.clientId : undefined
    this.#setStatus('connected')
    this.#hooks.welcome()
  }

  #onClose(code, reason) {
    this.#clearConnectTimer()
    const wasWelcomed = this.#welcomed
    this.#sock = null
    this.#welcomed = false
    this.#hooks.dropped()

    if (code === CLOSE_UNAUTHORIZED || code === CLOSE_FORBIDDEN) {
      // A token replaced since this socket opened (setToken during an expiry)
      // deserves one immediate try; the same token would fail again forever.
      if (this.#sockToken !== this.#token && this.#needed()) {
        this.#attempt = 0
        this.#connect()
        return
      }
      this.#reconnecting = false
      this.#attempt = 0
      this.#hooks.stopped()
      this.#setStatus('unauthorized')
      this.#hooks.refused(
        new CellcmsError('unauthorized', `the relay refused the token (close ${code}${reason ? `: ${reason}` : ''})`, {
          closeCode: code,
          reason: reason || undefined,
        }),
      )
      return
    }

    if (!this.#needed()) {
      this.#hooks.stopped()
      this.#reconnecting = false
      this.#attempt = 0
      this.#setStatus('closed')
      return
    }
    if (wasWelcomed && this.#timers.now() - this.#welcomedAt >= this.#backoff.resetAfter) this.#attempt = 0
    this.#reconnecting = true
    this.#hooks.lost(wasWelcomed)
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
      if (this.#needed()) {
        this.#connect()
      } else {
        this.#reconnecting = false
        this.#attempt = 0
        this.#setStatus('closed')
      }
    }, delay)
  }
}
