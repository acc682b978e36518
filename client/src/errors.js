/** An error reported to a listener (or to `onError`), from the relay or the SDK. */
export class CellcmsError extends Error {
  constructor(code, message, extra = {}) {
    super(message)
    this.name = 'CellcmsError'
    this.code = code
    if (extra.query !== undefined) this.query = extra.query
    if (extra.closeCode !== undefined) this.closeCode = extra.closeCode
    if (extra.reason !== undefined) this.reason = extra.reason
  }
}
