export type Operation = 'create' | 'update' | 'delete' | 'publish' | 'unpublish'

/** A change to a document matching a listen() query. */
export interface ListenEvent {
  type: 'mutation'
  documentId: string
  documentType: string
  operation: Operation
  /** UTC, ISO 8601 with milliseconds, e.g. "2025-01-15T12:00:00.000Z". */
  ts: string
  /** The query text passed to listen(). */
  query: string
}

/** The relay confirmed the subscription (again after every reconnect); only with `events: ['welcome', ...]`. */
export interface WelcomeEvent {
  type: 'welcome'
  query: string
}

/** The connection dropped; events may be missed until the next welcome. Only with `events: ['reconnect', ...]`. */
export interface ReconnectEvent {
  type: 'reconnect'
  query: string
}

export type ListenEventName = 'welcome' | 'mutation' | 'reconnect'

export interface ListenOptions {
  /** Which events to emit; default ['mutation']. */
  events?: ListenEventName[]
}

export interface Observer<T> {
  next?: (value: T) => void
  error?: (err: CellcmsError) => void
  complete?: () => void
}

export interface Subscription {
  unsubscribe(): void
  readonly closed: boolean
}

export interface Observable<T> {
  subscribe(observer: Observer<T>): Subscription
  subscribe(next?: (value: T) => void, error?: (err: CellcmsError) => void, complete?: () => void): Subscription
  [Symbol.observable](): Observable<T>
  '@@observable'(): Observable<T>
}

declare global {
  interface SymbolConstructor {
    readonly observable: symbol
  }
}

export type ConnectionStatus = 'connecting' | 'connected' | 'reconnecting' | 'closed' | 'unauthorized'

export interface PresenceUser {
  readonly userId: string
  readonly userName: string
}

/** documentId -> the users present on it (other connections' view; see README). */
export type PresenceState = Map<string, readonly PresenceUser[]>

export type PresenceChange =
  | { type: 'snapshot'; documents: { documentId: string; users: PresenceUser[] }[] }
  | { type: 'join'; documentId: string; userId: string; userName: string }
  | { type: 'leave'; documentId: string; userId: string; userName: string }
  | { type: 'document.updated'; documentId: string; operation: Operation; ts: string }

export interface PresenceObserver {
  next?: (state: PresenceState, change: PresenceChange) => void
  complete?: () => void
}

export interface Presence {
  /** Mark this client as editing the document; kept across reconnects until leave(). */
  join(documentId: string): void
  leave(documentId: string): void
  subscribe(observer: PresenceObserver): Subscription
  subscribe(next: (state: PresenceState, change: PresenceChange) => void): Subscription
}

export interface Connection {
  readonly status: ConnectionStatus
  /** Calls back at once with the current status, then on every change. */
  subscribe(observer: Observer<ConnectionStatus>): Subscription
  subscribe(next: (status: ConnectionStatus) => void): Subscription
}

export interface WebSocketLike {
  readonly readyState: number
  send(data: string): void
  close(code?: number, reason?: string): void
  onmessage: ((ev: { data: unknown }) => void) | null
  onclose: ((ev: { code: number; reason: string }) => void) | null
  onerror: ((ev: unknown) => void) | null
}

export interface ClientConfig {
  /** http(s) (or ws(s)) URL of the API; the socket is `<apiUrl>/ws?token=…&dataset=…`. */
  apiUrl: string
  dataset: string
  /** Kept for compatibility with the CellCMS client config; the relay does not use it. */
  project?: string
  /** JWT for the relay. */
  token?: string | null
  /** Protocol errors that belong to no listener (e.g. a refused presence.join). */
  onError?: (err: CellcmsError) => void
  backoff?: {
    /** Cap of the first retry delay, ms (default 1000). */
    initialDelay?: number
    /** Largest cap, ms (default 30000). */
    maxDelay?: number
    /** A connection up this long resets the backoff, ms (default 10000). */
    resetAfter?: number
  }
  /** ms from opening a socket to the relay's welcome; past it the attempt counts as failed (default 15000). */
  connectTimeout?: number
  /** Injected for tests or unusual runtimes. */
  WebSocket?: new (url: string) => WebSocketLike
  timers?: {
    setTimeout?: (fn: () => void, ms: number) => unknown
    clearTimeout?: (id: unknown) => void
    now?: () => number
  }
  random?: () => number
}

export interface CellcmsClient {
  readonly config: Readonly<{ apiUrl: string; project?: string; dataset: string }>
  /** From the relay's welcome on the current or last connection; getters (assigning throws in strict mode). */
  readonly userId?: string
  readonly clientId?: string
  listen(query: string, params?: Record<string, unknown> | null, options?: ListenOptions & { events?: ['mutation'] }): Observable<ListenEvent>
  listen(query: string, params: Record<string, unknown> | null | undefined, options: ListenOptions): Observable<ListenEvent | WelcomeEvent | ReconnectEvent>
  readonly presence: Presence
  readonly connection: Connection
  /** Use this token from the next connection on; after 'unauthorized', reconnect now. */
  setToken(token: string | null): void
  /** Close the socket for good; listeners and observers complete. */
  close(): void
}

export class CellcmsError extends Error {
  /** A relay error code (invalid_query, limit_exceeded, …), 'unauthorized' or 'closed'. */
  code: string
  query?: string
  closeCode?: number
  reason?: string
}

export function createClient(config: ClientConfig): CellcmsClient
export function websocketUrl(apiUrl: string, dataset: string, token?: string | null): string
