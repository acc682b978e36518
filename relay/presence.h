/*
 * presence: who is editing which document, for every dataset.
 *
 * Keyed by (dataset, documentId, userId), with one membership per
 * (connection, document): the same user in two tabs is one present user.
 * Operations return diffs (what the caller should broadcast); this module
 * sends nothing and does no I/O.
 *
 *   join   -> one PRESENCE_JOINED diff when it is the user's FIRST
 *             connection on the document, else none;
 *   leave  -> one PRESENCE_LEFT diff when it was the user's LAST connection
 *             on the document, else none;
 *   joining twice or leaving a document not joined changes nothing and
 *   returns no diff.
 *
 * Connections are opaque `void *` handles owned by the caller; presence
 * never dereferences them.  A connection that has joined nothing costs
 * nothing here.  Memory per membership is one 40-byte block; per present
 * (document, user) one block holding both strings; per document one block
 * holding its id.
 *
 * Hash tables use SipHash keyed by the seed given to presence_new(), so
 * clients choosing document ids cannot force collisions.
 *
 * Diffs and everything they point to are owned by presence and stay valid
 * until the next call of presence_join/leave/drop_connection/free (freed
 * documents and users are kept until then so that a LEFT diff can still
 * name them).  Iterators below are valid until the next modifying call:
 * do not join/leave/drop while iterating (defer drops, e.g. after a queue
 * overflow, until the iteration is over).
 *
 * Not thread-safe.
 */
#ifndef RELAY_PRESENCE_H
#define RELAY_PRESENCE_H

#include <stddef.h>
#include <stdint.h>

typedef struct presence presence;

/* Default for presence_limits.max_docs_per_conn. */
#define PRESENCE_DEFAULT_MAX_DOCS_PER_CONN 32

typedef enum presence_status
{
	PRESENCE_OK = 0,
	PRESENCE_LIMIT, /* connection already joined max_docs_per_conn documents
					 * (the caller replies limit_exceeded) */
	PRESENCE_NOMEM,
} presence_status;

typedef enum presence_kind
{
	PRESENCE_JOINED,
	PRESENCE_LEFT,
} presence_kind;

/* Borrowed strings, see lifetime above. */
typedef struct presence_diff
{
	presence_kind kind;
	const char *dataset;
	const char *document_id;
	const char *user_id;
	const char *user_name;
} presence_diff;

/* diffs[0..n): borrowed, see lifetime above.  n == 0 means "say nothing". */
typedef struct presence_diffs
{
	const presence_diff *v;
	size_t n;
} presence_diffs;

/*
 * A new, empty presence.  max_docs_per_conn: documents one connection may
 * have joined at once (0 means PRESENCE_DEFAULT_MAX_DOCS_PER_CONN).  seed:
 * 16 random bytes keying the hash function (copied).  Returns NULL when out
 * of memory.  The caller owns the result and frees it with presence_free().
 */
presence *presence_new(size_t max_docs_per_conn, const uint8_t seed[16]);

/* Free everything.  Connection handles are not touched.  NULL is a no-op. */
void presence_free(presence *p);

/*
 * Connection `conn` of user (user_id, user_name) joins document doc_id of
 * dataset.  All strings are borrowed for the call and copied as needed.  A
 * user's name is taken from their first connection on the document and kept
 * until the user leaves it.  On PRESENCE_OK *out holds 0 or 1 diff; on
 * error nothing changed and *out is empty.
 */
presence_status presence_join(presence *p, void *conn, const char *dataset,
							  const char *doc_id, const char *user_id,
							  const char *user_name, presence_diffs *out);

/*
 * conn leaves doc_id of dataset.  Never fails; *out holds 0 or 1 diff.
 */
void presence_leave(presence *p, void *conn, const char *dataset,
					const char *doc_id, presence_diffs *out);

/*
 * conn leaves every document it joined (the connection is closing); *out
 * holds one PRESENCE_LEFT diff per user that is no longer present on a
 * document.  Never fails and never allocates.  Afterwards presence holds
 * no reference to conn.
 */
void presence_drop_connection(presence *p, void *conn, presence_diffs *out);

/* Number of documents conn has joined. */
size_t presence_conn_docs(const presence *p, void *conn);

/*
 * Snapshot iteration: every document of `dataset` with at least one present
 * user, in the order the documents got their first user; inside a document,
 * its users once each, in the order they joined.  All borrowed.
 *
 *   for (d = presence_docs(p, ds); d; d = presence_doc_next(d))
 *       for (u = presence_doc_users(d); u; u = presence_user_next(u))
 *           ... presence_doc_id(d), presence_user_id(u), presence_user_name(u)
 */
typedef struct presence_doc presence_doc;
typedef struct presence_user presence_user;

const presence_doc *presence_docs(const presence *p, const char *dataset);
const presence_doc *presence_doc_next(const presence_doc *d);
const char *presence_doc_id(const presence_doc *d);
const presence_user *presence_doc_users(const presence_doc *d);
const presence_user *presence_user_next(const presence_user *u);
const char *presence_user_id(const presence_user *u);
const char *presence_user_name(const presence_user *u);

/*
 * Router lookup: every connection that joined (dataset, doc_id), once each,
 * most recent first.  NULL when none.
 *
 *   for (m = presence_members(p, ds, id); m; m = presence_member_next(m))
 *       send_to(presence_member_conn(m));
 */
typedef struct presence_member presence_member;

const presence_member *presence_members(const presence *p, const char *dataset,
										const char *doc_id);
const presence_member *presence_member_next(const presence_member *m);
void *presence_member_conn(const presence_member *m);

#endif
