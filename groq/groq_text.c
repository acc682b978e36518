/*
 * groq_text.c: text helpers of the GROQ engine: UTF-8, case mapping, the
 * `match` operator, path() globs, number and datetime formatting.
 *
 * `match` follows the reference implementation (groq-js), which the spec
 * leaves the details to: dots touching a letter/digit/underscore are
 * dropped ("ding.dong" is one token "dingdong"), text is split into tokens
 * at whitespace and !@#$%^&*(),\/?";:{}|[]+<>- , a pattern is split the same
 * way except that * stays a wildcard, every pattern term must match some
 * token, case-insensitively, and an empty token or term list never matches.
 */
#include "groq_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- UTF-8 ---- */

size_t
groq_utf8_check(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *) str;
	size_t i = 0;

	while (i < len)
	{
		unsigned char c = s[i];
		size_t n;
		uint32_t cp;

		if (c < 0x80)
		{
			i++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF)
			n = 1, cp = c & 0x1F;
		else if (c >= 0xE0 && c <= 0xEF)
			n = 2, cp = c & 0x0F;
		else if (c >= 0xF0 && c <= 0xF4)
			n = 3, cp = c & 0x07;
		else
			return i;
		if (i + n >= len)
			return i;
		for (size_t k = 1; k <= n; k++)
		{
			if ((s[i + k] & 0xC0) != 0x80)
				return i;
			cp = (cp << 6) | (s[i + k] & 0x3F);
		}
		/* overlong forms, surrogates, beyond U+10FFFF */
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
			cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return i;
		i += n + 1;
	}
	return len;
}

size_t
groq_utf8_decode(const char *str, uint32_t *cp)
{
	const unsigned char *s = (const unsigned char *) str;

	if (s[0] < 0x80)
	{
		*cp = s[0];
		return 1;
	}
	if (s[0] < 0xE0)
	{
		*cp = ((uint32_t) (s[0] & 0x1F) << 6) | (s[1] & 0x3F);
		return 2;
	}
	if (s[0] < 0xF0)
	{
		*cp = ((uint32_t) (s[0] & 0x0F) << 12) |
			  ((uint32_t) (s[1] & 0x3F) << 6) | (s[2] & 0x3F);
		return 3;
	}
	*cp = ((uint32_t) (s[0] & 0x07) << 18) | ((uint32_t) (s[1] & 0x3F) << 12) |
		  ((uint32_t) (s[2] & 0x3F) << 6) | (s[3] & 0x3F);
	return 4;
}

size_t
groq_utf8_encode(uint32_t cp, char *out)
{
	if (cp < 0x80)
	{
		out[0] = (char) cp;
		return 1;
	}
	if (cp < 0x800)
	{
		out[0] = (char) (0xC0 | (cp >> 6));
		out[1] = (char) (0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000)
	{
		out[0] = (char) (0xE0 | (cp >> 12));
		out[1] = (char) (0x80 | ((cp >> 6) & 0x3F));
		out[2] = (char) (0x80 | (cp & 0x3F));
		return 3;
	}
	out[0] = (char) (0xF0 | (cp >> 18));
	out[1] = (char) (0x80 | ((cp >> 12) & 0x3F));
	out[2] = (char) (0x80 | ((cp >> 6) & 0x3F));
	out[3] = (char) (0x80 | (cp & 0x3F));
	return 4;
}

/*
 * Simple case mapping for ASCII, Latin-1, Latin Extended-A, Greek and
 * Cyrillic: the scripts of our users' content, without locale tables.
 * Every mapping keeps the UTF-8 length.
 */
uint32_t
groq_lower_cp(uint32_t c)
{
	if (c < 0x80)
		return c >= 'A' && c <= 'Z' ? c + 32 : c;
	if (c >= 0xC0 && c <= 0xDE && c != 0xD7)
		return c + 32;
	if ((c >= 0x100 && c <= 0x137) || (c >= 0x14A && c <= 0x177))
		return c | 1;
	if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E))
		return (c & 1) ? c + 1 : c;
	if (c == 0x178)
		return 0xFF;
	if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2)
		return c + 32;
	if (c >= 0x400 && c <= 0x40F)
		return c + 80;
	if (c >= 0x410 && c <= 0x42F)
		return c + 32;
	return c;
}

uint32_t
groq_upper_cp(uint32_t c)
{
	if (c < 0x80)
		return c >= 'a' && c <= 'z' ? c - 32 : c;
	if (c >= 0xE0 && c <= 0xFE && c != 0xF7)
		return c - 32;
	if (c == 0xFF)
		return 0x178;
	if ((c >= 0x100 && c <= 0x137) || (c >= 0x14A && c <= 0x177))
		return c & ~(uint32_t) 1;
	if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E))
		return (c & 1) ? c : c - 1;
	if (c == 0x3C2)
		return 0x3A3;
	if (c >= 0x3B1 && c <= 0x3C9)
		return c - 32;
	if (c >= 0x430 && c <= 0x44F)
		return c - 32;
	if (c >= 0x450 && c <= 0x45F)
		return c - 80;
	return c;
}

char *
groq_case_map(groq_arena *a, const char *s, size_t len, bool upper,
			  size_t *outlen)
{
	char *out = groq_arena_alloc(a, len + 1);
	size_t i = 0, k = 0;

	if (!out)
		return NULL;
	while (i < len)
	{
		uint32_t cp;

		i += groq_utf8_decode(s + i, &cp);
		k += groq_utf8_encode(upper ? groq_upper_cp(cp) : groq_lower_cp(cp),
							  out + k);
	}
	out[k] = '\0';
	*outlen = k;
	return out;
}

/* ---- match ---- */

static bool
is_word_byte(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		   (c >= '0' && c <= '9') || c == '_';
}

/* JavaScript's \s */
static bool
is_space_cp(uint32_t c)
{
	return c == ' ' || (c >= 0x09 && c <= 0x0D) || c == 0xA0 || c == 0x1680 ||
		   (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
		   c == 0x202F || c == 0x205F || c == 0x3000 || c == 0xFEFF;
}

static bool
is_separator(uint32_t c, bool pattern)
{
	if (c == '*')
		return !pattern;
	return is_space_cp(c) ||
		   (c < 0x80 && c && strchr("!@#$%^&(),\\/?\";:{}|[]+<>-", (int) c));
}

typedef struct tokens
{
	groq_strref *v;
	size_t n, cap;
} tokens;

static int
add_token(groq_eval *ev, const groq_node *n, tokens *t, const char *s,
		  size_t len)
{
	if (t->n == t->cap)
	{
		size_t ncap = t->cap ? t->cap * 2 : 16;
		groq_strref *nv = groq_arena_alloc(ev->arena, sizeof(*nv) * ncap);

		if (!nv)
			return groq_eval_abort(ev, n, "evaluation memory limit exceeded");
		if (t->n)
			memcpy(nv, t->v, sizeof(*nv) * t->n);
		t->v = nv;
		t->cap = ncap;
	}
	t->v[t->n].s = s;
	t->v[t->n].len = len;
	t->n++;
	return 0;
}

#define MAX_TERM_LENGTH 1024

static int
tokenize(groq_eval *ev, const groq_node *n, const char *s, size_t len,
		 bool pattern, tokens *out)
{
	char *buf = groq_arena_alloc(ev->arena, len + 1);
	size_t k = 0, i = 0;

	if (!buf)
		return groq_eval_abort(ev, n, "evaluation memory limit exceeded");
	/* drop runs of dots that touch a word character */
	while (i < len)
	{
		if (s[i] == '.')
		{
			size_t j = i;

			while (j < len && s[j] == '.')
				j++;
			if (!((i > 0 && is_word_byte(s[i - 1])) ||
				  (j < len && is_word_byte(s[j]))))
			{
				memcpy(buf + k, s + i, j - i);
				k += j - i;
			}
			i = j;
			continue;
		}
		buf[k++] = s[i++];
	}
	i = 0;
	while (i < k)
	{
		size_t start, cps = 0;
		uint32_t cp;
		size_t l = groq_utf8_decode(buf + i, &cp);

		if (is_separator(cp, pattern))
		{
			i += l;
			continue;
		}
		start = i;
		while (i < k)
		{
			l = groq_utf8_decode(buf + i, &cp);
			if (is_separator(cp, pattern))
				break;
			i += l;
			cps++;
			/* the reference implementation truncates long terms */
			if (pattern && cps == MAX_TERM_LENGTH)
			{
				if (add_token(ev, n, out, buf + start, i - start) < 0)
					return -1;
				while (i < k)
				{
					l = groq_utf8_decode(buf + i, &cp);
					if (is_separator(cp, pattern))
						break;
					i += l;
				}
				start = i;
				break;
			}
		}
		if (i > start && add_token(ev, n, out, buf + start, i - start) < 0)
			return -1;
	}
	return 0;
}

static bool
cp_eq_fold(uint32_t a, uint32_t b)
{
	return a == b || groq_lower_cp(a) == groq_lower_cp(b) ||
		   groq_upper_cp(a) == groq_upper_cp(b);
}

/* Whole-token glob: * matches any run, case-insensitive. */
static bool
glob_match(const char *p, const char *pe, const char *s, const char *se)
{
	const char *star_p = NULL, *star_s = NULL;

	while (s < se)
	{
		if (p < pe && *p == '*')
		{
			star_p = ++p;
			star_s = s;
			continue;
		}
		if (p < pe)
		{
			uint32_t pc, sc;
			size_t pl = groq_utf8_decode(p, &pc);
			size_t sl = groq_utf8_decode(s, &sc);

			if (cp_eq_fold(pc, sc))
			{
				p += pl;
				s += sl;
				continue;
			}
		}
		if (star_p)
		{
			uint32_t sc;

			p = star_p;
			star_s += groq_utf8_decode(star_s, &sc);
			s = star_s;
			continue;
		}
		return false;
	}
	while (p < pe && *p == '*')
		p++;
	return p == pe;
}

int
groq_text_match(groq_eval *ev, const groq_node *n, const groq_strref *texts,
				size_t ntexts, const groq_strref *patterns, size_t npatterns)
{
	tokens toks = {0}, terms = {0};

	for (size_t i = 0; i < ntexts; i++)
		if (tokenize(ev, n, texts[i].s, texts[i].len, false, &toks) < 0)
			return -1;
	for (size_t i = 0; i < npatterns; i++)
		if (tokenize(ev, n, patterns[i].s, patterns[i].len, true, &terms) < 0)
			return -1;
	if (!toks.n || !terms.n)
		return 0;
	for (size_t t = 0; t < terms.n; t++)
	{
		bool found = false;

		for (size_t k = 0; k < toks.n && !found; k++)
		{
			size_t cost = 1 + terms.v[t].len * toks.v[k].len / 256;

			if (ev->steps_left < cost)
				return groq_eval_out_of_steps(ev, n);
			ev->steps_left -= cost;
			found = glob_match(terms.v[t].s, terms.v[t].s + terms.v[t].len,
							   toks.v[k].s, toks.v[k].s + toks.v[k].len);
		}
		if (!found)
			return 0;
	}
	return 1;
}

/* ---- path() globs ---- */

/*
 * A pattern is split at dots: a `*` segment matches one segment of one or
 * more characters, a `**` segment any run of characters (dots included),
 * anything else itself.  Simulated as an NFA over pattern positions, so
 * hostile patterns cost O(pattern * subject), never exponential time.
 */
enum
{
	P_LIT,
	P_SEG,	   /* one non-dot byte */
	P_SEGSTAR, /* zero or more non-dot bytes */
	P_ANYSTAR  /* zero or more bytes */
};

bool
groq_path_match(const char *pat, size_t plen, const char *s, size_t slen)
{
	unsigned char *kind;
	char *lit;
	bool *cur, *nxt;
	size_t m = 0, i = 0;
	bool ok = false;
	size_t need = (2 * plen + 2) * (2 + 2 * sizeof(bool));
	/* typical patterns ("drafts.**") need no malloc */
	char local[512];
	void *mem = need <= sizeof(local) ? local : malloc(need);

	if (!mem)
		return false;
	kind = mem;
	lit = (char *) kind + 2 * plen + 2;
	cur = (bool *) (lit + 2 * plen + 2);
	nxt = cur + 2 * plen + 2;
	while (i <= plen)
	{
		size_t j = i;

		while (j < plen && pat[j] != '.')
			j++;
		if (i > 0)
		{
			kind[m] = P_LIT;
			lit[m++] = '.';
		}
		if (j - i == 1 && pat[i] == '*')
		{
			kind[m++] = P_SEG;
			kind[m++] = P_SEGSTAR;
		}
		else if (j - i == 2 && pat[i] == '*' && pat[i + 1] == '*')
			kind[m++] = P_ANYSTAR;
		else
			for (size_t k = i; k < j; k++)
			{
				kind[m] = P_LIT;
				lit[m++] = pat[k];
			}
		i = j + 1;
	}
	memset(cur, 0, m + 1);
	cur[0] = true;
	for (size_t pos = 0;; pos++)
	{
		/* epsilon: a starred element may match nothing */
		for (size_t k = 0; k < m; k++)
			if (cur[k] && (kind[k] == P_SEGSTAR || kind[k] == P_ANYSTAR))
				cur[k + 1] = true;
		if (pos == slen)
		{
			ok = cur[m];
			break;
		}
		memset(nxt, 0, m + 1);
		for (size_t k = 0; k < m; k++)
		{
			if (!cur[k])
				continue;
			switch (kind[k])
			{
				case P_LIT:
					if (lit[k] == s[pos])
						nxt[k + 1] = true;
					break;
				case P_SEG:
					if (s[pos] != '.')
						nxt[k + 1] = true;
					break;
				case P_SEGSTAR:
					if (s[pos] != '.')
						nxt[k] = true;
					break;
				case P_ANYSTAR:
					nxt[k] = true;
					break;
			}
		}
		memcpy(cur, nxt, m + 1);
	}
	if (mem != local)
		free(mem);
	return ok;
}

/* ---- numbers ---- */

size_t
groq_format_number(double d, char *buf)
{
	char digits[40], tmp[40];
	int prec, exp10, k, n;
	size_t o = 0;

	if (d == 0)
		return (size_t) sprintf(buf, "0");
	if (!isfinite(d))
		return (size_t) sprintf(buf, "null");
	/* the shortest representation that reads back as d */
	for (prec = 1; prec <= 17; prec++)
	{
		snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, d);
		if (strtod(tmp, NULL) == d)
			break;
	}
	if (d < 0)
		buf[o++] = '-';
	/* tmp is [-]D.DDDe[+-]XX */
	k = 0;
	for (const char *p = tmp + (d < 0); *p && *p != 'e'; p++)
		if (*p != '.')
			digits[k++] = *p;
	while (k > 1 && digits[k - 1] == '0')
		k--;
	digits[k] = '\0';
	exp10 = atoi(strchr(tmp, 'e') + 1);
	n = exp10 + 1; /* position of the decimal point, as in ECMA-262 */
	if (k <= n && n <= 21)
	{
		memcpy(buf + o, digits, k);
		o += k;
		for (int z = 0; z < n - k; z++)
			buf[o++] = '0';
	}
	else if (0 < n && n <= 21)
	{
		memcpy(buf + o, digits, n);
		o += n;
		buf[o++] = '.';
		memcpy(buf + o, digits + n, k - n);
		o += k - n;
	}
	else if (-6 < n && n <= 0)
	{
		buf[o++] = '0';
		buf[o++] = '.';
		for (int z = 0; z < -n; z++)
			buf[o++] = '0';
		memcpy(buf + o, digits, k);
		o += k;
	}
	else
	{
		buf[o++] = digits[0];
		if (k > 1)
		{
			buf[o++] = '.';
			memcpy(buf + o, digits + 1, k - 1);
			o += k - 1;
		}
		o += (size_t) sprintf(buf + o, "e%c%d", n - 1 >= 0 ? '+' : '-',
							  abs(n - 1));
	}
	buf[o] = '\0';
	return o;
}

/* ---- datetimes ---- */

static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned) (y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t) doe - 719468;
}

static void
civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	int64_t era;
	unsigned doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = (unsigned) (z - era * 146097);
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	*y = (int64_t) yoe + era * 400;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y += *m <= 2;
}

static bool
digits_at(const char *s, size_t len, size_t i, int n, int *out)
{
	int v = 0;

	if (i + n > len)
		return false;
	for (int k = 0; k < n; k++)
	{
		if (s[i + k] < '0' || s[i + k] > '9')
			return false;
		v = v * 10 + (s[i + k] - '0');
	}
	*out = v;
	return true;
}

/* RFC 3339: 2006-01-02T15:04:05(.frac)?(Z|+07:00) */
bool
groq_parse_datetime(const char *s, size_t len, int64_t *sec, int32_t *nsec)
{
	static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int y, mo, d, h, mi, se, oh = 0, om = 0;
	size_t i = 19;
	int64_t ns = 0;
	int sign = 0;
	bool leap;

	if (!digits_at(s, len, 0, 4, &y) || len < 20 || s[4] != '-' ||
		!digits_at(s, len, 5, 2, &mo) || s[7] != '-' ||
		!digits_at(s, len, 8, 2, &d) || (s[10] != 'T' && s[10] != 't') ||
		!digits_at(s, len, 11, 2, &h) || s[13] != ':' ||
		!digits_at(s, len, 14, 2, &mi) || s[16] != ':' ||
		!digits_at(s, len, 17, 2, &se))
		return false;
	if (s[i] == '.')
	{
		int nd = 0;

		i++;
		while (i < len && s[i] >= '0' && s[i] <= '9')
		{
			if (nd < 9)
				ns = ns * 10 + (s[i] - '0');
			nd++;
			i++;
		}
		if (nd == 0)
			return false;
		for (int k = nd; k < 9; k++)
			ns *= 10;
	}
	if (i < len && (s[i] == 'Z' || s[i] == 'z'))
		i++;
	else if (i < len && (s[i] == '+' || s[i] == '-'))
	{
		sign = s[i] == '+' ? 1 : -1;
		if (!digits_at(s, len, i + 1, 2, &oh) || i + 3 >= len ||
			s[i + 3] != ':' || !digits_at(s, len, i + 4, 2, &om) || oh > 23 ||
			om > 59)
			return false;
		i += 6;
	}
	else
		return false;
	if (i != len)
		return false;
	leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && leap) ||
		h > 23 || mi > 59 || se > 59)
		return false;
	*sec = days_from_civil(y, (unsigned) mo, (unsigned) d) * 86400 + h * 3600 +
		   mi * 60 + se - sign * (oh * 3600 + om * 60);
	*nsec = (int32_t) ns;
	return true;
}

size_t
groq_format_datetime(int64_t sec, int32_t nsec, char *buf)
{
	int64_t days = sec >= 0 ? sec / 86400 : -((-sec + 86399) / 86400);
	int64_t rem = sec - days * 86400;
	int64_t y;
	unsigned m, d;
	int n;

	civil_from_days(days, &y, &m, &d);
	n = sprintf(buf, "%04d-%02u-%02uT%02d:%02d:%02d", (int) y, m, d,
				(int) (rem / 3600), (int) (rem / 60 % 60), (int) (rem % 60));
	if (nsec % 1000000 == 0 && nsec)
		n += sprintf(buf + n, ".%03d", nsec / 1000000);
	else if (nsec % 1000 == 0 && nsec)
		n += sprintf(buf + n, ".%06d", nsec / 1000);
	else if (nsec)
		n += sprintf(buf + n, ".%09d", nsec);
	buf[n++] = 'Z';
	buf[n] = '\0';
	return (size_t) n;
}
