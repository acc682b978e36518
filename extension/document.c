/*-------------------------------------------------------------------------
 *
 * document.c
 *	  A watched row as the JSON document that GROQ filters see.
 *
 * IDENTIFICATION
 *	  extension/document.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "cellcms_rt.h"
#include "utils/builtins.h"

/* Appends the members of a jsonb object; later keys replace earlier ones. */
static void
push_members(JsonbParseState **state, Jsonb *jb)
{
	JsonbIterator *it = JsonbIteratorInit(&jb->root);
	JsonbValue v;
	JsonbIteratorToken tok;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY || tok == WJB_VALUE)
			pushJsonbValue(state, tok, &v);
	}
}

static void
push_string(JsonbParseState **state, const char *key, const char *value)
{
	JsonbValue v;

	v.type = jbvString;
	v.val.string.val = unconstify(char *, key);
	v.val.string.len = strlen(key);
	pushJsonbValue(state, WJB_KEY, &v);
	if (value == NULL)
		v.type = jbvNull;
	else
	{
		v.val.string.val = unconstify(char *, value);
		v.val.string.len = strlen(value);
	}
	pushJsonbValue(state, WJB_VALUE, &v);
}

/*
 * The row values/nulls as a GROQ filter sees it.  Precedence, lowest first:
 * keys of the data column (when it holds an object), the other columns under
 * their own names, then _id and _type.  jsonb keeps the last of duplicate
 * keys.
 */
Jsonb *
build_document(WatchConfig *cfg, Datum *values, bool *nulls, const char *id,
			   const char *type)
{
	JsonbParseState *state = NULL;
	JsonbValue *res;
	AttrNumber data_att = cfg->att[WC_DATA];

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	if (data_att != 0 && !nulls[data_att - 1])
	{
		Jsonb *data;

		if (cfg->data_is_json)
			data = DatumGetJsonbP(DirectFunctionCall1(
				jsonb_in,
				CStringGetDatum(TextDatumGetCString(values[data_att - 1]))));
		else
			data = DatumGetJsonbP(values[data_att - 1]);
		if (JB_ROOT_IS_OBJECT(data))
			push_members(&state, data);
	}
	for (int i = 0; i < cfg->n_plain; i++)
	{
		PlainColumn *col = &cfg->plain[i];
		Datum value = values[col->att - 1];
		JsonbValue v;

		v.type = jbvString;
		v.val.string.val = col->name;
		v.val.string.len = strlen(col->name);
		pushJsonbValue(&state, WJB_KEY, &v);
		if (nulls[col->att - 1])
			v.type = jbvNull;
		else if (col->is_text)
		{
			text *t = DatumGetTextPP(value);

			v.val.string.val = VARDATA_ANY(t);
			v.val.string.len = VARSIZE_ANY_EXHDR(t);
		}
		else
		{
			Jsonb *jb = DatumGetJsonbP(FunctionCall1(&col->to_jsonb, value));

			if (JB_ROOT_IS_SCALAR(jb))
				JsonbExtractScalar(&jb->root, &v);
			else
			{
				v.type = jbvBinary;
				v.val.binary.data = &jb->root;
				v.val.binary.len = VARSIZE(jb) - VARHDRSZ;
			}
		}
		pushJsonbValue(&state, WJB_VALUE, &v);
	}
	push_string(&state, "_id", id);
	push_string(&state, "_type", type);
	res = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	return JsonbValueToJsonb(res);
}
