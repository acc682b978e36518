# event: the change event (NOTIFY payload parser), pg_snapshot text and
# visibility, and the set D of the listener.  Pure.
EVENT_OBJS = event
UNIT_TESTS += test_event
test_event_OBJS = ../test/unit/test_event $(EVENT_OBJS)
