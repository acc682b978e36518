// Node entry point: the global WebSocket when the runtime has one (Node 22+),
// else the ws package.
import WebSocket from 'ws'
import { clientFactory } from './client.js'

export { CellcmsError, websocketUrl } from './client.js'

export const createClient = clientFactory(() => globalThis.WebSocket ?? WebSocket)
