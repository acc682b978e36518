# outq: refcounted outbound messages and bounded per-connection queues.
OUTQ_OBJS = outq
UNIT_TESTS += test_outq
test_outq_OBJS = ../test/unit/test_outq $(OUTQ_OBJS)
