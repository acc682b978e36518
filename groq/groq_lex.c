/*
 * groq_lex.c: GROQ query text to tokens.
 *
 * The whole query is tokenised up front (it is short and bounded by
 * max_query_len) so the parser can look ahead freely.  String literals are
 * decoded here, into the filter's arena.
 */
#include "groq_int.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static bool
is_ident_start(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool
is_ident_char(char c)
{
	return is_ident_start(c) || (c >= '0' && c <= '9');
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Reads \uXXXX at s[i] (after the backslash-u); returns -1 when malformed. */
static long
read_hex4(const char *s, size_t len, size_t i)
{
	long v = 0;

	if (i + 4 > len)
		return -1;
	for (size_t k = 0; k < 4; k++)
	{
		int h = hexval(s[i + k]);

		if (h < 0)
			return -1;
		v = v * 16 + h;
	}
	return v;
}

/*
 * Decodes the string literal opening at text[*ip] into arena memory.  The
 * decoded form is never longer than the literal, so one allocation does.
 */
static bool
lex_string(const char *text, size_t len, size_t *ip, groq_arena *arena,
		   groq_token *tok, groq_error *err)
{
	size_t start = *ip;
	char quote = text[start];
	size_t i = start + 1;
	char *out = groq_arena_alloc(arena, len - start + 1);
	size_t n = 0;

	if (!out)
	{
		groq_seterr(err, start, "out of memory");
		return false;
	}
	for (;;)
	{
		char c;

		if (i >= len)
		{
			groq_seterr(err, start, "unterminated string literal");
			return false;
		}
		c = text[i];
		if (c == quote)
		{
			i++;
			break;
		}
		if (c != '\\')
		{
			out[n++] = c;
			i++;
			continue;
		}
		if (i + 1 >= len)
		{
			groq_seterr(err, start, "unterminated string literal");
			return false;
		}
		c = text[i + 1];
		i += 2;
		switch (c)
		{
			case '\'':
			case '"':
			case '\\':
			case '/':
				out[n++] = c;
				break;
			case 'b':
				out[n++] = '\b';
				break;
			case 'f':
				out[n++] = '\f';
				break;
			case 'n':
				out[n++] = '\n';
				break;
			case 'r':
				out[n++] = '\r';
				break;
			case 't':
				out[n++] = '\t';
				break;
			case 'u':
			{
				long cp;

				if (i < len && text[i] == '{')
				{
					size_t k = i + 1;

					cp = 0;
					while (k < len && hexval(text[k]) >= 0 && cp <= 0x10FFFF)
						cp = cp * 16 + hexval(text[k++]);
					if (k == i + 1 || k >= len || text[k] != '}' ||
						cp > 0x10FFFF)
						goto bad_escape;
					i = k + 1;
				}
				else
				{
					cp = read_hex4(text, len, i);
					if (cp < 0)
						goto bad_escape;
					i += 4;
					if (cp >= 0xD800 && cp <= 0xDBFF)
					{
						long lo = -1;

						if (i + 1 < len && text[i] == '\\' &&
							text[i + 1] == 'u')
							lo = read_hex4(text, len, i + 2);
						if (lo < 0xDC00 || lo > 0xDFFF)
							goto bad_escape;
						cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
						i += 6;
					}
				}
				if (cp >= 0xD800 && cp <= 0xDFFF)
					goto bad_escape;
				/* an escape is at least 6 bytes, its UTF-8 at most 4 */
				n += groq_utf8_encode((uint32_t) cp, out + n);
				break;
			}
			default:
				goto bad_escape;
		}
	}
	out[n] = '\0';
	tok->t = T_STR;
	tok->s = out;
	tok->len = n;
	*ip = i;
	return true;

bad_escape:
	groq_seterr(err, i > 2 ? i - 2 : 0, "invalid escape sequence in string");
	return false;
}

static bool
lex_number(const char *text, size_t len, size_t *ip, groq_token *tok,
		   groq_error *err)
{
	size_t i = *ip;
	char buf[64];
	char *end;

	while (i < len && isdigit((unsigned char) text[i]))
		i++;
	/* "1..2" is a range, so a dot is a fraction only before a digit */
	if (i + 1 < len && text[i] == '.' && isdigit((unsigned char) text[i + 1]))
	{
		i++;
		while (i < len && isdigit((unsigned char) text[i]))
			i++;
	}
	if (i < len && (text[i] == 'e' || text[i] == 'E'))
	{
		size_t k = i + 1;

		if (k < len && (text[k] == '+' || text[k] == '-'))
			k++;
		if (k < len && isdigit((unsigned char) text[k]))
		{
			i = k;
			while (i < len && isdigit((unsigned char) text[i]))
				i++;
		}
	}
	if (i < len && is_ident_char(text[i]))
	{
		groq_seterr(err, i, "invalid number literal");
		return false;
	}
	if (i - *ip >= sizeof(buf))
	{
		groq_seterr(err, *ip, "number literal too long");
		return false;
	}
	memcpy(buf, text + *ip, i - *ip);
	buf[i - *ip] = '\0';
	tok->t = T_NUM;
	tok->num = strtod(buf, &end);
	*ip = i;
	return true;
}

groq_token *
groq_lex(const char *text, size_t len, groq_arena *arena, groq_error *err)
{
	/* every token but EOF takes at least one byte */
	groq_token *toks = calloc(len + 1, sizeof(*toks));
	size_t nt = 0;
	size_t i = 0;

	if (!toks)
	{
		groq_seterr(err, 0, "out of memory");
		return NULL;
	}
	for (;;)
	{
		groq_token *tok;
		char c, d;

		while (i < len)
		{
			if (isspace((unsigned char) text[i]))
				i++;
			else if (text[i] == '/' && i + 1 < len && text[i + 1] == '/')
			{
				while (i < len && text[i] != '\n')
					i++;
			}
			else
				break;
		}
		tok = &toks[nt++];
		tok->pos = (uint32_t) i;
		if (i >= len)
		{
			tok->t = T_EOF;
			return toks;
		}
		c = text[i];
		d = i + 1 < len ? text[i + 1] : '\0';
		if (is_ident_start(c))
		{
			size_t s = i;

			while (i < len && is_ident_char(text[i]))
				i++;
			tok->t = T_IDENT;
			tok->s = text + s;
			tok->len = i - s;
			continue;
		}
		if (isdigit((unsigned char) c))
		{
			if (!lex_number(text, len, &i, tok, err))
				goto err;
			continue;
		}
		if (c == '"' || c == '\'')
		{
			if (!lex_string(text, len, &i, arena, tok, err))
				goto err;
			continue;
		}
		if (c == '$')
		{
			size_t s = ++i;

			while (i < len && is_ident_char(text[i]))
				i++;
			if (i == s || !is_ident_start(text[s]))
			{
				groq_seterr(err, s - 1, "expected a parameter name after $");
				goto err;
			}
			tok->t = T_PARAM;
			tok->s = text + s;
			tok->len = i - s;
			continue;
		}
		i++;
		switch (c)
		{
			case '[':
				tok->t = T_LBRACKET;
				break;
			case ']':
				tok->t = T_RBRACKET;
				break;
			case '(':
				tok->t = T_LPAREN;
				break;
			case ')':
				tok->t = T_RPAREN;
				break;
			case '{':
				tok->t = T_LBRACE;
				break;
			case '}':
				tok->t = T_RBRACE;
				break;
			case ',':
				tok->t = T_COMMA;
				break;
			case '@':
				tok->t = T_AT;
				break;
			case '^':
				tok->t = T_CARET;
				break;
			case '/':
				tok->t = T_SLASH;
				break;
			case '%':
				tok->t = T_PERCENT;
				break;
			case '+':
				tok->t = T_PLUS;
				break;
			case '.':
				tok->t = T_DOT;
				if (d == '.')
				{
					i++;
					tok->t = T_DOTDOT;
					if (i < len && text[i] == '.')
					{
						i++;
						tok->t = T_DOTDOTDOT;
					}
				}
				break;
			case ':':
				tok->t = T_COLON;
				if (d == ':')
				{
					i++;
					tok->t = T_COLONCOLON;
				}
				break;
			case '=':
				if (d == '=')
					tok->t = T_EQ;
				else if (d == '>')
					tok->t = T_ARROW;
				else
				{
					groq_seterr(err, i - 1,
								"unexpected '=' (did you mean '==')");
					goto err;
				}
				i++;
				break;
			case '!':
				tok->t = T_NOT;
				if (d == '=')
				{
					i++;
					tok->t = T_NE;
				}
				break;
			case '<':
				tok->t = T_LT;
				if (d == '=')
				{
					i++;
					tok->t = T_LE;
				}
				break;
			case '>':
				tok->t = T_GT;
				if (d == '=')
				{
					i++;
					tok->t = T_GE;
				}
				break;
			case '&':
				if (d != '&')
				{
					groq_seterr(err, i - 1,
								"unexpected '&' (did you mean '&&')");
					goto err;
				}
				i++;
				tok->t = T_AND;
				break;
			case '|':
				tok->t = T_PIPE;
				if (d == '|')
				{
					i++;
					tok->t = T_OR;
				}
				break;
			case '-':
				tok->t = T_MINUS;
				if (d == '>')
				{
					i++;
					tok->t = T_DEREF;
				}
				break;
			case '*':
				tok->t = T_STAR;
				if (d == '*')
				{
					i++;
					tok->t = T_STARSTAR;
				}
				break;
			default:
				if (c > 0x20 && c < 0x7f)
					groq_seterr(err, i - 1, "unexpected character '%c'", c);
				else
					groq_seterr(err, i - 1, "unexpected byte 0x%02x",
								(unsigned char) c);
				goto err;
		}
	}

err:
	free(toks);
	return NULL;
}
