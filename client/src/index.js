// Browser (and any runtime with a global WebSocket) entry point.
import { createClientWith } from './client.js'

export { CellcmsError, websocketUrl } from './client.js'

export function createClient(config) {
  if (!config || typeof config !== 'object') return createClientWith(config)
  return createClientWith({ ...config, WebSocket: config?.WebSocket ?? globalThis.WebSocket })
}
