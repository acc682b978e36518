/*
 * auth: JWT verification with a pinned algorithm and claims checked here.
 *
 * Order matters: the header is decoded and its `alg` compared with the
 * configured one BEFORE libjwt sees the token, because libjwt 1.10 trusts
 * the token's `alg` to pick the verification (an RS256 public key handed to
 * it as an HMAC secret verifies an attacker's HS256 token).  Only then does
 * jwt_decode() check the signature with the configured key.  The claims are
 * read from our own parse of the payload (duplicate keys refused, so that
 * libjwt and we cannot read different values) and checked against `now`.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "auth.h"

#define AUTH_MAX_KEY_FILE (64 * 1024)
#define RSA_MIN_BITS	  2048

static const struct
{
	const char *name;
	auth_alg alg;
	jwt_alg_t jwt;
} algs[] = {
	{"HS256", AUTH_ALG_HS256, JWT_ALG_HS256},
	{"RS256", AUTH_ALG_RS256, JWT_ALG_RS256},
	{"ES256", AUTH_ALG_ES256, JWT_ALG_ES256},
};

static int
alg_index(auth_alg alg)
{
	for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++)
		if (algs[i].alg == alg)
			return (int) i;
	return -1;
}

/* ---- configuration -------------------------------------------------- */

void
auth_config_init(auth_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->leeway = AUTH_DEFAULT_LEEWAY;
	/* a stolen token without exp would be good for ever */
	cfg->require_exp = true;
	cfg->max_token_len = AUTH_DEFAULT_MAX_TOKEN;
}

/*
 * Parse the PEM public key with OpenSSL (as libjwt will) so that a wrong
 * kind of key fails at startup instead of refusing every token.
 */
static int
check_public_key(auth_alg alg, const unsigned char *pem, size_t len, char *err,
				 size_t errsz)
{
	BIO *bio = BIO_new_mem_buf(pem, (int) len);
	EVP_PKEY *pkey = NULL;
	int rc = -1;

	if (!bio)
	{
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	if (!pkey)
	{
		snprintf(err, errsz,
				 "key is not a PEM public key (-----BEGIN PUBLIC KEY-----)");
		goto done;
	}
	if (alg == AUTH_ALG_RS256)
	{
		if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA)
			snprintf(err, errsz, "RS256 needs an RSA public key");
		else if (EVP_PKEY_get_bits(pkey) < RSA_MIN_BITS)
			snprintf(err, errsz, "RS256 key must have at least %d bits",
					 RSA_MIN_BITS);
		else
			rc = 0;
	}
	else
	{
		char group[64];
		size_t glen = 0;

		if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_EC ||
			!EVP_PKEY_get_group_name(pkey, group, sizeof(group), &glen) ||
			strcmp(group, "prime256v1") != 0)
			snprintf(err, errsz, "ES256 needs a P-256 EC public key");
		else
			rc = 0;
	}
done:
	EVP_PKEY_free(pkey);
	BIO_free(bio);
	return rc;
}

int
auth_config_set_key(auth_config *cfg, const char *alg, const void *key,
					size_t key_len, char *err, size_t errsz)
{
	auth_alg a = AUTH_ALG_NONE;
	unsigned char *copy;

	for (size_t i = 0; alg && i < sizeof(algs) / sizeof(algs[0]); i++)
		if (!strcmp(alg, algs[i].name))
			a = algs[i].alg;
	if (a == AUTH_ALG_NONE)
	{
		snprintf(err, errsz,
				 "unsupported JWT algorithm \"%s\" (HS256, RS256 "
				 "or ES256)",
				 alg ? alg : "");
		return -1;
	}
	if (key_len > AUTH_MAX_KEY_FILE)
	{
		snprintf(err, errsz, "key is too large");
		return -1;
	}
	if (a == AUTH_ALG_HS256 && key_len < AUTH_HS256_MIN_SECRET)
	{
		snprintf(err, errsz, "HS256 secret must be at least %d bytes",
				 AUTH_HS256_MIN_SECRET);
		return -1;
	}
	if (a != AUTH_ALG_HS256 && check_public_key(a, key, key_len, err, errsz))
		return -1;
	if (!(copy = malloc(key_len + 1)))
	{
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	memcpy(copy, key, key_len);
	copy[key_len] = '\0';
	free(cfg->key);
	cfg->key = copy;
	cfg->key_len = key_len;
	cfg->alg = a;
	return 0;
}

int
auth_config_load_key(auth_config *cfg, const char *alg, const char *path,
					 char *err, size_t errsz)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf = NULL;
	size_t len;
	int rc = -1;

	if (!f)
	{
		snprintf(err, errsz, "cannot open key file %s: %s", path,
				 strerror(errno));
		return -1;
	}
	if (!(buf = malloc(AUTH_MAX_KEY_FILE + 1)))
	{
		snprintf(err, errsz, "out of memory");
		goto done;
	}
	len = fread(buf, 1, AUTH_MAX_KEY_FILE + 1, f);
	if (ferror(f))
	{
		snprintf(err, errsz, "cannot read key file %s", path);
		goto done;
	}
	if (len > AUTH_MAX_KEY_FILE)
	{
		snprintf(err, errsz, "key file %s is larger than %d bytes", path,
				 AUTH_MAX_KEY_FILE);
		goto done;
	}
	/* A secret file written by an editor or `echo` ends with a newline. */
	if (alg && !strcmp(alg, "HS256") && len && buf[len - 1] == '\n')
		len -= (len > 1 && buf[len - 2] == '\r') ? 2 : 1;
	rc = auth_config_set_key(cfg, alg, buf, len, err, errsz);
done:
	if (buf)
	{
		/* The secret should not linger in freed memory. */
		memset(buf, 0, AUTH_MAX_KEY_FILE + 1);
		free(buf);
	}
	fclose(f);
	return rc;
}

static int
set_string(char **field, const char *value)
{
	char *copy = NULL;

	if (value && *value && !(copy = strdup(value)))
		return -1;
	free(*field);
	*field = copy;
	return 0;
}

int
auth_config_set_issuer(auth_config *cfg, const char *issuer)
{
	return set_string(&cfg->issuer, issuer);
}

int
auth_config_set_audience(auth_config *cfg, const char *audience)
{
	return set_string(&cfg->audience, audience);
}

void
auth_config_free(auth_config *cfg)
{
	if (cfg->key)
		memset(cfg->key, 0, cfg->key_len);
	free(cfg->key);
	free(cfg->issuer);
	free(cfg->audience);
	auth_config_init(cfg);
}

/* ---- verification --------------------------------------------------- */

/*
 * Decode base64url without padding (RFC 7515 §2) into a new NUL-terminated
 * buffer.  NULL on any character outside the alphabet or an impossible
 * length; *nomem tells an allocation failure apart.
 */
static char *
b64url_decode(const char *in, size_t len, size_t *outlen, int *nomem)
{
	char *out;
	size_t o = 0;
	uint32_t acc = 0;
	int bits = 0;

	if (len % 4 == 1)
		return NULL;
	if (!(out = malloc(len / 4 * 3 + 3)))
	{
		*nomem = 1;
		return NULL;
	}
	for (size_t i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) in[i];
		int v;

		if (c >= 'A' && c <= 'Z')
			v = c - 'A';
		else if (c >= 'a' && c <= 'z')
			v = c - 'a' + 26;
		else if (c >= '0' && c <= '9')
			v = c - '0' + 52;
		else if (c == '-')
			v = 62;
		else if (c == '_')
			v = 63;
		else
		{
			free(out);
			return NULL;
		}
		acc = (acc << 6) | (uint32_t) v;
		bits += 6;
		if (bits >= 8)
		{
			bits -= 8;
			out[o++] = (char) ((acc >> bits) & 0xff);
		}
	}
	out[o] = '\0';
	*outlen = o;
	return out;
}

/* A base64url segment holding a JSON object, or NULL. */
static json_t *
decode_segment(const char *seg, size_t len, int *nomem)
{
	size_t n;
	char *raw = b64url_decode(seg, len, &n, nomem);
	json_t *obj;

	if (!raw)
		return NULL;
	obj = json_loadb(raw, n, JSON_REJECT_DUPLICATES, NULL);
	free(raw);
	if (obj && !json_is_object(obj))
	{
		json_decref(obj);
		obj = NULL;
	}
	return obj;
}

/* NumericDate (RFC 7519 §2): any JSON number. */
static int
numeric_date(json_t *claim, double *out)
{
	if (!json_is_number(claim))
		return -1;
	*out = json_number_value(claim);
	return 0;
}

static bool
audience_ok(json_t *aud, const char *want, bool *malformed)
{
	size_t i;
	json_t *v;
	bool found = false;

	if (json_is_string(aud))
		return !strcmp(json_string_value(aud), want);
	if (!json_is_array(aud))
	{
		*malformed = aud != NULL;
		return false;
	}
	json_array_foreach (aud, i, v)
	{
		if (!json_is_string(v))
		{
			*malformed = true;
			return false;
		}
		if (!strcmp(json_string_value(v), want))
			found = true;
	}
	return found;
}

void
auth_identity_free(auth_identity *id)
{
	if (!id)
		return;
	free(id->user_id);
	free(id->user_name);
	for (size_t i = 0; i < id->ndatasets; i++)
		free(id->datasets[i]);
	free(id->datasets);
	free(id);
}

/*
 * Build the identity from checked claims.  NULL on out of memory; *reason
 * is set when a claim is malformed.
 */
static auth_identity *
make_identity(json_t *claims, long long expires_at, const char **reason)
{
	json_t *sub = json_object_get(claims, "sub");
	json_t *name = json_object_get(claims, "name");
	json_t *datasets = json_object_get(claims, "datasets");
	auth_identity *id;
	const char *uname;
	size_t i;
	json_t *v;

	if (!json_is_string(sub) || json_string_length(sub) == 0)
	{
		*reason = "missing or invalid sub claim";
		return NULL;
	}
	if (name && !json_is_null(name) && !json_is_string(name))
	{
		*reason = "invalid name claim";
		return NULL;
	}
	if (datasets)
	{
		bool ok = json_is_array(datasets);

		json_array_foreach (datasets, i, v)
			ok = ok && json_is_string(v);
		if (!ok)
		{
			*reason = "invalid datasets claim";
			return NULL;
		}
	}

	if (!(id = calloc(1, sizeof(*id))))
		return NULL;
	uname = json_is_string(name) && json_string_length(name) > 0
				? json_string_value(name)
				: json_string_value(sub);
	id->expires_at = expires_at;
	if (!(id->user_id = strdup(json_string_value(sub))) ||
		!(id->user_name = strdup(uname)))
		goto err;
	if (datasets)
	{
		id->datasets_limited = true;
		if (json_array_size(datasets) &&
			!(id->datasets = calloc(json_array_size(datasets), sizeof(char *))))
			goto err;
		json_array_foreach (datasets, i, v)
		{
			if (!(id->datasets[i] = strdup(json_string_value(v))))
				goto err;
			id->ndatasets++;
		}
	}
	return id;
err:
	auth_identity_free(id);
	return NULL;
}

auth_result
auth_verify(const auth_config *cfg, const char *token, time_t now,
			auth_identity **out, const char **reason)
{
	const char *dot1, *dot2, *sig;
	size_t len;
	int ai, jr, nomem = 0;
	json_t *header = NULL, *claims = NULL, *alg, *typ, *v;
	jwt_t *jwt = NULL;
	double t;
	long long expires_at = 0;
	bool malformed = false;
	auth_result rc = AUTH_INVALID;

	*out = NULL;
	*reason = NULL;
	ai = alg_index(cfg->alg);
	if (ai < 0 || !cfg->key)
	{
		*reason = "authentication is not configured";
		return AUTH_INVALID;
	}
	if (!token || !*token)
	{
		*reason = "missing token";
		return AUTH_INVALID;
	}
	len = strnlen(token, cfg->max_token_len + 1);
	if (len > cfg->max_token_len)
	{
		*reason = "token too long";
		return AUTH_INVALID;
	}
	dot1 = memchr(token, '.', len);
	dot2 =
		dot1 ? memchr(dot1 + 1, '.', len - (size_t) (dot1 + 1 - token)) : NULL;
	if (!dot2 || memchr(dot2 + 1, '.', len - (size_t) (dot2 + 1 - token)))
	{
		*reason = "malformed token";
		return AUTH_INVALID;
	}
	sig = dot2 + 1;

	/* The algorithm is ours to choose, never the token's. */
	header = decode_segment(token, (size_t) (dot1 - token), &nomem);
	if (!header)
	{
		*reason = "malformed token";
		goto done;
	}
	alg = json_object_get(header, "alg");
	if (!json_is_string(alg) || strcmp(json_string_value(alg), algs[ai].name))
	{
		*reason = "token algorithm not allowed";
		goto done;
	}
	/* RFC 7515 §4.1.11: we understand no extension, so none can be critical */
	if (json_object_get(header, "crit"))
	{
		*reason = "unsupported critical header";
		goto done;
	}
	/* libjwt 1.10 refuses any other type, with no way to tell why. */
	typ = json_object_get(header, "typ");
	if (typ &&
		(!json_is_string(typ) || strcasecmp(json_string_value(typ), "JWT")))
	{
		*reason = "unsupported token type";
		goto done;
	}
	/*
	 * Parsed here, before the signature, only so that a malformed payload
	 * gets its own reason; nothing is read from it until libjwt agrees.
	 */
	claims = decode_segment(dot1 + 1, (size_t) (dot2 - dot1 - 1), &nomem);
	if (!claims || *sig == '\0')
	{
		*reason = "malformed token";
		goto done;
	}

	/* Returns an errno value; anything but ENOMEM is a refusal. */
	if ((jr = jwt_decode(&jwt, token, cfg->key, (int) cfg->key_len)) != 0)
	{
		nomem = jr == ENOMEM;
		*reason = "invalid token signature";
		goto done;
	}
	if (jwt_get_alg(jwt) != algs[ai].jwt)
	{
		*reason = "token algorithm not allowed";
		goto done;
	}

	if ((v = json_object_get(claims, "exp")))
	{
		if (numeric_date(v, &t) != 0)
		{
			*reason = "invalid exp claim";
			goto done;
		}
		t += (double) cfg->leeway;
		if ((double) now >= t)
		{
			*reason = "token expired";
			goto done;
		}
		/* first whole second at which now >= exp + leeway */
		expires_at = t >= 9.0e18 ? LLONG_MAX : (long long) ceil(t);
	}
	else if (cfg->require_exp)
	{
		*reason = "token has no exp claim";
		goto done;
	}
	if ((v = json_object_get(claims, "nbf")))
	{
		if (numeric_date(v, &t) != 0)
		{
			*reason = "invalid nbf claim";
			goto done;
		}
		if ((double) now + (double) cfg->leeway < t)
		{
			*reason = "token not yet valid";
			goto done;
		}
	}
	if (cfg->issuer)
	{
		v = json_object_get(claims, "iss");
		if (!json_is_string(v) || strcmp(json_string_value(v), cfg->issuer))
		{
			*reason = "wrong token issuer";
			goto done;
		}
	}
	if (cfg->audience &&
		!audience_ok(json_object_get(claims, "aud"), cfg->audience, &malformed))
	{
		*reason = malformed ? "invalid aud claim" : "wrong token audience";
		goto done;
	}

	*out = make_identity(claims, expires_at, reason);
	if (*out)
		rc = AUTH_OK;
	else if (!*reason)
		nomem = 1;

done:
	if (nomem)
	{
		rc = AUTH_ERROR;
		*reason = "out of memory";
	}
	jwt_free(jwt);
	json_decref(header);
	json_decref(claims);
	return rc;
}

bool
auth_dataset_allowed(const auth_identity *id, const char *dataset)
{
	if (!id->datasets_limited)
		return true;
	for (size_t i = 0; i < id->ndatasets; i++)
		if (!strcmp(id->datasets[i], dataset))
			return true;
	return false;
}
