# protocol: the WebSocket codec (parse client frames, encode server
# messages).  Links outq (messages are outmsgs) and presence (the snapshot
# encoder walks it).
PROTOCOL_OBJS = protocol outq $(PRESENCE_OBJS)
UNIT_TESTS += test_protocol
test_protocol_OBJS = ../test/unit/test_protocol $(PROTOCOL_OBJS)
