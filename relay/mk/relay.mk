# cellcms-relay: the daemon (main wires hub, ws_server and pg_listener).
HUB_OBJS = hub log $(AUTH_OBJS) $(PROTOCOL_OBJS) $(SUBS_OBJS) $(EVENT_OBJS)
PROGRAMS += cellcms-relay
cellcms-relay_OBJS = main ws_server config $(HUB_OBJS) $(PG_LISTENER_OBJS)
UNIT_TESTS += test_hub
test_hub_OBJS = ../test/unit/test_hub $(HUB_OBJS)
