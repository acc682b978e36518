# GROQ subscription filters: the engine (pure, no I/O), its command-line
# tool, its unit tests and its micro-benchmark (./bench-groq prints figures).
GROQ_OBJS = groq_lex groq_parse groq_eval groq_funcs groq_text

PROGRAMS += cellcms-groq
cellcms-groq_OBJS = cellcms_groq $(GROQ_OBJS)

PROGRAMS += bench-groq
bench-groq_OBJS = ../test/bench/groq/bench_groq $(GROQ_OBJS)

UNIT_TESTS += test_groq
test_groq_OBJS = ../test/unit/test_groq $(GROQ_OBJS)
test_groq_ARGS = ../test/unit/groq_cases.txt
