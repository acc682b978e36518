/*
 * auth: JWT verification for the WebSocket handshake (SPEC §4).
 *
 * libjwt 1.10 checks only the signature (and none at all without a key), so
 * this module does the rest: the key is mandatory, the algorithm is pinned
 * by configuration (the token's own `alg` header must equal it exactly:
 * `none` and algorithm confusion such as an HS256 token against an RS256
 * key are refused before libjwt sees the token), and the claims are checked
 * here against a clock passed in by the caller.
 *
 * Verification is pure (no I/O, no clock of its own).  The only I/O is
 * auth_config_load_key(), which reads a key file at startup.
 */
#ifndef RELAY_AUTH_H
#define RELAY_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define AUTH_DEFAULT_LEEWAY	   30	/* seconds of clock skew for exp/nbf */
#define AUTH_DEFAULT_MAX_TOKEN 8192 /* bytes */
#define AUTH_HS256_MIN_SECRET  32	/* RFC 7518 §3.2: at least the hash size */

typedef enum auth_alg
{
	AUTH_ALG_NONE = 0, /* not configured: every token is refused */
	AUTH_ALG_HS256,	   /* key = shared secret bytes */
	AUTH_ALG_RS256,	   /* key = PEM public key ("BEGIN PUBLIC KEY") */
	AUTH_ALG_ES256,	   /* key = PEM public key of a P-256 key */
} auth_alg;

/*
 * Verification settings.  key, issuer and audience are OWNED by the config
 * (set them with the functions below, release with auth_config_free()).
 * leeway, require_exp and max_token_len are plain settings the caller may
 * assign.
 */
typedef struct auth_config
{
	auth_alg alg;
	unsigned char *key; /* owned; a PEM key is NUL-terminated */
	size_t key_len;		/* without that NUL */
	char *issuer;		/* owned; NULL: `iss` is not checked */
	char *audience;		/* owned; NULL: `aud` is not checked */
	long leeway;		/* seconds, >= 0 */
	bool require_exp;	/* refuse tokens without `exp` (default true) */
	size_t max_token_len;
} auth_config;

/* Defaults, no key (auth_verify refuses every token until one is set). */
void auth_config_init(auth_config *cfg);

/*
 * Set the algorithm ("HS256", "RS256" or "ES256", exact spelling) and its
 * key, copied from key[0..key_len).  HS256 needs a secret of at least
 * AUTH_HS256_MIN_SECRET bytes; RS256 an RSA PEM public key of at least 2048
 * bits; ES256 a P-256 PEM public key ("-----BEGIN PUBLIC KEY-----").  The
 * key is parsed here (with libcrypto, as libjwt will) so that a private key,
 * a certificate or the wrong key type fails at startup rather than every
 * token later.  Returns 0, or -1 with a message in err[0..errsz) and cfg
 * unchanged.
 */
int auth_config_set_key(auth_config *cfg, const char *alg, const void *key,
						size_t key_len, char *err, size_t errsz);

/*
 * auth_config_set_key() with the key read from the file at path (at most
 * 64 KiB).  For HS256 the file holds the secret; one trailing newline is
 * stripped.  Returns 0 or -1 with err filled.
 */
int auth_config_load_key(auth_config *cfg, const char *alg, const char *path,
						 char *err, size_t errsz);

/* Copy the expected `iss` / `aud` (NULL or "" to stop checking).  0 or -1
 * when out of memory (cfg unchanged). */
int auth_config_set_issuer(auth_config *cfg, const char *issuer);
int auth_config_set_audience(auth_config *cfg, const char *audience);

/* Release what the config owns and reset it to auth_config_init()'s state. */
void auth_config_free(auth_config *cfg);

/*
 * Who a valid token says the client is.  Everything is owned by the
 * identity; free it with auth_identity_free().
 */
typedef struct auth_identity
{
	char *user_id;	 /* `sub`, non-empty */
	char *user_name; /* `name`, or a copy of `sub` when absent/empty */
	/*
	 * The first `now` at which this token is no longer valid (exp + leeway),
	 * so the caller closes the connection with 4001 once now >= expires_at;
	 * 0 when the token has no `exp`.
	 */
	long long expires_at;
	bool datasets_limited; /* the token carries a `datasets` claim */
	size_t ndatasets;
	char **datasets; /* ndatasets owned strings (when limited) */
} auth_identity;

typedef enum auth_result
{
	AUTH_OK = 0,
	AUTH_INVALID, /* close 4001 with the reason */
	AUTH_ERROR,	  /* out of memory: close 1011 */
} auth_result;

/*
 * Verify the NUL-terminated token against cfg at time `now` (seconds since
 * the epoch).  Refused: more than max_token_len bytes; not exactly three
 * base64url segments (no padding); a header that is not a JSON object whose
 * `alg` equals the configured algorithm, or with a `typ` other than "JWT"
 * (any case; libjwt 1.10 insists) or any `crit`; a payload that is not a
 * JSON object; duplicate keys in either; a bad signature; then the claims:
 * exp/nbf (numbers, with leeway), iss/aud when configured, sub, name,
 * datasets as described on auth_identity.  On AUTH_OK *out is a new identity
 * owned by the caller. Otherwise *out is NULL and *reason a short static string
 * suitable as a close reason; it never contains any part of the token.
 */
auth_result auth_verify(const auth_config *cfg, const char *token, time_t now,
						auth_identity **out, const char **reason);

/* NULL is a no-op. */
void auth_identity_free(auth_identity *id);

/*
 * May this identity open dataset?  True when the token has no `datasets`
 * claim or lists dataset exactly (case-sensitive).  False means close 4003.
 */
bool auth_dataset_allowed(const auth_identity *id, const char *dataset);

#endif
