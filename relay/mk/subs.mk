# subs: subscription registry, type index and matching of change events
# (pure).  Uses the GROQ engine and the shared hash table; only the rt_event
# struct of event.h, none of its functions.
SUBS_OBJS = subs $(HTAB_OBJS) $(GROQ_OBJS)
UNIT_TESTS += test_subs
test_subs_OBJS = ../test/unit/test_subs $(SUBS_OBJS)

PROGRAMS += bench-subs
bench-subs_OBJS = ../test/bench/subs/bench_subs $(SUBS_OBJS)
