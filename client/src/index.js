// Browser (and any runtime with a global WebSocket) entry point.
import { clientFactory } from './client.js'

export { CellcmsError, websocketUrl } from './client.js'

export const createClient = clientFactory(() => globalThis.WebSocket)
