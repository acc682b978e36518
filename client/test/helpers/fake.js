// Test doubles for the unit tests: a WebSocket whose server side the test
// drives, and a manual clock.

export class FakeSocketServer {
  constructor() {
    this.sockets = []
    const server = this
    this.WebSocket = class FakeWebSocket {
      constructor(url) {
        this.url = url
        this.readyState = 0
        this.sent = []
        this.closedByClient = null
        this.onmessage = this.onclose = this.onerror = null
        server.sockets.push(this)
      }

      send(data) {
        if (this.readyState !== 1) throw new Error('send on a socket that is not open')
        this.sent.push(JSON.parse(data))
      }

      close(code, reason) {
        if (this.readyState >= 2) return
        this.closedByClient = { code, reason }
        this.readyState = 3
        this.onclose?.({ code: code ?? 1005, reason: reason ?? '' })
      }

      // ---- server side ----
      accept({ userId = 'u1', clientId = `c${server.sockets.indexOf(this)}`, documents = [] } = {}) {
        this.readyState = 1
        this.deliver({ type: 'welcome', clientId, userId })
        this.deliver({ type: 'presence.snapshot', documents })
      }

      deliver(msg) {
        this.onmessage?.({ data: JSON.stringify(msg) })
      }

      drop(code = 1006, reason = '') {
        if (this.readyState >= 2) return
        this.readyState = 3
        this.onclose?.({ code, reason })
      }

      // Messages of a type the client sent, without the type.
      sentOf(type) {
        return this.sent.filter((m) => m.type === type)
      }
    }
  }

  get last() {
    return this.sockets[this.sockets.length - 1]
  }
}

export class FakeClock {
  constructor() {
    this.t = 0
    this.timers = new Map()
    this.nextId = 1
    this.delays = []
    this.setTimeout = (fn, ms) => {
      const id = this.nextId++
      this.timers.set(id, { fn, at: this.t + ms })
      this.delays.push(ms)
      return id
    }
    this.clearTimeout = (id) => this.timers.delete(id)
    this.now = () => this.t
  }

  get pending() {
    return this.timers.size
  }

  advance(ms) {
    const until = this.t + ms
    for (;;) {
      let next = null
      for (const [id, tm] of this.timers) if (tm.at <= until && (!next || tm.at < next[1].at)) next = [id, tm]
      if (!next) break
      this.timers.delete(next[0])
      this.t = next[1].at
      next[1].fn()
    }
    this.t = until
  }
}

export const tick = () => new Promise((resolve) => setImmediate(resolve))
