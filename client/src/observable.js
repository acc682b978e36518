// The subscriber side of every stream the client offers (listen(),
// presence.subscribe, connection.subscribe): normalising what subscribe()
// was given, guarding callbacks, and the interop protocol RxJS looks for.

const observableSymbol = (typeof Symbol === 'function' && Symbol.observable) || '@@observable'

// Exceptions thrown by a subscriber's callback must not break the client or
// the other subscribers; like RxJS, rethrow them outside the current stack.
function reportLater(err) {
  setTimeout(() => {
    throw err
  }, 0)
}

export function safeCall(fn, ...args) {
  if (typeof fn !== 'function') return
  try {
    fn(...args)
  } catch (err) {
    reportLater(err)
  }
}

/** subscribe(next, error, complete) and subscribe({ next, error, complete }) as one { next, error, complete }. */
export function toObserver(observerOrNext, error, complete) {
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

/**
 * What subscribe() returns.  `closed` reports unsubscribe() only: a stream
 * that errored or completed leaves it false, and unsubscribing then is a no-op.
 */
export function subscription(teardown) {
  let closed = false
  return {
    get closed() {
      return closed
    },
    unsubscribe() {
      if (closed) return
      closed = true
      teardown()
    },
  }
}

export const noSubscription = () => subscription(() => {})

/**
 * An Observable whose subscribe(observer) receives a normalised observer;
 * `[Symbol.observable]` and `'@@observable'` make RxJS's from() accept it.
 */
export function observable(subscribe) {
  const obs = {
    subscribe: (observerOrNext, error, complete) => subscribe(toObserver(observerOrNext, error, complete)),
    [observableSymbol]() {
      return this
    },
  }
  if (observableSymbol !== '@@observable') obs['@@observable'] = obs[observableSymbol]
  return obs
}

/**
 * One subscriber of a stream that can end: after error(), complete() or
 * close() (its unsubscribe) nothing more reaches the observer.
 */
export class Sink {
  #observer
  #closed = false

  constructor(observer) {
    this.#observer = observer
  }

  get closed() {
    return this.#closed
  }

  next(value) {
    if (!this.#closed) safeCall(this.#observer.next, value)
  }

  error(err) {
    if (this.#closed) return
    this.#closed = true
    safeCall(this.#observer.error, err)
  }

  complete() {
    if (this.#closed) return
    this.#closed = true
    safeCall(this.#observer.complete)
  }

  close() {
    this.#closed = true
  }
}

/**
 * Observers of a stream that never errors (status, presence).  An observer
 * removed while an emission is under way does not receive the rest of it.
 */
export class Multicast {
  #observers = new Set()

  get size() {
    return this.#observers.size
  }

  add(observer) {
    this.#observers.add(observer)
  }

  delete(observer) {
    this.#observers.delete(observer)
  }

  next(...args) {
    for (const o of [...this.#observers]) {
      if (this.#observers.has(o)) safeCall(o.next, ...args)
    }
  }

  complete() {
    const observers = [...this.#observers]
    this.#observers.clear()
    for (const o of observers) safeCall(o.complete)
  }
}
