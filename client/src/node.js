// Node entry point: the global WebSocket when the runtime has one (Node 22+),
// else the ws package.
import WebSocket from 'ws'
import { createClientWith } from './client.js'

export { CellcmsError, websocketUrl } from './client.js'

export function createClient(config) {
  if (!config || typeof config !== 'object') return createClientWith(config)
  return createClientWith({ ...config, WebSocket: config?.WebSocket ?? globalThis.WebSocket ?? WebSocket })
}
