// Presence as a pure reducer: (state, server message) -> { state, change }.
//
// A state is null (nobody's presence is known: no snapshot yet on this
// connection, or it was forgotten) or a Map documentId -> frozen array of
// frozen { userId, userName }, in the order the relay reported them.  States
// are never modified, only replaced, so an emitted state's arrays can be
// handed to subscribers as they are; `change` is null when subscribers have
// nothing to hear.

const NO_CHANGE = null

function user(userId, userName) {
  return Object.freeze({ userId, userName })
}

// A join or leave before any snapshot makes the state known (and empty) even
// when it changes nothing; the relay always sends the snapshot first anyway.
function known(state) {
  return state ?? new Map()
}

/** The documents of a state as a snapshot change lists them: fresh, unfrozen copies. */
export function presenceDocuments(state) {
  const documents = []
  for (const [documentId, users] of state ?? []) {
    documents.push({ documentId, users: users.map((u) => ({ ...u })) })
  }
  return documents
}

/** The Map a subscriber receives: its own, since subscribers may keep or modify it. */
export function presenceView(state) {
  return new Map(state ?? [])
}

// The relay's snapshot is taken as it comes, minus what cannot be shown:
// malformed entries are skipped, a user listed twice on a document is one
// user (first position, last name), and documents without users are left out.
function snapshot(documents) {
  const state = new Map()
  for (const doc of Array.isArray(documents) ? documents : []) {
    if (!doc || typeof doc.documentId !== 'string' || !Array.isArray(doc.users)) continue
    const users = new Map()
    for (const u of doc.users) {
      if (u && typeof u.userId === 'string') users.set(u.userId, user(u.userId, u.userName ?? u.userId))
    }
    if (users.size > 0) state.set(doc.documentId, Object.freeze([...users.values()]))
  }
  return { state, change: { type: 'snapshot', documents: presenceDocuments(state) } }
}

function join(state, documentId, userId, userName) {
  const base = known(state)
  const users = base.get(documentId) ?? []
  if (users.some((u) => u.userId === userId)) return { state: base, change: NO_CHANGE }
  const next = new Map(base)
  next.set(documentId, Object.freeze([...users, user(userId, userName)]))
  return { state: next, change: { type: 'join', documentId, userId, userName } }
}

function leave(state, documentId, userId, userName) {
  const base = known(state)
  const users = base.get(documentId) ?? []
  const rest = users.filter((u) => u.userId !== userId)
  if (rest.length === users.length) return { state: base, change: NO_CHANGE }
  const next = new Map(base)
  if (rest.length === 0) next.delete(documentId)
  else next.set(documentId, Object.freeze(rest))
  return { state: next, change: { type: 'leave', documentId, userId, userName } }
}

/** The state after a server message, and the change to report (null: none). */
export function reducePresence(state, msg) {
  switch (msg?.type) {
    case 'presence.snapshot':
      return snapshot(msg.documents)
    case 'presence.join':
    case 'presence.leave': {
      const { documentId, userId } = msg
      if (typeof documentId !== 'string' || typeof userId !== 'string') return { state, change: NO_CHANGE }
      // A leave names the user as the message does, not as the join did.
      const userName = typeof msg.userName === 'string' ? msg.userName : userId
      return (msg.type === 'presence.join' ? join : leave)(state, documentId, userId, userName)
    }
    case 'document.updated':
      // Not presence, but only presence subscribers hear of it.
      if (typeof msg.documentId !== 'string') return { state, change: NO_CHANGE }
      return { state, change: { type: 'document.updated', documentId: msg.documentId, operation: msg.operation, ts: msg.ts } }
    default:
      return { state, change: NO_CHANGE }
  }
}

/**
 * Without a connection nobody's presence is known: show nobody rather than
 * users who may have left long ago.  Reported only if somebody was shown.
 */
export function forgetPresence(state) {
  const change = state && state.size > 0 ? { type: 'snapshot', documents: [] } : NO_CHANGE
  return { state: null, change }
}
