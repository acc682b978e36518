// Prints live changes to posts, who is editing a document, and the
// connection status, until Ctrl-C.
//
//   CELLCMS_API_URL=http://localhost:8080 CELLCMS_TOKEN=<jwt> node examples/listen.js [documentId]
import { createClient } from '@cellcms/client'

const token = process.env.CELLCMS_TOKEN
if (!token) {
  console.error('set CELLCMS_TOKEN to a JWT the relay accepts')
  process.exit(2)
}
const client = createClient({
  apiUrl: process.env.CELLCMS_API_URL ?? 'http://localhost:8080',
  project: 'default',
  dataset: process.env.CELLCMS_DATASET ?? 'production',
  token,
})

client.connection.subscribe((status) => {
  console.log(`[connection] ${status}`)
  if (status === 'unauthorized') {
    console.error('the relay refused the token; call client.setToken(fresh) to retry')
    client.close()
  }
})

// Listen for changes to all blog posts
const subscription = client.listen('*[_type == "post"]').subscribe({
  next(event) {
    console.log('Document changed:', event.documentId)
    console.log('Operation:', event.operation) // create, update, delete, publish, unpublish
    console.log('Timestamp:', event.ts)
    // Re-fetch the updated data here.
  },
  error(err) {
    console.error(`listen failed: ${err.code}: ${err.message}`)
  },
})

const documentId = process.argv[2]
if (documentId) {
  client.presence.join(documentId)
  client.presence.subscribe((state, change) => {
    if (change.type === 'document.updated') {
      console.log(`[presence] ${change.documentId} was changed (${change.operation})`)
      return
    }
    const editors = (state.get(documentId) ?? []).map((u) => u.userName)
    console.log(`[presence] ${change.type}; editing ${documentId}: ${editors.join(', ') || 'nobody else'}`)
  })
}

process.on('SIGINT', () => {
  subscription.unsubscribe()
  client.close()
})
