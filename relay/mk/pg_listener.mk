# pg_listener: the libpq side of the relay (two non-blocking connections on
# a libuv loop, in-order exactly-once delivery of change events).  Tested
# against a real PostgreSQL by ../test/listener/run.sh through the driver
# program listener-driver, which prints every delivered event as JSON.
PG_LISTENER_OBJS = pg_listener event
LDLIBS += -luv
PROGRAMS += listener-driver
listener-driver_OBJS = ../test/listener/listener_driver $(PG_LISTENER_OBJS)
