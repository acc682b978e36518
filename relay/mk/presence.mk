# presence: who is editing which document (pure; returns diffs).
PRESENCE_OBJS = presence htab
UNIT_TESTS += test_presence
test_presence_OBJS = ../test/unit/test_presence $(PRESENCE_OBJS)
