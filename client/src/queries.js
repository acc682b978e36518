// The query registry: which listeners exist, and which relay subscription
// ("wire" subscription) each one is served by.
//
// Listeners of the same query text and the same params share one entry and
// one wire subscription; events fan out locally.  The relay keys a
// connection's subscriptions by query text alone, so the same text with
// other params needs another key: each entry owns a distinct wire text, the
// query itself or it followed by as many spaces as make it unique (GROQ
// ignores them).  A wire text stays reserved ("retiring") from its
// unsubscribe until the relay confirms it, so that a late event of the old
// subscription cannot reach a new one with other params.

import { CellcmsError } from './errors.js'
import { Sink, subscription } from './observable.js'

// JSON with object keys sorted, so that {a,b} and {b,a} name one subscription.
function canonicalJson(value) {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  if (value && typeof value === 'object') {
    const keys = Object.keys(value).filter((k) => value[k] !== undefined).sort()
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`).join(',')}}`
  }
  return JSON.stringify(value) ?? 'null'
}

export class QueryRegistry {
  #dataset
  #connection
  #entries = new Map() // query text + canonical params -> entry
  #byWire = new Map() // wire text -> entry
  #retiring = new Set() // wire texts unsubscribed but not yet confirmed

  /** connection: { ready, send(msg), use(), release() } (a Connection). */
  constructor(dataset, connection) {
    this.#dataset = dataset
    this.#connection = connection
  }

  /** Entries with listeners, i.e. wire subscriptions the socket is needed for. */
  get size() {
    return this.#entries.size
  }

  /** A listener of `events` of (query, params); its subscription removes it. */
  add(query, params, events, observer) {
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
    const listener = { sink: new Sink(observer), events }
    entry.listeners.add(listener)
    if (entry.confirmed && events.has('welcome')) listener.sink.next({ type: 'welcome', query })
    this.#connection.use()
    return subscription(() => this.#remove(entry, listener))
  }

  /** The socket was welcomed: every entry's wire subscription is made again. */
  resubscribe() {
    for (const entry of this.#entries.values()) this.#sendSubscribe(entry)
  }

  /** The socket is gone, and with it every wire subscription. */
  reset() {
    this.#retiring.clear()
    for (const entry of this.#entries.values()) entry.confirmed = false
  }

  /** The connection dropped and is being restored: events may be missed meanwhile. */
  reconnecting() {
    for (const entry of this.#entries.values()) this.#emit(entry, 'reconnect', { type: 'reconnect', query: entry.query })
  }

  /** 'subscribed', 'unsubscribed' and 'mutation' from the relay. */
  receive(msg) {
    switch (msg.type) {
      case 'subscribed': {
        const entry = this.#byWire.get(msg.query)
        if (!entry || entry.confirmed) return
        entry.confirmed = true
        this.#emit(entry, 'welcome', { type: 'welcome', query: entry.query })
        return
      }
      case 'unsubscribed':
        this.#retiring.delete(msg.query)
        return
      case 'mutation': {
        const entry = this.#byWire.get(msg.query)
        if (!entry) return // unsubscribed meanwhile
        this.#emit(entry, 'mutation', {
          type: 'mutation',
          documentId: msg.documentId,
          documentType: msg.documentType,
          operation: msg.operation,
          ts: msg.ts,
          query: entry.query,
        })
        return
      }
      default:
    }
  }

  /**
   * A relay error naming a wire text: ends that entry's listeners.  False if
   * the error belongs to no subscription, current or retiring.
   */
  fail(wire, code, message) {
    const entry = this.#byWire.get(wire)
    if (entry) {
      this.#fail(entry, new CellcmsError(code, message, { query: entry.query }))
      return true
    }
    return this.#retiring.has(wire)
  }

  failAll(err) {
    for (const entry of [...this.#entries.values()]) this.#fail(entry, err)
  }

  completeAll() {
    for (const entry of this.#entries.values()) {
      for (const l of [...entry.listeners]) l.sink.complete()
    }
    this.#entries.clear()
    this.#byWire.clear()
  }

  #remove(entry, listener) {
    if (listener.sink.closed) return
    listener.sink.close()
    entry.listeners.delete(listener)
    if (entry.listeners.size > 0 || this.#entries.get(entry.key) !== entry) return
    this.#drop(entry)
    if (this.#connection.ready) {
      this.#connection.send({ type: 'unsubscribe', query: entry.wire })
      this.#retiring.add(entry.wire)
    }
    this.#connection.release()
  }

  #drop(entry) {
    this.#entries.delete(entry.key)
    this.#byWire.delete(entry.wire)
  }

  #sendSubscribe(entry) {
    if (!this.#connection.ready) return // sent on welcome
    const msg = { type: 'subscribe', query: entry.wire, dataset: this.#dataset }
    if (entry.params && Object.keys(entry.params).length > 0) msg.params = entry.params
    this.#connection.send(msg)
  }

  #emit(entry, type, event) {
    for (const l of [...entry.listeners]) {
      if (l.events.has(type)) l.sink.next(event)
    }
  }

  // Ends every listener of the entry with err; the relay holds nothing for it.
  #fail(entry, err) {
    this.#drop(entry)
    for (const l of [...entry.listeners]) l.sink.error(err)
    entry.listeners.clear()
    this.#connection.release()
  }
}
