/*
 * Unit tests of relay/auth with a fixed clock.
 *
 * Usage: test_auth DIR (DIR holds the test-only keys auth_*, see
 * auth_TEST_KEYS_README.txt).  Tokens are signed by libjwt with the private
 * keys, or assembled by hand (HMAC via libcrypto) when the header or payload
 * must be something libjwt would not produce.
 */
#include <errno.h>
#include <stdlib.h>

#include <jwt.h>
#include <openssl/hmac.h>

#include "auth.h"
#include "unit.h"

#define NOW 1700000000LL

static const char *dir;
static const char secret[] = "0123456789abcdef0123456789abcdef-test";

static char *
read_file(const char *name, size_t *len)
{
	char path[1024];
	FILE *f;
	char *buf = malloc(100000);

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "rb");
	if (!f || !buf)
	{
		fprintf(stderr, "cannot read %s\n", path);
		exit(2);
	}
	*len = fread(buf, 1, 99999, f);
	buf[*len] = '\0';
	fclose(f);
	return buf;
}

/* "{NOW}", "{NOW+60}", "{NOW-30}" become numbers; the result is static. */
static const char *
expand(const char *tmpl)
{
	static char out[4][20000];
	static int which;
	char *o = out[which = (which + 1) % 4];
	const char *p = tmpl;

	while (*p)
	{
		if (!strncmp(p, "{NOW", 4))
		{
			char *end;
			long long off = strtoll(p + 4, &end, 10);

			o += sprintf(o, "%lld", NOW + off);
			p = end + 1; /* past '}' */
		}
		else
			*o++ = *p++;
	}
	*o = '\0';
	return out[which];
}

static char *
b64url(const void *data, size_t len)
{
	static const char alpha[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	const unsigned char *in = data;
	char *out = malloc(len * 4 / 3 + 4), *o = out;
	size_t i;

	for (i = 0; i + 2 < len; i += 3)
	{
		*o++ = alpha[in[i] >> 2];
		*o++ = alpha[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
		*o++ = alpha[((in[i + 1] & 15) << 2) | (in[i + 2] >> 6)];
		*o++ = alpha[in[i + 2] & 63];
	}
	if (len - i == 1)
	{
		*o++ = alpha[in[i] >> 2];
		*o++ = alpha[(in[i] & 3) << 4];
	}
	else if (len - i == 2)
	{
		*o++ = alpha[in[i] >> 2];
		*o++ = alpha[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
		*o++ = alpha[(in[i + 1] & 15) << 2];
	}
	*o = '\0';
	return out;
}

/*
 * A hand-made token: header and payload JSON as given; signature HMAC-SHA256
 * with key, or the literal sig when key is NULL.  Caller frees.
 */
static char *
hand_token(const char *header, const char *payload, const char *key,
		   const char *sig)
{
	char *h = b64url(header, strlen(header));
	char *p = b64url(payload, strlen(payload));
	size_t n = strlen(h) + strlen(p) + 200;
	char *tok = malloc(n);

	snprintf(tok, n, "%s.%s", h, p);
	if (key)
	{
		unsigned char mac[32];
		unsigned int maclen = 0;
		char *s;

		HMAC(EVP_sha256(), key, (int) strlen(key), (unsigned char *) tok,
			 strlen(tok), mac, &maclen);
		s = b64url(mac, maclen);
		strcat(tok, ".");
		strcat(tok, s);
		free(s);
	}
	else if (sig)
	{
		strcat(tok, ".");
		strcat(tok, sig);
	}
	free(h);
	free(p);
	return tok;
}

/* A token signed by libjwt.  Caller frees. */
static char *
jwt_token(jwt_alg_t alg, const void *key, size_t keylen, const char *payload)
{
	jwt_t *jwt = NULL;
	char *tok;

	if (jwt_new(&jwt) || jwt_add_grants_json(jwt, payload) ||
		jwt_set_alg(jwt, alg, key, (int) keylen))
	{
		fprintf(stderr, "libjwt cannot build a token for %s\n", payload);
		exit(2);
	}
	tok = jwt_encode_str(jwt);
	jwt_free(jwt);
	return tok;
}

/* "ok:user|name|expires_at|datasets" or "invalid:reason" or "error:…". */
static void
render(const auth_config *cfg, const char *token, char *buf, size_t size)
{
	auth_identity *id;
	const char *reason = "unset";
	auth_result r = auth_verify(cfg, token, (time_t) NOW, &id, &reason);

	if (r == AUTH_OK)
	{
		size_t used =
			(size_t) snprintf(buf, size, "ok:%s|%s|%lld|", id->user_id,
							  id->user_name, id->expires_at);

		if (!id->datasets_limited)
			snprintf(buf + used, size - used, "-");
		else
		{
			used += (size_t) snprintf(buf + used, size - used, "[");
			for (size_t i = 0; i < id->ndatasets; i++)
				used += (size_t) snprintf(buf + used, size - used, "%s%s",
										  i ? "," : "", id->datasets[i]);
			snprintf(buf + used, size - used, "]");
		}
		CHECK(reason == NULL);
	}
	else
	{
		snprintf(buf, size, "%s:%s", r == AUTH_INVALID ? "invalid" : "error",
				 reason ? reason : "(null)");
		CHECK(id == NULL);
		/* a close reason: short, and never an echo of the token */
		CHECK(reason != NULL && strlen(reason) < 123);
		if (reason && token && strlen(token) > 8)
			CHECK(strstr(reason, token + strlen(token) - 8) == NULL);
	}
	auth_identity_free(id);
}

#define HS_HEADER "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

/* Claims against an HS256 config without iss/aud, leeway 30. */
static const struct claim_case
{
	const char *payload;
	const char *want;
} claim_cases[] = {
	{"{\"sub\":\"u1\"}", "ok:u1|u1|0|-"},
	{"{\"sub\":\"u1\",\"name\":\"Alice\",\"exp\":{NOW+60}}",
	 "ok:u1|Alice|{NOW+90}|-"},
	{"{\"sub\":\"u1\",\"name\":\"\"}", "ok:u1|u1|0|-"},
	{"{\"sub\":\"u1\",\"name\":null}", "ok:u1|u1|0|-"},
	{"{\"sub\":\"\xc3\xa9\\\"x\",\"name\":\"A \\u00e9\"}",
	 "ok:\xc3\xa9\"x|A \xc3\xa9|0|-"},
	/* unknown claims, iss and aud are ignored when not configured */
	{"{\"sub\":\"u1\",\"iss\":5,\"aud\":[1],\"iat\":\"x\",\"extra\":{}}",
	 "ok:u1|u1|0|-"},
	/* exp with leeway 30: valid while now < exp + 30 */
	{"{\"sub\":\"u1\",\"exp\":{NOW-29}}", "ok:u1|u1|{NOW+1}|-"},
	{"{\"sub\":\"u1\",\"exp\":{NOW-30}}", "invalid:token expired"},
	{"{\"sub\":\"u1\",\"exp\":{NOW-31}}", "invalid:token expired"},
	{"{\"sub\":\"u1\",\"exp\":{NOW-100000}}", "invalid:token expired"},
	{"{\"sub\":\"u1\",\"exp\":{NOW-29}.5}", "ok:u1|u1|{NOW+2}|-"},
	{"{\"sub\":\"u1\",\"exp\":{NOW-30}.5}", "ok:u1|u1|{NOW+1}|-"},
	{"{\"sub\":\"u1\",\"exp\":1e300}", "ok:u1|u1|9223372036854775807|-"},
	{"{\"sub\":\"u1\",\"exp\":-5}", "invalid:token expired"},
	{"{\"sub\":\"u1\",\"exp\":\"{NOW+60}\"}", "invalid:invalid exp claim"},
	{"{\"sub\":\"u1\",\"exp\":null}", "invalid:invalid exp claim"},
	{"{\"sub\":\"u1\",\"exp\":true}", "invalid:invalid exp claim"},
	/* nbf with leeway 30: valid once now + 30 >= nbf */
	{"{\"sub\":\"u1\",\"nbf\":{NOW+30}}", "ok:u1|u1|0|-"},
	{"{\"sub\":\"u1\",\"nbf\":{NOW+31}}", "invalid:token not yet valid"},
	{"{\"sub\":\"u1\",\"nbf\":{NOW+30}.5}", "invalid:token not yet valid"},
	{"{\"sub\":\"u1\",\"nbf\":{NOW-1000}}", "ok:u1|u1|0|-"},
	{"{\"sub\":\"u1\",\"nbf\":\"0\"}", "invalid:invalid nbf claim"},
	/* sub */
	{"{\"name\":\"Alice\"}", "invalid:missing or invalid sub claim"},
	{"{\"sub\":\"\"}", "invalid:missing or invalid sub claim"},
	{"{\"sub\":42}", "invalid:missing or invalid sub claim"},
	{"{\"sub\":null}", "invalid:missing or invalid sub claim"},
	{"{\"sub\":[\"u1\"]}", "invalid:missing or invalid sub claim"},
	/* name */
	{"{\"sub\":\"u1\",\"name\":5}", "invalid:invalid name claim"},
	{"{\"sub\":\"u1\",\"name\":{\"first\":\"A\"}}",
	 "invalid:invalid name claim"},
	/* datasets */
	{"{\"sub\":\"u1\",\"datasets\":[\"prod\",\"staging\"]}",
	 "ok:u1|u1|0|[prod,staging]"},
	{"{\"sub\":\"u1\",\"datasets\":[]}", "ok:u1|u1|0|[]"},
	{"{\"sub\":\"u1\",\"datasets\":\"prod\"}",
	 "invalid:invalid datasets claim"},
	{"{\"sub\":\"u1\",\"datasets\":null}", "invalid:invalid datasets claim"},
	{"{\"sub\":\"u1\",\"datasets\":[\"prod\",1]}",
	 "invalid:invalid datasets claim"},
	{"{\"sub\":\"u1\",\"datasets\":{\"prod\":true}}",
	 "invalid:invalid datasets claim"},
	/* payloads libjwt would not write */
	{"{\"sub\":\"u1\",\"sub\":\"admin\"}", "invalid:malformed token"},
	{"[\"u1\"]", "invalid:malformed token"},
	{"\"u1\"", "invalid:malformed token"},
	{"", "invalid:malformed token"},
};

static void
test_claims(void)
{
	auth_config cfg;
	char err[256], got[512];

	auth_config_init(&cfg);
	CHECK_INT(cfg.leeway, 30);
	CHECK_INT(cfg.max_token_len, 8192);
	CHECK_INT(auth_config_set_key(&cfg, "HS256", secret, strlen(secret), err,
								  sizeof(err)),
			  0);

	/* by default a token must expire: one without exp is refused */
	CHECK(cfg.require_exp);
	{
		char *forever = hand_token(HS_HEADER, "{\"sub\":\"u1\"}", secret, NULL);

		render(&cfg, forever, got, sizeof(got));
		CHECK_STR(got, "invalid:token has no exp claim");
		free(forever);
	}

	/* the cases check the other claims, with exp optional */
	cfg.require_exp = false;
	for (size_t i = 0; i < sizeof(claim_cases) / sizeof(claim_cases[0]); i++)
	{
		const char *want = expand(claim_cases[i].want);
		char *tok =
			hand_token(HS_HEADER, expand(claim_cases[i].payload), secret, NULL);

		render(&cfg, tok, got, sizeof(got));
		CHECK_MSG(!strcmp(got, want), "claim case %zu: got \"%s\" want \"%s\"",
				  i, got, want);
		free(tok);
	}

	/* leeway is a setting: 0 makes exp exact */
	cfg.leeway = 0;
	{
		char *ok = hand_token(
			HS_HEADER, expand("{\"sub\":\"u\",\"exp\":{NOW+1}}"), secret, NULL);
		char *gone = hand_token(
			HS_HEADER, expand("{\"sub\":\"u\",\"exp\":{NOW}}"), secret, NULL);

		render(&cfg, ok, got, sizeof(got));
		CHECK_STR(got, expand("ok:u|u|{NOW+1}|-"));
		render(&cfg, gone, got, sizeof(got));
		CHECK_STR(got, "invalid:token expired");
		free(ok);
		free(gone);
	}
	auth_config_free(&cfg);
}

/* iss and aud against a config that sets both. */
static const struct claim_case iss_aud_cases[] = {
	{"{\"sub\":\"u\",\"iss\":\"https://issuer\",\"aud\":\"relay\"}",
	 "ok:u|u|0|-"},
	{"{\"sub\":\"u\",\"iss\":\"https://issuer\",\"aud\":[\"x\",\"relay\"]}",
	 "ok:u|u|0|-"},
	{"{\"sub\":\"u\",\"iss\":\"https://issuer\",\"aud\":[\"x\"]}",
	 "invalid:wrong token audience"},
	{"{\"sub\":\"u\",\"iss\":\"https://issuer\",\"aud\":[]}",
	 "invalid:wrong token audience"},
	{"{\"sub\":\"u\",\"iss\":\"https://issuer\",\"aud\":\"Relay\"}",
	 "invalid:wrong token audience"},
	{"{\"sub\":\"u\",\"iss\":\"https://issuer\"}",
	 "invalid:wrong token audience"},
	{"{\"sub\":\"u\",\"iss\":\"https://issuer\",\"aud\":[\"relay\",5]}",
	 "invalid:invalid aud claim"},
	{"{\"sub\":\"u\",\"iss\":\"https://issuer\",\"aud\":5}",
	 "invalid:invalid aud claim"},
	{"{\"sub\":\"u\",\"iss\":\"https://issuer\",\"aud\":null}",
	 "invalid:invalid aud claim"},
	{"{\"sub\":\"u\",\"aud\":\"relay\"}", "invalid:wrong token issuer"},
	{"{\"sub\":\"u\",\"iss\":\"https://issuer/\",\"aud\":\"relay\"}",
	 "invalid:wrong token issuer"},
	{"{\"sub\":\"u\",\"iss\":[\"https://issuer\"],\"aud\":\"relay\"}",
	 "invalid:wrong token issuer"},
};

static void
test_iss_aud(void)
{
	auth_config cfg;
	char err[256], got[512];

	auth_config_init(&cfg);
	cfg.require_exp = false;
	auth_config_set_key(&cfg, "HS256", secret, strlen(secret), err,
						sizeof(err));
	CHECK_INT(auth_config_set_issuer(&cfg, "https://issuer"), 0);
	CHECK_INT(auth_config_set_audience(&cfg, "relay"), 0);
	for (size_t i = 0; i < sizeof(iss_aud_cases) / sizeof(iss_aud_cases[0]);
		 i++)
	{
		char *tok =
			hand_token(HS_HEADER, iss_aud_cases[i].payload, secret, NULL);

		render(&cfg, tok, got, sizeof(got));
		CHECK_MSG(!strcmp(got, iss_aud_cases[i].want),
				  "iss/aud case %zu: got \"%s\" want \"%s\"", i, got,
				  iss_aud_cases[i].want);
		free(tok);
	}
	/* clearing them stops the checks */
	CHECK_INT(auth_config_set_issuer(&cfg, ""), 0);
	CHECK_INT(auth_config_set_audience(&cfg, NULL), 0);
	CHECK(cfg.issuer == NULL && cfg.audience == NULL);
	{
		char *tok = hand_token(HS_HEADER, "{\"sub\":\"u\"}", secret, NULL);

		render(&cfg, tok, got, sizeof(got));
		CHECK_STR(got, "ok:u|u|0|-");
		free(tok);
	}
	auth_config_free(&cfg);
}

/* Structure, header and signature, against HS256. */
static void
test_structure(void)
{
	static const struct
	{
		const char *header;
		const char *sig; /* NULL: a correct HMAC */
		const char *want;
	} header_cases[] = {
		{HS_HEADER, NULL, "ok:u|u|0|-"},
		{"{\"alg\":\"HS256\"}", NULL, "ok:u|u|0|-"},
		{"{\"alg\":\"HS256\",\"typ\":\"jwt\",\"kid\":\"k1\"}", NULL,
		 "ok:u|u|0|-"},
		{"{\"alg\":\"HS256\",\"typ\":\"at+jwt\"}", NULL,
		 "invalid:unsupported token type"},
		{"{\"alg\":\"HS256\",\"typ\":1}", NULL,
		 "invalid:unsupported token type"},
		{"{\"alg\":\"none\"}", "", "invalid:token algorithm not allowed"},
		{"{\"alg\":\"none\",\"typ\":\"JWT\"}", "c2ln",
		 "invalid:token algorithm not allowed"},
		{"{\"alg\":\"hs256\"}", NULL, "invalid:token algorithm not allowed"},
		{"{\"alg\":\"HS512\"}", NULL, "invalid:token algorithm not allowed"},
		{"{\"alg\":\"RS256\"}", NULL, "invalid:token algorithm not allowed"},
		{"{\"typ\":\"JWT\"}", NULL, "invalid:token algorithm not allowed"},
		{"{\"alg\":null}", NULL, "invalid:token algorithm not allowed"},
		{"{\"alg\":[\"HS256\"]}", NULL, "invalid:token algorithm not allowed"},
		{"{\"alg\":\"none\",\"alg\":\"HS256\"}", NULL,
		 "invalid:malformed token"},
		{"{\"alg\":\"HS256\",\"crit\":[\"exp\"]}", NULL,
		 "invalid:unsupported critical header"},
		{"[\"HS256\"]", NULL, "invalid:malformed token"},
		{"not json", NULL, "invalid:malformed token"},
		{"", NULL, "invalid:malformed token"},
		{HS_HEADER, "", "invalid:malformed token"},
		{HS_HEADER, "AAAA", "invalid:invalid token signature"},
		{HS_HEADER, "!!!!", "invalid:invalid token signature"},
	};
	static const struct
	{
		const char *token;
		const char *want;
	} raw_cases[] = {
		{"", "invalid:missing token"},
		{"abc", "invalid:malformed token"},
		{"a.b", "invalid:malformed token"},
		{"..", "invalid:malformed token"},
		{"a.b.c.d", "invalid:malformed token"},
		{"eyJhbGciOiJIUzI1NiJ9.e30.x.", "invalid:malformed token"},
		{"e@J.e30.sig", "invalid:malformed token"},
		{"eyJhbGciOiJIUzI1NiJ9=.e30.sig", "invalid:malformed token"},
		{"eyJhbGciOiJIUzI1NiJ9A.e30.sig", "invalid:malformed token"},
		{"Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig", "invalid:malformed token"},
	};
	auth_config cfg;
	char err[256], got[512];

	auth_config_init(&cfg);
	cfg.require_exp = false; /* exp is tested in test_claims */
	auth_config_set_key(&cfg, "HS256", secret, strlen(secret), err,
						sizeof(err));
	for (size_t i = 0; i < sizeof(header_cases) / sizeof(header_cases[0]); i++)
	{
		char *tok = hand_token(header_cases[i].header, "{\"sub\":\"u\"}",
							   header_cases[i].sig ? NULL : secret,
							   header_cases[i].sig);

		render(&cfg, tok, got, sizeof(got));
		CHECK_MSG(!strcmp(got, header_cases[i].want),
				  "header case %zu: got \"%s\" want \"%s\"", i, got,
				  header_cases[i].want);
		free(tok);
	}
	for (size_t i = 0; i < sizeof(raw_cases) / sizeof(raw_cases[0]); i++)
	{
		render(&cfg, raw_cases[i].token, got, sizeof(got));
		CHECK_MSG(!strcmp(got, raw_cases[i].want),
				  "raw case %zu: got \"%s\" want \"%s\"", i, got,
				  raw_cases[i].want);
	}
	render(&cfg, NULL, got, sizeof(got));
	CHECK_STR(got, "invalid:missing token");

	/* tampering: payload swapped under a valid signature, or a bit flipped */
	{
		char *good = hand_token(HS_HEADER, "{\"sub\":\"u\"}", secret, NULL);
		char *evil = hand_token(HS_HEADER, "{\"sub\":\"admin\"}", secret, NULL);
		char *other = hand_token(HS_HEADER, "{\"sub\":\"u\"}",
								 "another-secret-another-secret-xx", NULL);
		char *mix = malloc(strlen(good) + strlen(evil) + 1);
		char *sig = strrchr(good, '.');

		/* evil's header.payload with good's signature */
		strcpy(mix, evil);
		strcpy(strrchr(mix, '.'), sig);
		render(&cfg, mix, got, sizeof(got));
		CHECK_STR(got, "invalid:invalid token signature");
		render(&cfg, other, got, sizeof(got));
		CHECK_STR(got, "invalid:invalid token signature");
		sig[1] = sig[1] == 'A' ? 'B' : 'A';
		render(&cfg, good, got, sizeof(got));
		CHECK_STR(got, "invalid:invalid token signature");
		free(good);
		free(evil);
		free(other);
		free(mix);
	}

	/* length limit: a valid token exactly at the limit passes, one byte
	 * less of limit refuses it; a huge token is refused unparsed */
	{
		char payload[9000], *tok;
		size_t len;

		memset(payload, 0, sizeof(payload));
		strcpy(payload, "{\"sub\":\"u\",\"pad\":\"");
		memset(payload + strlen(payload), 'p', 5000);
		strcat(payload, "\"}");
		tok = hand_token(HS_HEADER, payload, secret, NULL);
		len = strlen(tok);
		cfg.max_token_len = len;
		render(&cfg, tok, got, sizeof(got));
		CHECK_STR(got, "ok:u|u|0|-");
		cfg.max_token_len = len - 1;
		render(&cfg, tok, got, sizeof(got));
		CHECK_STR(got, "invalid:token too long");
		free(tok);
	}
	{
		size_t n = 1 << 20;
		char *huge = malloc(n + 1);

		memset(huge, 'A', n);
		huge[n] = '\0';
		huge[10] = '.';
		huge[20] = '.';
		cfg.max_token_len = AUTH_DEFAULT_MAX_TOKEN;
		render(&cfg, huge, got, sizeof(got));
		CHECK_STR(got, "invalid:token too long");
		huge[AUTH_DEFAULT_MAX_TOKEN + 1] = '\0';
		render(&cfg, huge, got, sizeof(got));
		CHECK_STR(got, "invalid:token too long");
		free(huge);
	}
	auth_config_free(&cfg);

	/* no key configured: nothing passes */
	{
		char *tok = hand_token(HS_HEADER, "{\"sub\":\"u\"}", secret, NULL);

		auth_config_init(&cfg);
		cfg.require_exp = false; /* exp is tested in test_claims */
		render(&cfg, tok, got, sizeof(got));
		CHECK_STR(got, "invalid:authentication is not configured");
		free(tok);
	}
}

/* RS256 and ES256 with libjwt-signed tokens, and key confusion. */
static void
test_public_keys(void)
{
	size_t rs_priv_len, rs_pub_len, es_priv_len, es_pub_len, other_len;
	char *rs_priv = read_file("auth_rs256_private.pem", &rs_priv_len);
	char *rs_pub = read_file("auth_rs256_public.pem", &rs_pub_len);
	char *es_priv = read_file("auth_es256_private.pem", &es_priv_len);
	char *es_pub = read_file("auth_es256_public.pem", &es_pub_len);
	char *other = read_file("auth_other_private.pem", &other_len);
	const char *claims = expand(
		"{\"sub\":\"u9\",\"name\":\"Nine\",\"exp\":{NOW+3600},\"nbf\":{NOW}}");
	char *rs_tok = jwt_token(JWT_ALG_RS256, rs_priv, rs_priv_len, claims);
	char *es_tok = jwt_token(JWT_ALG_ES256, es_priv, es_priv_len, claims);
	char *other_tok = jwt_token(JWT_ALG_RS256, other, other_len, claims);
	/* the classic attack: HMAC keyed with the server's public key */
	char *confused = jwt_token(JWT_ALG_HS256, rs_pub, rs_pub_len, claims);
	char *hs_tok = jwt_token(JWT_ALG_HS256, secret, strlen(secret), claims);
	auth_config rs, es;
	char err[256], got[512];
	const char *want_ok = expand("ok:u9|Nine|{NOW+3630}|-");
	jwt_t *raw = NULL;

	auth_config_init(&rs);
	auth_config_init(&es);
	CHECK_INT(
		auth_config_set_key(&rs, "RS256", rs_pub, rs_pub_len, err, sizeof(err)),
		0);
	CHECK_INT(
		auth_config_set_key(&es, "ES256", es_pub, es_pub_len, err, sizeof(err)),
		0);

	render(&rs, rs_tok, got, sizeof(got));
	CHECK_STR(got, want_ok);
	render(&es, es_tok, got, sizeof(got));
	CHECK_STR(got, want_ok);

	render(&rs, other_tok, got, sizeof(got));
	CHECK_STR(got, "invalid:invalid token signature");
	render(&rs, confused, got, sizeof(got));
	CHECK_STR(got, "invalid:token algorithm not allowed");
	render(&rs, hs_tok, got, sizeof(got));
	CHECK_STR(got, "invalid:token algorithm not allowed");
	render(&rs, es_tok, got, sizeof(got));
	CHECK_STR(got, "invalid:token algorithm not allowed");
	render(&es, rs_tok, got, sizeof(got));
	CHECK_STR(got, "invalid:token algorithm not allowed");

	/*
	 * Why the pinning matters: libjwt on its own takes the token's word
	 * for the algorithm and accepts the forged token with the public key.
	 */
	CHECK_INT(
		jwt_decode(&raw, confused, (unsigned char *) rs_pub, (int) rs_pub_len),
		0);
	jwt_free(raw);

	/* tampered ES256 signature */
	{
		char *sig = strrchr(es_tok, '.') + 5;

		*sig = *sig == 'A' ? 'B' : 'A';
		render(&es, es_tok, got, sizeof(got));
		CHECK_STR(got, "invalid:invalid token signature");
	}
	/* expiry applies to signed tokens too */
	{
		char *old = jwt_token(JWT_ALG_RS256, rs_priv, rs_priv_len,
							  expand("{\"sub\":\"u9\",\"exp\":{NOW-60}}"));

		render(&rs, old, got, sizeof(got));
		CHECK_STR(got, "invalid:token expired");
		free(old);
	}

	auth_config_free(&rs);
	auth_config_free(&es);
	free(rs_tok);
	free(es_tok);
	free(other_tok);
	free(confused);
	free(hs_tok);
	free(rs_priv);
	free(rs_pub);
	free(es_priv);
	free(es_pub);
	free(other);
}

static void
test_config(void)
{
	static const struct
	{
		const char *alg;
		const char *file; /* NULL: the key is `secret` cut to keylen */
		size_t keylen;
		int want;
	} cases[] = {
		{"HS256", NULL, 32, 0},
		{"HS256", NULL, 31, -1},
		{"HS256", NULL, 0, -1},
		{"hs256", NULL, 32, -1},
		{"none", NULL, 32, -1},
		{"HS512", NULL, 32, -1},
		{"", NULL, 32, -1},
		{NULL, NULL, 32, -1},
		{"RS256", "auth_rs256_public.pem", 0, 0},
		{"ES256", "auth_es256_public.pem", 0, 0},
		{"RS256", "auth_rs256_private.pem", 0, -1},
		{"RS256", "auth_rs256_cert.pem", 0, -1},
		{"RS256", "auth_es256_public.pem", 0, -1},
		{"ES256", "auth_rs256_public.pem", 0, -1},
		{"ES256", "auth_es256_private.pem", 0, -1},
		{"RS256", NULL, 32, -1}, /* a secret is not a PEM key */
	};
	auth_config cfg;
	char err[256], path[1024], got[512];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		size_t len = cases[i].keylen;
		char *key = NULL;
		int rc;

		auth_config_init(&cfg);
		cfg.require_exp = false; /* exp is tested in test_claims */
		err[0] = '\0';
		if (cases[i].file)
			key = read_file(cases[i].file, &len);
		rc = auth_config_set_key(&cfg, cases[i].alg, key ? key : secret, len,
								 err, sizeof(err));
		CHECK_MSG(rc == cases[i].want, "config case %zu: got %d (%s)", i, rc,
				  err);
		if (rc == 0)
			CHECK(cfg.key != NULL && cfg.key_len == len);
		else
			CHECK(err[0] != '\0' && cfg.key == NULL &&
				  cfg.alg == AUTH_ALG_NONE);
		auth_config_free(&cfg);
		free(key);
	}

	/* a failed set keeps the previous key */
	auth_config_init(&cfg);
	cfg.require_exp = false; /* exp is tested in test_claims */
	CHECK_INT(auth_config_set_key(&cfg, "HS256", secret, strlen(secret), err,
								  sizeof(err)),
			  0);
	CHECK_INT(auth_config_set_key(&cfg, "RS256", "junk", 4, err, sizeof(err)),
			  -1);
	CHECK_INT(cfg.alg, AUTH_ALG_HS256);
	CHECK_INT(cfg.key_len, strlen(secret));
	auth_config_free(&cfg);
	CHECK(cfg.key == NULL && cfg.alg == AUTH_ALG_NONE && cfg.leeway == 30 &&
		  cfg.require_exp);
	cfg.require_exp = false;

	/* loading from files */
	snprintf(path, sizeof(path), "%s/auth_rs256_public.pem", dir);
	CHECK_INT(auth_config_load_key(&cfg, "RS256", path, err, sizeof(err)), 0);
	CHECK_INT(cfg.alg, AUTH_ALG_RS256);
	snprintf(path, sizeof(path), "%s/auth_no_such_file.pem", dir);
	CHECK_INT(auth_config_load_key(&cfg, "RS256", path, err, sizeof(err)), -1);
	CHECK(strstr(err, "auth_no_such_file.pem") != NULL);
	CHECK_INT(cfg.alg, AUTH_ALG_RS256);
	/* an HS256 secret file loses its trailing newline */
	snprintf(path, sizeof(path), "%s/auth_hs256_secret.txt", dir);
	CHECK_INT(auth_config_load_key(&cfg, "HS256", path, err, sizeof(err)), 0);
	CHECK_INT(cfg.key_len, 39);
	{
		char *tok = hand_token(HS_HEADER, "{\"sub\":\"u\"}",
							   "test-only-hs256-secret-0123456789abcdef", NULL);

		render(&cfg, tok, got, sizeof(got));
		CHECK_STR(got, "ok:u|u|0|-");
		free(tok);
	}
	auth_config_free(&cfg);
}

static void
test_datasets(void)
{
	auth_identity open = {.user_id = "u", .user_name = "u"};
	char *two[] = {"prod", "staging"};
	auth_identity limited = {.user_id = "u",
							 .user_name = "u",
							 .datasets_limited = true,
							 .ndatasets = 2,
							 .datasets = two};
	auth_identity none = {
		.user_id = "u", .user_name = "u", .datasets_limited = true};

	CHECK(auth_dataset_allowed(&open, "anything"));
	CHECK(auth_dataset_allowed(&limited, "prod"));
	CHECK(auth_dataset_allowed(&limited, "staging"));
	CHECK(!auth_dataset_allowed(&limited, "Prod"));
	CHECK(!auth_dataset_allowed(&limited, "prod2"));
	CHECK(!auth_dataset_allowed(&limited, ""));
	CHECK(!auth_dataset_allowed(&none, "prod"));
	auth_identity_free(NULL);
}

int
main(int argc, char **argv)
{
	dir = argc > 1 ? argv[1] : ".";
	test_claims();
	test_iss_aud();
	test_structure();
	test_public_keys();
	test_config();
	test_datasets();
	return unit_summary();
}
